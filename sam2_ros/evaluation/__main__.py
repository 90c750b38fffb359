"""``python -m sam2_ros.evaluation``: the same as ``sam2-eval``."""

from .cli import main

raise SystemExit(main())
