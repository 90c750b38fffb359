"""Offline evaluation of SAM 2 tracking on recorded data (ROS 2 bags, DAVIS-format folders).

Modules, one job each:

- ``metrics``: DAVIS J (region IoU), F (boundary F-measure) and per-sequence statistics.
- ``sequence``: the typed ``Frame`` / ``Sequence`` stream that readers produce.
- ``davis``, ``bag_io``, ``video``: readers and writers of the input formats.
- ``prompts``: mask, box or click prompts from a ground-truth mask.
- ``runner``: the ``Runner`` extension point and the in-process tracker runner.
- ``model``: builds the in-process runner for a SAM 2 checkpoint (the only torch user).
- ``scoring``: per-frame scores and per-object / per-sequence results.
- ``report``: results.json, report.md and plots.
- ``cli`` (``sam2-eval``) and ``make_bag`` (``sam2-make-bag``): the commands.
"""

from .errors import EvaluationInputError
from .metrics import boundary_f, jf_mean, region_similarity, series_stats
from .prompts import PromptKind
from .runner import FramePrediction, InProcessRunner, Runner
from .sequence import Frame, Sequence

__all__ = [
    "EvaluationInputError",
    "Frame",
    "FramePrediction",
    "InProcessRunner",
    "PromptKind",
    "Runner",
    "Sequence",
    "boundary_f",
    "jf_mean",
    "region_similarity",
    "series_stats",
]
