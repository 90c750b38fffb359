"""Small regions of mask logits: holes filled (SAM 2's ``fill_hole_area``), islands removed.

The official code labels connected components with a custom CUDA kernel. Here the labelling is
plain PyTorch (runs on CPU and GPU): min-label propagation over 8-neighbourhoods with pointer
jumping, which converges in a few dozen passes on real masks.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# Score given to a filled hole pixel: just above the 0 threshold (official value).
HOLE_FILL_LOGIT = 0.1


def connected_component_areas(region: torch.Tensor) -> torch.Tensor:
    """For ``region`` ``[N, H, W]`` bool, the 8-connected component area of each region pixel
    (0 outside the region)."""
    batch, height, width = region.shape
    num_pixels = height * width
    if batch == 0 or num_pixels == 0:
        return torch.zeros_like(region, dtype=torch.int64)
    sentinel = float(num_pixels)
    # Labels are pixel indices (exact in float32 up to 2**24 pixels); max-pooling on the
    # negated labels gives the minimum label among the 3x3 neighbours.
    index = torch.arange(num_pixels, device=region.device, dtype=torch.float32).reshape(1, height, width)
    labels = torch.where(region, index, torch.full_like(index, sentinel))
    while True:
        neighbours = -F.max_pool2d(-labels.unsqueeze(1), kernel_size=3, stride=1, padding=1).squeeze(1)
        updated = torch.where(region, torch.minimum(labels, neighbours), labels)
        # Pointer jumping: a label is the index of a pixel of the same component, whose own
        # label can only be smaller. Following it collapses long chains quickly.
        flat = updated.reshape(batch, num_pixels)
        jumped = torch.gather(flat, 1, flat.clamp(max=num_pixels - 1).long())
        flat = torch.where(flat < sentinel, torch.minimum(flat, jumped), flat)
        updated = flat.reshape(batch, height, width)
        if torch.equal(updated, labels):
            break
        labels = updated
    flat = labels.reshape(batch, num_pixels).long()
    offsets = torch.arange(batch, device=region.device).unsqueeze(1) * (num_pixels + 1)
    counts = torch.bincount((flat + offsets).reshape(-1), minlength=batch * (num_pixels + 1))
    areas = counts.gather(0, (flat + offsets).reshape(-1)).reshape(batch, height, width)
    return torch.where(region, areas, torch.zeros_like(areas))


def fill_holes(mask_logits: torch.Tensor, max_area: int) -> torch.Tensor:
    """Set background regions (logit <= 0) of at most ``max_area`` pixels to a small positive
    logit. ``mask_logits`` ``[N, 1, H, W]``; regions touching the border count too (as upstream)."""
    if max_area <= 0 or mask_logits.numel() == 0:
        return mask_logits
    background = mask_logits[:, 0] <= 0
    areas = connected_component_areas(background)
    is_hole = (background & (areas <= max_area)).unsqueeze(1)
    return torch.where(is_hole, torch.full_like(mask_logits, HOLE_FILL_LOGIT), mask_logits)


# The image predictor's clean-up moves a changed pixel this far past the mask threshold (official value).
REGION_CLEANUP_MARGIN = 10.0


def remove_small_regions(mask_logits: torch.Tensor, max_area: int, mask_threshold: float = 0.0) -> torch.Tensor:
    """The official image predictor's clean-up of low-resolution logits ``[N, 1, H, W]`` (what its
    ``max_hole_area`` and ``max_sprinkle_area``, both set to the automatic mask generator's
    ``min_mask_region_area``, do): 8-connected background regions (logit <= threshold) of at most
    ``max_area`` pixels become foreground (threshold + 10), then foreground regions of at most
    ``max_area`` pixels become background (threshold - 10). Both sets of regions come from the
    logits as given, so a small island inside a filled hole is still removed."""
    if max_area <= 0 or mask_logits.numel() == 0:
        return mask_logits
    foreground = mask_logits[:, 0] > mask_threshold
    background = ~foreground
    is_hole = (background & (connected_component_areas(background) <= max_area)).unsqueeze(1)
    is_sprinkle = (foreground & (connected_component_areas(foreground) <= max_area)).unsqueeze(1)
    cleaned = torch.where(is_hole, torch.full_like(mask_logits, mask_threshold + REGION_CLEANUP_MARGIN), mask_logits)
    return torch.where(is_sprinkle, torch.full_like(mask_logits, mask_threshold - REGION_CLEANUP_MARGIN), cleaned)
