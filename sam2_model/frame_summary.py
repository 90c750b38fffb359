"""Per-frame summary of a tracking result: masks at frame size, boxes, areas, the label map and
per-object mask crops, computed on the model's device; called by the ROS node's result conversion.

Every per-pixel step runs once, in torch, where the logits already are (the GPU on a robot):
upsampling to the frame, thresholding, the label map (the highest logit wins where masks
overlap, SAM 2's non_overlap_masks rule), row/column occupancy for the boxes and areas. The
host then receives two copies: a few numbers per object (box, area, scores), and one packed
uint8 buffer holding the label map and each visible object's mask cropped to its box. Work no
one asked for (labels, crops) is skipped.

A crop is the mask inside the object's tight box: ``bbox`` (x, y, width, height) gives both its
size and where it sits in the frame; ``paste_mask`` puts it back into a full-frame mask.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch

Box = Tuple[int, int, int, int]  # x, y, width, height in pixels
NO_BOX: Box = (0, 0, 0, 0)
# Label maps are uint8 while every id fits a byte (mono8), else int32 (written as mono16).
MAX_BYTE_ID = 0xFF


@dataclass
class ObjectState:
    """One object on one frame, in the frame's pixels (host, numpy)."""

    object_id: int
    visible: bool
    visibility: float            # sigmoid of the object-score logit
    iou_score: float             # the decoder's predicted IoU of the mask
    bbox: Box                    # tight box of the mask; zeros when not visible or empty
    area: int                    # mask pixels
    mask: Optional[np.ndarray]   # bbox-sized bool crop of the mask (0 x 0 when empty); None when not asked for

    @property
    def occlusion(self) -> float:
        return 1.0 - self.visibility

    def frame_mask(self, frame_hw: Tuple[int, int]) -> np.ndarray:
        """The full-frame ``H x W`` bool mask."""
        if self.mask is None:
            raise ValueError(f"object {self.object_id}: its mask was not computed (crops=False)")
        return paste_mask(self.mask, self.bbox, frame_hw)


@dataclass
class FrameState:
    """Every object on one frame plus, when asked for, the per-pixel winner (the label map)."""

    frame_index: int
    height: int
    width: int
    objects: List[ObjectState]
    labels: Optional[np.ndarray]  # H x W object ids (uint8 or int32), 0 = background; None when not asked for


def paste_mask(crop: np.ndarray, bbox: Box, frame_hw: Tuple[int, int]) -> np.ndarray:
    """A mask cropped to its box -> the full-frame ``H x W`` bool mask (False outside the box)."""
    height, width = (int(v) for v in frame_hw)
    x, y, w, h = (int(v) for v in bbox)
    crop = np.asarray(crop)
    if crop.shape != (h, w):
        raise ValueError(f"mask crop of shape {crop.shape} does not match its box {w}x{h} (width x height)")
    if x < 0 or y < 0 or x + w > width or y + h > height:
        raise ValueError(f"box x={x} y={y} {w}x{h} does not fit in the {width}x{height} frame")
    full = np.zeros((height, width), bool)
    full[y:y + h, x:x + w] = crop != 0
    return full


def _sigmoid(x: float) -> float:
    return float(1.0 / (1.0 + np.exp(-np.clip(np.float64(x), -80.0, 80.0))))


def _first_and_last(occupied: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Index of the first and last True along dim 1 of ``[N, L]`` (0 and -1 for an empty row)."""
    as_int = occupied.to(torch.uint8)
    length = occupied.shape[1]
    first = as_int.argmax(dim=1)                        # argmax: the first maximum
    last = length - 1 - as_int.flip(1).argmax(dim=1)
    return first, last


def _label_map(logits: torch.Tensor, masks: torch.Tensor, visible: torch.Tensor, ids: Sequence[int]
               ) -> torch.Tensor:
    """``[H, W]`` ids on the device: where masks overlap, the highest logit wins (first on ties)."""
    table = torch.tensor(list(ids), dtype=torch.uint8 if max(ids) <= MAX_BYTE_ID else torch.int32,
                         device=logits.device)
    if len(ids) == 1:
        return torch.where(masks[0], table[0], table.new_zeros(()))
    # A covered pixel's winner has a positive logit, and every object whose logit equals the
    # maximum there covers it: the argmax over all (visible) objects is the argmax over masks.
    if not bool(visible.all()):
        logits = logits.masked_fill(~visible[:, None, None], float("-inf"))
    best, winner = logits.max(dim=0)
    return torch.where(best > 0, table[winner], table.new_zeros(()))


@torch.inference_mode()
def summarize_frame(result, labels: bool = True, crops: bool = True) -> FrameState:
    """A ``TrackingResult`` -> ``FrameState`` on the host.

    Args:
        result: the tracker's output for one frame (its logits on any device).
        labels: compute the ``H x W`` label map.
        crops: compute each visible object's mask cropped to its box.
    """
    height, width = (int(v) for v in result.frame_hw)
    ids = [int(i) for i in result.obj_ids]
    index = int(result.frame_index)
    if not ids:
        return FrameState(index, height, width, [], np.zeros((height, width), np.uint8) if labels else None)
    logits = result.mask_logits.float()                              # [N, H, W], upsampled once
    visible = result.object_score_logits.reshape(-1) > 0
    # An absent object's logits are all -1024 (official convention), so its mask is empty
    # anyway; masking with `visible` makes "not visible <=> empty mask" hold by construction.
    masks = (logits > 0) & visible[:, None, None]
    row_counts = masks.sum(dim=2)                                    # [N, H]
    x0, x1 = _first_and_last(masks.any(dim=1))
    y0, y1 = _first_and_last(row_counts > 0)
    area = row_counts.sum(dim=1)
    numbers = torch.stack([x0.double(), y0.double(), x1.double(), y1.double(), area.double(),
                           result.object_score_logits.reshape(-1).double(), result.iou_scores.reshape(-1).double()],
                          dim=1).cpu().numpy()                       # host copy 1: N x 7 numbers
    objects = []
    for row, object_id in enumerate(ids):
        left, top, right, bottom, pixels, score, iou = numbers[row]
        shown = bool(score > 0)
        box = (int(left), int(top), int(right - left + 1), int(bottom - top + 1)) if shown and pixels else NO_BOX
        empty = np.zeros((0, 0), bool) if crops else None
        objects.append(ObjectState(object_id, shown, _sigmoid(score), float(iou), box, int(pixels), empty))
    parts = []
    if crops:
        parts = [masks[row, y:y + h, x:x + w].reshape(-1) for row, o in enumerate(objects)
                 for x, y, w, h in [o.bbox] if o.area]
    label_map = _label_map(logits, masks, visible, ids) if labels else None
    if label_map is not None:
        parts.append(label_map.reshape(-1))
    if parts:
        packed = torch.cat([p.view(torch.uint8) for p in parts]).cpu().numpy()   # host copy 2
        offset = 0
        for o in objects:
            if crops and o.area:
                _, _, w, h = o.bbox
                o.mask = packed[offset:offset + w * h].view(bool).reshape(h, w)
                offset += w * h
        if label_map is not None:
            label_host = packed[offset:].view(np.uint8 if label_map.dtype == torch.uint8 else np.int32)
            label_map = label_host.reshape(height, width)
    return FrameState(index, height, width, objects, label_map)
