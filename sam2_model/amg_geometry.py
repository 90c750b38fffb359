"""Geometry of automatic mask generation: point grids, crop boxes, mask boxes, stability, box NMS.

Plain torch and numpy (no torchvision), used by ``automatic_mask_generator``. Each function
implements the definition the official ``SAM2AutomaticMaskGenerator`` (sam2 1.1.0) uses, so that
the same image gives the same masks in the same order.

Box conventions here (the official generator's): a *mask box* is ``(x0, y0, x1, y1)`` with ``x1``
and ``y1`` the column and row of the last mask pixel (inclusive), ``(0, 0, 0, 0)`` for an empty
mask; a *crop box* is ``(x0, y0, x1, y1)`` with exclusive ends, as a slice ``image[y0:y1, x0:x1]``.
Box areas (for NMS) are ``(x1 - x0) * (y1 - y0)`` in both cases, as in torchvision.
"""

from __future__ import annotations

import math
from itertools import product
from typing import List, Tuple

import numpy as np
import torch

# Point grids are numpy only (sam2_model.point_grids, torch-free for option checks); re-exported.
from .point_grids import layer_points_per_side, point_grid, validate_point_grids  # noqa: F401

CropBox = Tuple[int, int, int, int]

# A mask whose box comes this close (pixels) to a crop's inner edge was probably cut by the crop.
CROP_EDGE_TOLERANCE = 20.0


def crop_boxes(image_hw: Tuple[int, int], crop_n_layers: int, overlap_ratio: float) -> List[Tuple[CropBox, int]]:
    """Every crop with its layer: the whole image (layer 0), then layer ``i`` tiles the image with
    ``2**i x 2**i`` overlapping crops, listed column by column (x outer, y inner)."""
    height, width = image_hw
    crops: List[Tuple[CropBox, int]] = [((0, 0, width, height), 0)]
    short_side = min(height, width)
    for layer in range(1, crop_n_layers + 1):
        per_side = 2 ** layer
        # The overlap shrinks with the crops; the expression (and its float rounding) is the official one.
        overlap = int(overlap_ratio * short_side * (2 / per_side))
        crop_w = math.ceil((overlap * (per_side - 1) + width) / per_side)
        crop_h = math.ceil((overlap * (per_side - 1) + height) / per_side)
        starts_x = [int((crop_w - overlap) * i) for i in range(per_side)]
        starts_y = [int((crop_h - overlap) * i) for i in range(per_side)]
        for x0, y0 in product(starts_x, starts_y):
            crops.append(((x0, y0, min(x0 + crop_w, width), min(y0 + crop_h, height)), layer))
    return crops


def mask_boxes(masks: torch.Tensor) -> torch.Tensor:
    """Inclusive boxes ``[N, 4]`` (int64) of ``[N, H, W]`` bool masks; zeros for an empty mask."""
    count, height, width = masks.shape
    if count == 0:
        return torch.zeros(0, 4, dtype=torch.int64, device=masks.device)
    rows = masks.any(dim=2)  # [N, H]
    cols = masks.any(dim=1)  # [N, W]

    def first_last(present: torch.Tensor, length: int) -> Tuple[torch.Tensor, torch.Tensor]:
        index = torch.arange(length, device=masks.device)
        last = torch.where(present, index, -1).amax(dim=1)
        first = torch.where(present, index, length).amin(dim=1)
        return first, last

    y0, y1 = first_last(rows, height)
    x0, x1 = first_last(cols, width)
    boxes = torch.stack([x0, y0, x1, y1], dim=1)
    empty = y1 < 0
    return torch.where(empty[:, None], torch.zeros_like(boxes), boxes)


def stability_scores(logits: torch.Tensor, mask_threshold: float, offset: float) -> torch.Tensor:
    """IoU of each mask binarised at ``threshold + offset`` and at ``threshold - offset``
    (``[N, H, W]`` -> ``[N]`` float32). The first lies inside the second, so IoU = ratio of areas;
    NaN where both are empty (no pixel above the lower cut), which fails every threshold."""
    inner = (logits > mask_threshold + offset).flatten(1).sum(1)
    outer = (logits > mask_threshold - offset).flatten(1).sum(1)
    return inner.float() / outer.float()


def near_crop_edge(boxes: torch.Tensor, crop_box: CropBox, image_hw: Tuple[int, int]) -> torch.Tensor:
    """Which boxes (inclusive, in crop coordinates) touch an edge of the crop that is not an edge of
    the image, within CROP_EDGE_TOLERANCE: masks probably cut off by the crop."""
    height, width = image_hw
    x0, y0 = crop_box[0], crop_box[1]
    offset = torch.tensor([x0, y0, x0, y0], device=boxes.device)
    in_image = (boxes + offset).float()
    crop = torch.tensor(crop_box, dtype=torch.float32, device=boxes.device)
    image = torch.tensor([0, 0, width, height], dtype=torch.float32, device=boxes.device)
    at_crop_edge = (in_image - crop).abs() <= CROP_EDGE_TOLERANCE
    at_image_edge = (in_image - image).abs() <= CROP_EDGE_TOLERANCE
    return (at_crop_edge & ~at_image_edge).any(dim=1)


def box_areas(boxes: torch.Tensor) -> torch.Tensor:
    """``(x1 - x0) * (y1 - y0)`` of ``[N, 4]`` boxes."""
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def box_nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy non-maximum suppression; the indices kept, best score first.

    Same result as ``torchvision.ops.nms`` (and ``batched_nms`` with one category) on CPU: boxes
    are visited by descending score (stable, so ties keep their input order), and a box is dropped
    when its IoU with a kept box exceeds ``iou_threshold``. The IoU is computed in float32 as there
    and compared in double precision (the threshold is a C++ double there).
    """
    count = boxes.shape[0]
    if count == 0:
        return torch.zeros(0, dtype=torch.int64, device=boxes.device)
    order = torch.sort(scores, descending=True, stable=True).indices
    ordered = boxes[order].float()
    areas = box_areas(ordered)
    top_left = torch.maximum(ordered[:, None, :2], ordered[None, :, :2])
    bottom_right = torch.minimum(ordered[:, None, 2:], ordered[None, :, 2:])
    sides = (bottom_right - top_left).clamp(min=0)
    intersection = sides[..., 0] * sides[..., 1]
    iou = intersection / (areas[:, None] + areas[None, :] - intersection)
    overlaps = (iou.double() > iou_threshold).cpu().numpy()
    suppressed = np.zeros(count, dtype=bool)
    kept: List[int] = []
    for rank in range(count):
        if suppressed[rank]:
            continue
        kept.append(rank)
        suppressed |= overlaps[rank]
    return order[torch.tensor(kept, dtype=torch.int64, device=order.device)]


def paste_mask(mask: torch.Tensor, crop_box: CropBox, image_hw: Tuple[int, int]) -> torch.Tensor:
    """A crop's ``[h, w]`` mask placed in an all-False mask of the whole image."""
    x0, y0, x1, y1 = crop_box
    if (x0, y0, x1, y1) == (0, 0, image_hw[1], image_hw[0]):
        return mask
    full = torch.zeros(image_hw, dtype=torch.bool, device=mask.device)
    full[y0:y1, x0:x1] = mask
    return full
