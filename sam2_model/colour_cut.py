"""The robust policy's colour cut (issue 25, round 20): where a gate refuses a mask the model called
visible, the mask's cells in the object's remembered colour are judged as the object in its place.
``robust_step`` calls ``cut_to_colour`` once per frame for all refused objects at once.

Why: the colour gates judge a mask by its mean colour. A mask lying half on the object and half on
something else (a look-alike it is spreading onto, the occluder the object is sliding behind) has a
mean colour far from the object's, and the whole mask was refused, the object's part with it. On the
200 dev videos (round 19's diagnosis), of the 90 visible frames where SAM 2's mask was on the target
and ``robust`` showed nothing, 39 were ``robust``'s own mask on the target, refused by a gate. The
cut keeps the part in the object's colour; the gates then judge that part as they judge any mask,
so a mask that lies wholly on something else keeps too few cells and stays refused.

Cells are the low-resolution mask grid's, coloured by ``colour_check.frame_colour_grid`` (at the
stream's first exposure with the ``exposure`` component).
"""

from __future__ import annotations

import torch


def cells_in_colour(logits: torch.Tensor, grid: torch.Tensor, colours: torch.Tensor,
                    max_distance: float) -> torch.Tensor:
    """``[K, 1, h, w]`` mask logits, a ``[3, h, w]`` colour grid and ``[K, 3]`` colours (RGB 0-255,
    one per mask) -> ``[K, 1, h, w]`` bool: the cells of each mask (logits > 0) whose colour lies
    within ``max_distance`` of that mask's colour."""
    grid = grid.to(logits.device, torch.float32)
    colours = colours.to(logits.device, torch.float32)
    distance = (grid[None] - colours[:, :, None, None]).square().sum(dim=1, keepdim=True).sqrt()
    return (logits > 0) & (distance <= max_distance)


def cut_to_colour(logits: torch.Tensor, grid: torch.Tensor, colours: torch.Tensor, max_distance: float,
                  drop_value: float) -> torch.Tensor:
    """Each mask cut to its cells in its colour (``cells_in_colour``): its other cells set to
    ``drop_value`` (the model's "no object" logit), the kept ones as they were."""
    kept = cells_in_colour(logits, grid, colours, max_distance)
    return torch.where(kept, logits, torch.full_like(logits, drop_value))
