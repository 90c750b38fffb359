"""Point grids of the automatic mask generator, numpy only: ``MaskGeneratorOptions`` checks its
grids with them without importing torch (the ROS node's parameters do, with the model elsewhere).
``amg_geometry`` re-exports them next to the torch geometry the generator runs.
"""

from __future__ import annotations

from typing import List, Sequence

import numpy as np


def point_grid(points_per_side: int) -> np.ndarray:
    """``points_per_side**2`` points ``(x, y)`` in ``[0, 1]``, centred in equal cells; x varies fastest."""
    half_cell = 1.0 / (2 * points_per_side)
    ticks = np.linspace(half_cell, 1.0 - half_cell, points_per_side)
    ys, xs = np.meshgrid(ticks, ticks, indexing="ij")
    return np.stack([xs.reshape(-1), ys.reshape(-1)], axis=-1)


def layer_points_per_side(points_per_side: int, crop_n_layers: int, downscale_factor: int) -> List[int]:
    """Points per side of the grid used in each crop layer: layer ``i`` divides by ``factor**i`` (floored)."""
    return [int(points_per_side / (downscale_factor ** layer)) for layer in range(crop_n_layers + 1)]


def validate_point_grids(grids: Sequence[np.ndarray], layers_needed: int) -> List[np.ndarray]:
    """Explicit grids, one per crop layer: ``[N, 2]`` arrays of normalised ``(x, y)`` in ``[0, 1]``."""
    if len(grids) < layers_needed:
        raise ValueError(f"point_grids: need one grid per crop layer ({layers_needed} with crop_n_layers="
                         f"{layers_needed - 1}), got {len(grids)}")
    checked = []
    for layer, grid in enumerate(grids):
        array = np.asarray(grid, dtype=np.float64)
        if array.ndim != 2 or array.shape[1] != 2 or array.shape[0] == 0:
            raise ValueError(f"point_grids[{layer}] must be a non-empty N x 2 array of (x, y), got shape "
                             f"{array.shape}")
        if not np.all(np.isfinite(array)) or array.min() < 0.0 or array.max() > 1.0:
            raise ValueError(f"point_grids[{layer}] must hold coordinates normalised to [0, 1]")
        checked.append(array)
    return checked
