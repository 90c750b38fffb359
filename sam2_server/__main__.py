"""``python -m sam2_server``: the same as the ``sam2-server`` console script."""

import sys

from .cli import main

sys.exit(main())
