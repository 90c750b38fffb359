"""Geometry of a binary mask for prompts: its tight box and its most interior pixel.

numpy only, shared by sam2-eval (which prompts every object from its ground truth) and the
demo. The interior point is the pixel farthest from the boundary by an exact Euclidean
distance transform; the image border counts as boundary, so an object cut by the frame
edge is not clicked on the edge.
"""

from __future__ import annotations

import numpy as np


def box_from_mask(mask: np.ndarray) -> tuple[int, int, int, int]:
    """Tight box (x0, y0, x1, y1) around the mask's pixels, inclusive pixel indices as SAM 2's tools."""
    mask = np.asarray(mask, dtype=bool)
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        raise ValueError("box_from_mask: the mask is empty")
    return int(cols[0]), int(rows[0]), int(cols[-1]), int(rows[-1])


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
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        raise ValueError("interior_point: the mask is empty")
    # Work on the mask's bounding box: outside it everything is background, and the padding
    # stands for that background (or for the image edge, which counts as boundary).
    y0, x0 = int(rows[0]), int(cols[0])
    padded = np.pad(mask[y0 : int(rows[-1]) + 1, x0 : int(cols[-1]) + 1], 1, constant_values=False)
    g2 = _column_distance2(padded)
    upper = np.minimum(g2, _column_distance2(padded.T).T)
    seed = np.unravel_index(int(np.argmax(upper)), upper.shape)
    lower = _distance2_at(g2, np.array([seed[0]]), np.array([seed[1]]))[0]
    ys, xs = np.nonzero(upper >= lower)  # row-major order, so argmax keeps the first on ties
    exact = _distance2_at(g2, ys, xs)
    i = int(np.argmax(exact))
    return x0 + int(xs[i]) - 1, y0 + int(ys[i]) - 1
