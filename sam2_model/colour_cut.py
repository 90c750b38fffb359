"""The robust policy's colour cut and colour trim (issue 25, round 20) and reacquire cut (round 22): a mask
cut down to its cells in the object's remembered colour. ``robust_step`` calls ``cut_to_colour`` once per
frame for all refused objects at once (colour_cut) and for all objects scored absent whose unblanked mask
has another colour than theirs (reacquire_cut), and ``trim_far_cells`` once per frame for every object
(colour_trim).

Why: the colour gates judge a mask by its mean colour. A mask lying half on the object and half on
something else (a look-alike it is spreading onto, the occluder the object is sliding behind) has a
mean colour far from the object's, and the whole mask was refused, the object's part with it. On the
200 dev videos (round 19's diagnosis), of the 90 visible frames where SAM 2's mask was on the target
and ``robust`` showed nothing, 39 were ``robust``'s own mask on the target, refused by a gate. The
cut keeps the part in the object's colour; the gates then judge that part as they judge any mask,
so a mask that lies wholly on something else keeps too few cells and stays refused.

The trim, on every frame: a mask spreading onto something of another colour (a look-alike, most
identity switches start so) has cells far from the object's colour outside the box where the object
is expected (its predicted and last accepted boxes); those cells are cut from the output and from the
memory before anything else reads the mask, so the model does not learn the other object as this one.
Inside that box nothing is cut: the object's own shading, texture and edges stay.

Cells are the low-resolution mask grid's, coloured by ``colour_check.frame_colour_grid`` (at the
stream's first exposure with the ``exposure`` component).
"""

from __future__ import annotations

from typing import List, Optional, Tuple

import numpy as np
import torch

from .component_gate import region_masks


def cells_in_colour(logits: torch.Tensor, grid: torch.Tensor, colours: torch.Tensor,
                    max_distance: float) -> torch.Tensor:
    """``[K, 1, h, w]`` mask logits, a ``[3, h, w]`` colour grid and ``[K, 3]`` colours (RGB 0-255,
    one per mask) -> ``[K, 1, h, w]`` bool: the cells of each mask (logits > 0) whose colour lies
    within ``max_distance`` of that mask's colour."""
    return (logits > 0) & (colour_distances(grid, colours, logits.device) <= max_distance)


def colour_distances(grid: torch.Tensor, colours: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``[3, h, w]`` colour grid and ``[K, 3]`` colours -> ``[K, 1, h, w]``: each cell's RGB distance
    from each colour, on ``device``."""
    grid = grid.to(device, torch.float32)
    colours = colours.to(device, torch.float32)
    return (grid[None] - colours[:, :, None, None]).square().sum(dim=1, keepdim=True).sqrt()


def cut_to_colour(logits: torch.Tensor, grid: torch.Tensor, colours: torch.Tensor, max_distance: float,
                  drop_value: float) -> torch.Tensor:
    """Each mask cut to its cells in its colour (``cells_in_colour``): its other cells set to
    ``drop_value`` (the model's "no object" logit), the kept ones as they were."""
    kept = cells_in_colour(logits, grid, colours, max_distance)
    return torch.where(kept, logits, torch.full_like(logits, drop_value))


def trim_far_cells(logits: torch.Tensor, grid: torch.Tensor, colours: torch.Tensor,
                   regions: List[Optional[np.ndarray]], max_distance: float, min_cells: int, drop_value: float
                   ) -> Tuple[torch.Tensor, List[int]]:
    """``[K, 1, h, w]`` mask logits, each with its object's colour (``[K, 3]``) and expected region
    (x0, y0, x1, y1 in grid cells; None: nothing is trimmed) -> the logits with, in each mask that has
    cells outside its region farther than ``max_distance`` from its object's colour, everything outside
    the region but the mask's cells within that distance set to ``drop_value`` (the far cells cut from
    the mask, the cells already outside it made surely not the object, as ``cut_to_colour`` leaves
    them), and the rows that changed. A mask that would keep fewer than ``min_cells`` cells stays whole
    (a mask wholly on something else is the gates' question)."""
    mask = logits > 0
    near = cells_in_colour(logits, grid, colours, max_distance)
    inside = region_masks(regions, logits.shape[-2], logits.shape[-1], logits.device)
    has_region = torch.tensor([region is not None for region in regions], device=logits.device)
    dropped = ~near & ~inside & has_region[:, None, None, None]
    kept = (mask & ~dropped).flatten(1).sum(dim=1)
    trimmed_rows = (mask & dropped).flatten(1).any(dim=1) & (kept >= min_cells)
    rows = [int(row) for row in torch.nonzero(trimmed_rows).flatten().tolist()]
    if not rows:
        return logits, []
    out = logits.clone()
    out[dropped & trimmed_rows[:, None, None, None]] = drop_value
    return out, rows
