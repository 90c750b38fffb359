"""One-to-one assignment of predicted tracks to ground-truth objects (torch-free, ROS-free).

``max_weight_assignment`` solves the rectangular linear assignment problem exactly with the
Hungarian algorithm (Kuhn-Munkres with potentials, O(n^2 m)): it picks at most one column per
row and one row per column, as many pairs as the smaller side allows, maximising the sum of
the chosen weights. Used by ``sam2-eval --prompt auto`` as in the DAVIS unsupervised protocol,
where the weight of (ground-truth object, track) is (mean J + mean F) / 2 of the track on that
object over the annotated frames. scipy's ``linear_sum_assignment`` does the same; it is not a dependency of this project.
"""

from __future__ import annotations

import numpy as np


def max_weight_assignment(weights: np.ndarray) -> list[tuple[int, int]]:
    """Pairs (row, column) of a one-to-one assignment with the largest total weight.

    Args:
        weights: a finite 2-D array, rows x columns (either may be 0).

    Returns the min(rows, columns) pairs, sorted by row.
    """
    weights = np.asarray(weights, dtype=np.float64)
    if weights.ndim != 2:
        raise ValueError(f"weights must be a 2-D array, got shape {weights.shape}")
    if not np.all(np.isfinite(weights)):
        raise ValueError("weights must be finite")
    transposed = weights.shape[0] > weights.shape[1]
    cost = -(weights.T if transposed else weights)  # n <= m rows; minimise the negated weights
    n, m = cost.shape
    if n == 0:
        return []
    # Potentials u (rows), v (columns) and the matching col -> row, 1-based with 0 as a free slot.
    u = np.zeros(n + 1)
    v = np.zeros(m + 1)
    row_of = np.zeros(m + 1, dtype=np.int64)
    for i in range(1, n + 1):
        # Grow an alternating tree from row i along shortest reduced-cost paths (Dijkstra-like).
        row_of[0] = i
        j0 = 0
        min_to = np.full(m + 1, np.inf)
        previous = np.zeros(m + 1, dtype=np.int64)
        used = np.zeros(m + 1, dtype=bool)
        while True:
            used[j0] = True
            i0 = row_of[j0]
            free = ~used[1:]
            reduced = cost[i0 - 1] - u[i0] - v[1:]
            better = free & (reduced < min_to[1:])
            min_to[1:][better] = reduced[better]
            previous[1:][better] = j0
            candidates = np.where(free, min_to[1:], np.inf)
            j1 = int(np.argmin(candidates)) + 1
            delta = candidates[j1 - 1]
            u[row_of[used]] += delta
            v[used] -= delta
            min_to[1:][free] -= delta
            j0 = j1
            if row_of[j0] == 0:
                break
        while j0:  # flip the augmenting path
            j1 = previous[j0]
            row_of[j0] = row_of[j1]
            j0 = j1
    pairs = [(int(row_of[j]) - 1, j - 1) for j in range(1, m + 1) if row_of[j]]
    if transposed:
        pairs = [(c, r) for r, c in pairs]
    return sorted(pairs)
