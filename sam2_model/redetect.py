"""Where to click to find a lost object again: the robust policy's ``redetect`` (issue 25, round 15).

Where the policy leaves an object not visible on a frame, while it remembers the object's colour
and knows where it can be, ``click_cells`` looks for that colour in the frame's colour grid (the
model's low-resolution mask grid, ``colour_check.frame_colour_grid``) near the predicted and the
last seen centre, away from the other objects' masks. The tracker gives the mask decoder one click
at the best match, on the object's memory-conditioned features (as a user's correction would be),
and ``robust_memory.judge_redetection`` decides whether the mask it makes is the object.

Why: on the generated videos most frames where the object is in view but reported absent are
frames where the model's own mask (blanked or not) lies on something else, a look-alike or the
background, and the gates rightly refuse it; the object itself is then nowhere in the output.
A click at a cell of its colour where it can be asks the decoder for the mask around that cell.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from .colour_check import mask_colours
from .colour_cut import colour_distances

SMOOTHING = 3  # cells: a click lands where a patch, not one cell, has the colour (texture, shading)
TIE_BREAK = 1e-3  # RGB units per cell: among equal colours the cell nearest where the object can be


@dataclass(frozen=True)
class ClickSearch:
    """One object's search: its remembered colour, the centres it may be near and how near (cells)."""

    colour: np.ndarray                          # RGB, 0-255
    centres: Sequence[Tuple[float, float]]      # (x, y) in grid cells: predicted, last seen
    reach: float                                # greatest distance from the nearer centre, in cells


def click_cells(grid: torch.Tensor, searches: Sequence[ClickSearch], occupied: torch.Tensor,
                max_distance: float) -> List[Optional[Tuple[float, float]]]:
    """Per search, the centre (x, y, in grid cells) of the cell whose neighbourhood's mean colour
    lies nearest the object's (of equal ones, the cell nearest a centre), among the cells within
    its reach and not ``occupied`` (``[K, h, w]`` bool, one row per search), if that colour lies
    within ``max_distance``; else None. ``grid``: ``[3, h, w]`` RGB. One pass for all searches,
    one copy to the host."""
    if not searches:
        return []
    height, width = grid.shape[-2:]
    device = grid.device
    smooth = F.avg_pool2d(grid[None].float(), SMOOTHING, stride=1, padding=SMOOTHING // 2,
                          count_include_pad=False)[0]
    colours = torch.from_numpy(np.stack([s.colour for s in searches]))
    distance = colour_distances(smooth, colours, device)[:, 0]  # [K, h, w]
    ys = torch.arange(height, device=device, dtype=torch.float32)[:, None] + 0.5
    xs = torch.arange(width, device=device, dtype=torch.float32)[None, :] + 0.5
    nearest = torch.full((len(searches), height, width), float("inf"), device=device)
    for k, search in enumerate(searches):
        for cx, cy in search.centres:
            nearest[k] = torch.minimum(nearest[k], torch.hypot(xs - cx, ys - cy))
    within = nearest <= torch.tensor([s.reach for s in searches], device=device)[:, None, None]
    allowed = within & ~occupied.to(device) & (distance <= max_distance)
    # Equal colours (a flat patch) are told apart by the distance to the nearer centre.
    cost = distance + TIE_BREAK * nearest
    best = torch.where(allowed, cost, torch.full_like(cost, float("inf"))).flatten(1)
    values, cells = best.min(dim=1)
    found = []
    for value, cell in zip(values.tolist(), cells.tolist()):
        found.append(None if not np.isfinite(value) else (cell % width + 0.5, cell // width + 0.5))
    return found


def others_masks(mask_logits: torch.Tensor, rows: Sequence[int]) -> torch.Tensor:
    """``[N, 1, h, w]`` mask logits -> ``[len(rows), h, w]``: for each given object, the cells
    under any other object's mask (logits > 0)."""
    owned = (mask_logits[:, 0] > 0).to(torch.int32)
    index = torch.tensor(list(rows), device=mask_logits.device, dtype=torch.long)
    return (owned.sum(dim=0)[None] - owned[index]) > 0


def nearest_in_colour(candidates: torch.Tensor, grid: torch.Tensor, colours: Sequence[np.ndarray]) -> torch.Tensor:
    """``[K, M, h, w]`` candidate mask logits (the decoder's answers to each object's click) ->
    ``[K]``: the candidate whose mean colour lies nearest the object's remembered colour (an empty
    one never, unless all are): the mask then judged by its colour is the one most likely to pass,
    rather than the decoder's own choice (the highest predicted IoU), which this small model
    predicts poorly for clicks on memory-conditioned features (0.1-0.3 on the dev set). On the
    48-frame dev set the choice changed J&F by +0.001 only."""
    count, choices = candidates.shape[:2]
    flat = candidates.reshape(count * choices, 1, *candidates.shape[-2:])
    means = mask_colours(flat, grid).reshape(count, choices, 3)
    wanted = torch.tensor(np.stack(colours), dtype=torch.float32, device=means.device)
    distance = torch.linalg.vector_norm(means - wanted[:, None], dim=-1)
    return torch.nan_to_num(distance, nan=float("inf")).argmin(dim=1)
