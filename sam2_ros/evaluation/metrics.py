"""DAVIS video segmentation metrics on boolean masks (numpy only).

The definitions follow the DAVIS 2017 evaluation code (davis2017-evaluation,
``metrics.py`` and ``utils.db_statistics``), which the SA-V benchmark reuses, so
that numbers from this package can be put next to published ones:

- J, region similarity: intersection over union; 1 when both masks are empty.
- F, boundary measure: F-measure of boundary precision and recall, where the
  boundaries are one pixel wide (``seg2bmap``) and a boundary pixel counts as
  matched when the other mask's boundary lies within a disk of radius
  ``ceil(bound_th * image diagonal)`` pixels (or ``bound_th`` pixels when
  ``bound_th >= 1``).
- Per-sequence statistics: mean, recall (fraction of frames scoring above 0.5)
  and decay (mean of the first quarter minus mean of the last quarter).

Pixels marked void (DAVIS label 255) are left out of both measures, as in DAVIS.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sam2_model.mask_geometry import box_from_mask, mask_iou

DEFAULT_BOUND_TH = 0.008
RECALL_THRESHOLD = 0.5
DECAY_BINS = 4


def _as_bool_pair(pred: np.ndarray, gt: np.ndarray, void: np.ndarray | None):
    pred = np.asarray(pred, dtype=bool)
    gt = np.asarray(gt, dtype=bool)
    if pred.ndim != 2 or pred.shape != gt.shape:
        raise ValueError(f"masks must be 2-D and of one shape; got {pred.shape} and {gt.shape}")
    if void is not None:
        void = np.asarray(void, dtype=bool)
        if void.shape != gt.shape:
            raise ValueError(f"void mask shape {void.shape} differs from mask shape {gt.shape}")
    return pred, gt, void


def region_similarity(pred: np.ndarray, gt: np.ndarray, void: np.ndarray | None = None) -> float:
    """J: intersection over union of two boolean masks; 1.0 when both are empty."""
    pred, gt, void = _as_bool_pair(pred, gt, void)
    if void is not None:
        valid = ~void
        pred = pred & valid
        gt = gt & valid
    return mask_iou(pred, gt)


def seg2bmap(mask: np.ndarray) -> np.ndarray:
    """One-pixel-wide boundary map of a boolean mask, exactly as DAVIS ``_seg2bmap``.

    A pixel is on the boundary when it differs from its east, south or south-east
    neighbour. The boundary therefore sits just outside the mask on its top and left
    sides and just inside on its bottom and right sides; keeping that convention is
    what makes F comparable with DAVIS numbers.
    """
    seg = np.asarray(mask, dtype=bool)
    if seg.ndim != 2:
        raise ValueError(f"mask must be 2-D; got shape {seg.shape}")
    east = np.zeros_like(seg)
    south = np.zeros_like(seg)
    south_east = np.zeros_like(seg)
    east[:, :-1] = seg[:, 1:]
    south[:-1, :] = seg[1:, :]
    south_east[:-1, :-1] = seg[1:, 1:]
    bmap = (seg ^ east) | (seg ^ south) | (seg ^ south_east)
    # DAVIS's special cases for the last row and column (no south / east neighbours).
    bmap[-1, :] = seg[-1, :] ^ east[-1, :]
    bmap[:, -1] = seg[:, -1] ^ south[:, -1]
    bmap[-1, -1] = False
    return bmap


def boundary_radius(shape: Sequence[int], bound_th: float = DEFAULT_BOUND_TH) -> float:
    """Matching tolerance in pixels: ceil(bound_th * diagonal), or bound_th itself when >= 1."""
    if bound_th <= 0:
        raise ValueError(f"bound_th must be positive; got {bound_th}")
    if bound_th >= 1:
        return float(bound_th)
    height, width = int(shape[0]), int(shape[1])
    return float(math.ceil(bound_th * math.hypot(height, width)))


def _disk_half_widths(radius: float) -> list[tuple[int, int]]:
    """(dy, half width) rows of the disk {(dy, dx): dy^2 + dx^2 <= radius^2} (skimage ``disk``)."""
    r_int = int(math.floor(radius))
    rows = []
    for dy in range(-r_int, r_int + 1):
        rest = radius * radius - dy * dy
        # isqrt keeps integer radii exact; the float path only serves bound_th >= 1 non-integers.
        half = math.isqrt(int(rest)) if float(radius).is_integer() else int(math.floor(math.sqrt(rest)))
        rows.append((dy, half))
    return rows


def _shift(mask: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """mask moved by (dy, dx), filling with False: out-of-image pixels never match."""
    out = np.zeros_like(mask)
    h, w = mask.shape
    if abs(dy) >= h or abs(dx) >= w:
        return out
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[yd, xd] = mask[ys, xs]
    return out


def dilate_disk(mask: np.ndarray, radius: float) -> np.ndarray:
    """Binary dilation by a disk of the given radius (same result as cv2.dilate with skimage ``disk``).

    The disk is decomposed into horizontal runs: the mask is widened one column at a
    time and each widened copy is shifted to the disk rows of that half width, so the
    cost is O(radius) whole-array operations instead of O(radius^2).
    """
    mask = np.asarray(mask, dtype=bool)
    rows_by_half: dict[int, list[int]] = {}
    for dy, half in _disk_half_widths(radius):
        rows_by_half.setdefault(half, []).append(dy)
    out = np.zeros_like(mask)
    widened = mask.copy()
    for half in range(0, max(rows_by_half) + 1):
        if half > 0:
            widened |= _shift(mask, 0, half) | _shift(mask, 0, -half)
        for dy in rows_by_half.get(half, ()):
            out |= _shift(widened, dy, 0)
    return out


def _crop_window(masks: Sequence[np.ndarray], margin: int) -> tuple[slice, slice]:
    """Bounding box of all True pixels (at least one) grown by margin: dilation never reaches further."""
    any_true = np.zeros_like(masks[0])
    for m in masks:
        any_true |= m
    x0, y0, x1, y1 = box_from_mask(any_true)
    h, w = any_true.shape
    return (
        slice(max(0, y0 - margin), min(h, y1 + margin + 1)),
        slice(max(0, x0 - margin), min(w, x1 + margin + 1)),
    )


def boundary_f(
    pred: np.ndarray,
    gt: np.ndarray,
    bound_th: float = DEFAULT_BOUND_TH,
    void: np.ndarray | None = None,
) -> float:
    """F: boundary F-measure of pred against gt (DAVIS ``f_measure``).

    Edge cases as DAVIS: both boundaries empty -> 1; only one empty -> 0 (precision or
    recall is 0); precision + recall = 0 -> 0.
    """
    pred, gt, void = _as_bool_pair(pred, gt, void)
    if void is not None:
        pred = pred & ~void
        gt = gt & ~void
    radius = boundary_radius(gt.shape, bound_th)
    pred_b = seg2bmap(pred)
    gt_b = seg2bmap(gt)
    n_pred = int(np.count_nonzero(pred_b))
    n_gt = int(np.count_nonzero(gt_b))
    if n_pred == 0 and n_gt == 0:
        return 1.0
    if n_pred == 0 or n_gt == 0:
        return 0.0
    # Dilating only the window around both boundaries gives the same matches, much faster
    # for objects that are small in the frame.
    window = _crop_window([pred_b, gt_b], int(math.ceil(radius)))
    pred_b, gt_b = pred_b[window], gt_b[window]
    precision = np.count_nonzero(pred_b & dilate_disk(gt_b, radius)) / n_pred
    recall = np.count_nonzero(gt_b & dilate_disk(pred_b, radius)) / n_gt
    if precision + recall == 0:
        return 0.0
    return float(2 * precision * recall / (precision + recall))


@dataclass(frozen=True)
class SeriesStats:
    """DAVIS statistics of one object's per-frame scores (J or F)."""

    mean: float
    recall: float  # fraction of frames scoring above 0.5
    decay: float  # mean of the first quarter minus mean of the last quarter
    num_frames: int


def decay_bins(n: int, bins: int = DECAY_BINS) -> list[slice]:
    """The DAVIS quarter boundaries for n frames (neighbouring quarters share one frame).

    Reproduces ``db_statistics``: ids = round(linspace(1, n, 5) + 1e-10) - 1 and quarter i
    is values[ids[i] : ids[i+1] + 1].
    """
    ids = (np.round(np.linspace(1, n, bins + 1) + 1e-10) - 1).astype(np.int64)
    return [slice(int(ids[i]), int(ids[i + 1]) + 1) for i in range(bins)]


def series_stats(values: Sequence[float]) -> SeriesStats:
    """Mean, recall (> 0.5) and decay of a per-frame score series (DAVIS ``db_statistics``)."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError("series_stats needs a non-empty 1-D series of scores")
    quarters = [arr[s] for s in decay_bins(arr.size)]
    return SeriesStats(
        mean=float(arr.mean()),
        recall=float(np.mean(arr > RECALL_THRESHOLD)),
        decay=float(quarters[0].mean() - quarters[-1].mean()),
        num_frames=int(arr.size),
    )


def jf_mean(j_mean: float, f_mean: float) -> float:
    """J&F: the average of the J mean and the F mean."""
    return (j_mean + f_mean) / 2.0
