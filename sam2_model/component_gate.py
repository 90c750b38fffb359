"""The robust policy's component gate (issue 25, round 8): a mask's connected parts far from where
its object is expected are dropped before the frame's memory is encoded.
``robust_step.apply_robust_policy`` calls ``keep_components_near`` once per frame for every object
at once, under ``robust`` with the ``component_gate`` component.

Why: where an identity switch starts, the small model's mask has usually already spread onto
the other object (tools/switch_onsets.py: on dev 0-39, 17 of 18 switches of an object called
visible throughout were preceded by a mask touching the other object, 13 of them by a mask of
two or more parts); the memory encoded from such a mask teaches the model the look-alike, and a
few frames later the mask follows it wholly. After DAM4SAM's distractor-aware memory (its idea:
what competes with the target must not be learnt as the target), the parts that do not reach
the region where the object is expected are cut from the output and from the memory.

The region is the object's expected box (``RobustObjectState.expected_region``: the Kalman
prediction and the last accepted box, grown by ``component_margin`` box sizes); a part is kept
when any of its cells lies in it (8-connected parts of the low-resolution mask, logits > 0). A
mask none of whose parts reaches the region is left whole: a mask that jumped entirely is the
motion and jump gates' question, not this one's. A look-alike the mask reaches through its own
cells (the two touch, as in most switches of the dev set) is one part with the target: the gate
cannot tell them apart and keeps it.
"""

from __future__ import annotations

from typing import List, Optional

import numpy as np
import torch
import torch.nn.functional as F


def region_masks(regions: List[Optional[np.ndarray]], height: int, width: int, device: torch.device
                 ) -> torch.Tensor:
    """``[N, 1, height, width]`` bool: the grid cells whose centres each region (x0, y0, x1, y1,
    pixel edges, may reach past the grid) covers; all False for a region that is None."""
    columns = torch.arange(width, device=device, dtype=torch.float32) + 0.5
    rows = torch.arange(height, device=device, dtype=torch.float32) + 0.5
    out = torch.zeros(len(regions), 1, height, width, dtype=torch.bool, device=device)
    for row, region in enumerate(regions):
        if region is None:
            continue
        x0, y0, x1, y1 = (float(v) for v in region)
        inside_x = (columns >= x0) & (columns <= x1)
        inside_y = (rows >= y0) & (rows <= y1)
        out[row, 0] = inside_y[:, None] & inside_x[None, :]
    return out


def connected_to(seeds: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The cells of ``mask`` 8-connected (within ``mask``) to a cell of ``seeds``; both
    ``[N, 1, h, w]`` bool. Grows one cell per step until nothing changes (at most h*w steps; a
    compact object needs about its diameter in cells)."""
    reached = seeds & mask
    for _ in range(mask.shape[-1] * mask.shape[-2]):
        grown = F.max_pool2d(reached.float(), kernel_size=3, stride=1, padding=1).bool() & mask
        if torch.equal(grown, reached):
            break
        reached = grown
    return reached


def keep_components_near(logits: torch.Tensor, regions: List[Optional[np.ndarray]], drop_value: float
                         ) -> "tuple[torch.Tensor, List[int]]":
    """``logits`` ``[N, 1, h, w]`` (low-resolution mask logits) with, in each row whose region is
    given, the parts of the mask (logits > 0) that do not reach the region set to ``drop_value``.
    Rows without a region, with an empty mask, or whose mask has no part in the region, stay as
    they were. Returns the logits (the input itself when nothing changed) and the changed rows."""
    if all(region is None for region in regions):
        return logits, []
    mask = logits > 0
    inside = region_masks(regions, logits.shape[-2], logits.shape[-1], logits.device)
    kept = connected_to(inside, mask)
    has_seed = kept.flatten(1).any(dim=1)
    dropped = mask & ~kept & has_seed[:, None, None, None]
    changed = dropped.flatten(1).any(dim=1)
    rows = [int(r) for r in torch.nonzero(changed).flatten().tolist()]
    if not rows:
        return logits, []
    trimmed = logits.clone()
    trimmed[dropped] = drop_value
    return trimmed, rows
