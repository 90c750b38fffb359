"""The 3D position error of tracked objects, where a sequence has depth: scored by sam2-eval.

On a frame with depth (aligned to the image, with the camera's intrinsics) an object's position is
what the node would publish (``sam2_model.object_3d``: the per-axis median of its eroded mask's
valid depth points). The error is the distance in metres between the position from the tracked
mask and the position from the ground-truth mask, both on the frame's depth: it measures how the
segmentation's mistakes move the object in 3D (with ground-truth depth, as the procedural
generator's layered depth is, it is the whole 3D error of the node's estimate). A runner that
reports positions itself (the live node with ``use_depth``) is scored on those instead. Frames
where either mask is empty, or either has too few valid depth points, have no error.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sam2_model.object_3d import DepthOptions, PinholeIntrinsics, estimate_mask


@dataclass(frozen=True)
class PositionErrorStats:
    """One object's (or a run's) 3D position errors, metres."""

    mean: float
    median: float
    p90: float
    max: float
    num_frames: int


def position_error(pred: np.ndarray, gt: np.ndarray, depth_m: np.ndarray, intrinsics: PinholeIntrinsics,
                   options: DepthOptions = DepthOptions(), reported: np.ndarray | None = None) -> float | None:
    """Distance (m) between the position from the predicted mask (or the one the tracker
    ``reported``, e.g. the live node's) and the one from the ground-truth mask; None when either
    has no 3D."""
    if not pred.any() or not gt.any():
        return None
    truth = estimate_mask(1, gt, depth_m, intrinsics, options)
    if not truth.has_position:
        return None
    if reported is None:
        found = estimate_mask(1, pred, depth_m, intrinsics, options)
        if not found.has_position:
            return None
        reported = found.position
    return float(np.linalg.norm(np.asarray(reported, np.float64) - truth.position))


def error_stats(errors: list[float]) -> PositionErrorStats | None:
    if not errors:
        return None
    values = np.asarray(errors, np.float64)
    return PositionErrorStats(float(values.mean()), float(np.median(values)), float(np.percentile(values, 90)),
                              float(values.max()), int(values.size))
