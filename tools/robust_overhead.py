"""ms/frame of the robust memory policy against the official one, on the same frames (issue 25): the
CPU measurement docs/benchmarks.md quotes, each video tracking its own targets.

    python tools/robust_overhead.py --videos 4 --frames 48 --seed 7300
    python tools/robust_overhead.py --policy robust+appearance_memory   # any memory_policy string

The same as ``python -m sam2_model.policy_benchmark --objects targets ...`` (its --help lists every
option; a later --objects wins).
"""

from __future__ import annotations

import sys

from sam2_model.policy_benchmark import EACH_VIDEOS_TARGETS, main

if __name__ == "__main__":
    raise SystemExit(main(["--objects", EACH_VIDEOS_TARGETS, *sys.argv[1:]]))
