"""Geometry of binary masks: their IoU, their tight box and their most interior pixel.

numpy only; the one home of these measures for sam2-eval (which prompts every object from its
ground truth and scores it), the demo and the node's TrackedObject boxes. The interior point is
the pixel farthest from the boundary by an exact Euclidean distance transform; the image border
counts as boundary, so an object cut by the frame edge is not clicked on the edge.

Box formats: a *box* is ``(x0, y0, x1, y1)``, the columns and rows of its first and last pixels,
inclusive (as SAM 2's box prompts and tools); a *roi* is ``(x, y, width, height)``, the format of
sensor_msgs/RegionOfInterest, all zeros for "no box".
"""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

Box = Tuple[int, int, int, int]


def mask_iou(predicted: np.ndarray, truth: np.ndarray) -> float:
    """Intersection over union of two boolean masks of one shape; 1.0 when both are empty (the DAVIS
    convention: nothing to find and nothing found is perfect)."""
    predicted, truth = np.asarray(predicted, dtype=bool), np.asarray(truth, dtype=bool)
    if predicted.shape != truth.shape:
        raise ValueError(f"mask_iou: masks of different shapes {predicted.shape} and {truth.shape}")
    union = int(np.count_nonzero(predicted | truth))
    return 1.0 if union == 0 else int(np.count_nonzero(predicted & truth)) / union


def _bounds(mask: np.ndarray) -> Optional[Box]:
    """The inclusive box of the mask's pixels; None for an empty mask."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]), int(rows[-1])


def box_from_mask(mask: np.ndarray) -> Box:
    """Tight box (x0, y0, x1, y1) around the mask's pixels, inclusive; an empty mask is an error (a
    prompt needs an object)."""
    box = _bounds(np.asarray(mask, dtype=bool))
    if box is None:
        raise ValueError("box_from_mask: the mask is empty")
    return box


def roi_from_box(box: Box) -> Box:
    """Inclusive (x0, y0, x1, y1) -> (x, y, width, height)."""
    x0, y0, x1, y1 = box
    return x0, y0, x1 - x0 + 1, y1 - y0 + 1


def box_from_roi(roi: Box) -> Box:
    """(x, y, width, height) with a positive size -> inclusive (x0, y0, x1, y1)."""
    x, y, width, height = roi
    if width <= 0 or height <= 0:
        raise ValueError(f"box_from_roi: {roi} has no pixels")
    return x, y, x + width - 1, y + height - 1


def roi_from_mask(mask: np.ndarray) -> Box:
    """The tight box of box_from_mask as (x, y, width, height); zeros for an empty mask (no object)."""
    box = _bounds(np.asarray(mask, dtype=bool))
    return (0, 0, 0, 0) if box is None else roi_from_box(box)


def _column_distance2(padded: np.ndarray) -> np.ndarray:
    """Squared distance from each pixel to the nearest background pixel in its own column."""
    h, w = padded.shape
    rows = np.arange(h)[:, None]
    big = np.int64(h + w)
    above = np.maximum.accumulate(np.where(padded, -big, rows), axis=0)
    below = np.minimum.accumulate(np.where(padded, 2 * big, rows)[::-1], axis=0)[::-1]
    column = np.minimum(rows - above, below - rows).astype(np.int64)
    return column * column


def squared_distance_to_background(mask: np.ndarray) -> np.ndarray:
    """Exact squared Euclidean distance from each pixel to the nearest background pixel.

    Pixels outside the array count as background. Separable: g, the distance to
    background along each column, then D^2(y, x) = min_k k^2 + g(y, x + k)^2, trying
    offsets k = 0, +-1, +-2, ... and stopping once k^2 reaches every current value
    (no larger offset can win).
    """
    padded = np.pad(np.asarray(mask, dtype=bool), 1, constant_values=False)
    g2 = _column_distance2(padded)
    best = g2.copy()
    w = padded.shape[1]
    k = 1
    while k < w and k * k < best.max():
        cost = np.int64(k * k)
        np.minimum(best[:, k:], g2[:, :-k] + cost, out=best[:, k:])
        np.minimum(best[:, :-k], g2[:, k:] + cost, out=best[:, :-k])
        k += 1
    return best[1:-1, 1:-1]


def _distance2_at(g2: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """The exact squared distance of squared_distance_to_background, at the given pixels only."""
    best = g2[ys, xs].copy()
    w = g2.shape[1]
    k = 1
    while k < w and best.size and k * k < best.max():
        cost = np.int64(k * k)
        for shifted in (xs - k, xs + k):
            ok = (shifted >= 0) & (shifted < w)
            best[ok] = np.minimum(best[ok], g2[ys[ok], shifted[ok]] + cost)
        k += 1
    return best


def interior_point(mask: np.ndarray) -> tuple[int, int]:
    """(x, y) of the mask pixel farthest from the boundary; the first in row-major order on ties.

    Same result as the argmax of squared_distance_to_background, without computing it
    everywhere: min(column distance, row distance)^2 bounds each pixel's value from
    above, the exact value at the pixel with the largest bound is a lower bound on the
    maximum, and only pixels whose bound reaches it are evaluated exactly.
    """
    mask = np.asarray(mask, dtype=bool)
    box = _bounds(mask)
    if box is None:
        raise ValueError("interior_point: the mask is empty")
    # Work on the mask's bounding box: outside it everything is background, and the padding
    # stands for that background (or for the image edge, which counts as boundary).
    x0, y0, x1, y1 = box
    padded = np.pad(mask[y0 : y1 + 1, x0 : x1 + 1], 1, constant_values=False)
    g2 = _column_distance2(padded)
    upper = np.minimum(g2, _column_distance2(padded.T).T)
    seed = np.unravel_index(int(np.argmax(upper)), upper.shape)
    lower = _distance2_at(g2, np.array([seed[0]]), np.array([seed[1]]))[0]
    ys, xs = np.nonzero(upper >= lower)  # row-major order, so argmax keeps the first on ties
    exact = _distance2_at(g2, ys, xs)
    i = int(np.argmax(exact))
    return x0 + int(xs[i]) - 1, y0 + int(ys[i]) - 1
