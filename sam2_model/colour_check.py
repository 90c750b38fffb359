"""Colour evidence for the robust policy's ``colour_check`` (issue 25, round 10): a training-free
appearance cue. ``StreamingTracker`` turns each prepared frame into a colour grid the size of the
model's low-resolution mask grid once (``frame_colour_grid``), and measures the mean colour under
every object's mask in one batched pass (``mask_colours``); ``robust_memory.decide`` keeps each
object's remembered colour (an exponential moving average over its confidently visible frames)
and compares a re-appearance's colour with it (``colour_distance``).

Why: most identity switches on the generated videos (docs/benchmarks.md, rounds 8-9) are a hidden
object re-appearing onto another tracked target, or sliding onto it; there the targets have
random saturated colours, so the pixels under a mask taken for the wrong object have another mean
colour than the object had. Colours are RGB in 0-255 units.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .transforms import IMAGENET_MEAN, IMAGENET_STD


def frame_colour_grid(pixels: torch.Tensor, side: int) -> torch.Tensor:
    """``[1, 3, S, S]`` normalised model input -> ``[3, side, side]`` float32 RGB (0-255), each
    cell the mean of the input pixels it covers (the mask grid's cells). On the pixels' device."""
    mean = torch.tensor(IMAGENET_MEAN, device=pixels.device).reshape(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=pixels.device).reshape(1, 3, 1, 1)
    rgb = (pixels.float() * std + mean) * 255.0
    return F.adaptive_avg_pool2d(rgb, (side, side))[0]


def mask_colours(logits: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """``[N, 1, h, w]`` mask logits and a ``[3, h, w]`` colour grid -> ``[N, 3]``: the mean colour
    of the cells under each mask (logits > 0); NaN for an empty mask. One pass for all objects."""
    mask = (logits[:, 0] > 0).flatten(1).float()                    # [N, h*w]
    total = mask @ grid.flatten(1).to(mask.device, torch.float32).T  # [N, 3]
    count = mask.sum(dim=1, keepdim=True)
    return torch.where(count > 0, total / count.clamp(min=1), torch.full_like(total, float("nan")))


def colour_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Euclidean distance of two RGB colours (0-255 units)."""
    return float(np.linalg.norm(np.asarray(a, float) - np.asarray(b, float)))
