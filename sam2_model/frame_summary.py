"""Per-frame summary of a tracking result: masks at frame size, boxes, areas, the label map and
per-object mask crops, computed on the model's device; called by the ROS node's result conversion.

Every per-pixel step runs once, in torch, where the logits already are (the GPU on a robot):
upsampling to the frame (visible objects only, with the tracker's own resize, so the values are
the tracker's ``mask_logits`` bit for bit), thresholding, the label map (the highest logit wins
where masks overlap, SAM 2's non_overlap_masks rule), boxes and areas. Past the upsampling,
each object is only looked at where its logits can be positive: its low-resolution positive
pixels' box, widened by the bilinear taps. The host receives a few numbers per object (spans,
boxes, areas, scores) and one packed uint8 buffer with the label map and each visible object's
mask cropped to its box. Work no one asked for (labels, crops) is skipped.

A crop is the mask inside the object's tight box: ``bbox`` (x, y, width, height) gives both its
size and where it sits in the frame; ``paste_mask`` puts it back into a full-frame mask.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch

from .frame_state import MAX_BYTE_ID, NO_BOX, Box, FrameState, ObjectState, paste_mask  # noqa: F401 - re-exported
from .visualization import tint_labels_tensor


def _pixel_box(box, height: int, width: int):
    """A predicted ``(x0, y0, x1, y1)`` float box -> ``(x, y, width, height)`` whole pixels in the
    frame (None stays None; a box that rounds to nothing keeps one pixel, it is still a prediction)."""
    if box is None:
        return None
    x0, y0 = min(max(int(box[0]), 0), width - 1), min(max(int(box[1]), 0), height - 1)
    x1, y1 = min(max(int(round(box[2])), x0 + 1), width), min(max(int(round(box[3])), y0 + 1), height)
    return (x0, y0, x1 - x0, y1 - y0)


def _sigmoid(x: float) -> float:
    return float(1.0 / (1.0 + np.exp(-np.clip(np.float64(x), -80.0, 80.0))))


def _first_and_last(occupied: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Index of the first and last True along dim 1 of ``[N, L]`` (0 and -1 for an empty row)."""
    as_int = occupied.to(torch.uint8)
    length = occupied.shape[1]
    first = as_int.argmax(dim=1)                        # argmax: the first maximum
    last = length - 1 - as_int.flip(1).argmax(dim=1)
    return first, last


def _output_span(first: int, last: int, low_size: int, out_size: int) -> Tuple[int, int]:
    """Output pixels [start, stop) whose bilinear taps (align_corners=False) can reach low-res
    pixels first..last, with a pixel of margin each side.

    Output pixel y reads low-res i0 = floor(s (y + 0.5) - 0.5) (at least 0) and i0 + 1, s = low / out.
    Outside these pixels all taps are <= 0, so the upsampled logit is <= 0: no mask there.
    """
    scale = low_size / out_size
    start = math.floor((first - 0.5) / scale - 0.5) - 1
    stop = math.ceil((last + 1.5) / scale - 0.5) + 1
    return max(start, 0), min(stop, out_size)


@dataclass
class _Region:
    """Where one object's full-resolution logits can be positive: ``logits[row, y0:y1, x0:x1]``."""

    row: int      # row in the result
    y0: int
    y1: int
    x0: int
    x1: int


def _regions(result, height: int, width: int, scores: torch.Tensor) -> List[_Region]:
    """Visible objects with a positive low-resolution logit, and where they can be positive at full size."""
    low = getattr(result, "low_res_logits", None)
    count = int(scores.shape[0])
    if low is None:  # only full-resolution logits: the whole frame
        visible = (scores > 0).cpu().tolist()
        return [_Region(row, 0, height, 0, width) for row in range(count) if visible[row]]
    positive = low[:, 0] > 0
    top, bottom = _first_and_last(positive.any(dim=2))
    left, right = _first_and_last(positive.any(dim=1))
    shown = (scores > 0) & positive.flatten(1).any(dim=1)
    spans = torch.stack([top, bottom, left, right, shown.long()], dim=1).cpu().tolist()
    low_h, low_w = int(low.shape[-2]), int(low.shape[-1])
    regions = []
    for row, (r0, r1, c0, c1, keep) in enumerate(spans):
        if keep:
            y0, y1 = _output_span(r0, r1, low_h, height)
            x0, x1 = _output_span(c0, c1, low_w, width)
            regions.append(_Region(row, y0, y1, x0, x1))
    return regions


def _label_map(logits: torch.Tensor, regions: List[_Region], ids: Sequence[int], height: int, width: int
               ) -> torch.Tensor:
    """``[H, W]`` ids on the device: where masks overlap, the highest logit wins (the first on ties).

    Objects in row order, each only inside its region (outside it its logits are <= 0): a pixel
    goes to an object whose logit is positive and strictly above every earlier object's.
    """
    dtype = torch.uint8 if max(ids) <= MAX_BYTE_ID else torch.int32
    labels = torch.zeros((height, width), dtype=dtype, device=logits.device)
    best = torch.zeros((height, width), dtype=logits.dtype, device=logits.device)
    for k, region in enumerate(regions):
        window = (slice(region.y0, region.y1), slice(region.x0, region.x1))
        values, best_here = logits[k][window], best[window]
        better = values > best_here
        torch.maximum(best_here, values, out=best_here)
        labels[window].masked_fill_(better, ids[region.row])
    return labels


@torch.inference_mode()
def summarize_frame(result, labels: bool = True, crops: bool = True,
                    picture: Optional[torch.Tensor] = None) -> FrameState:
    """A ``TrackingResult`` -> ``FrameState`` on the host.

    Only the visible objects' logits are upsampled, and every later per-pixel step runs inside
    the region where an object's logits can be positive (from its low-resolution logits).

    Args:
        result: the tracker's output for one frame (its logits on any device); objects that give
            only ``mask_logits`` (no ``low_res_logits``) are searched over the whole frame.
        labels: compute the ``H x W`` label map.
        crops: compute each visible object's mask cropped to its box.
        picture: the frame (H x W x 3 uint8 tensor, any device) to tint with the label map where the
            logits are, for the node's overlay (``FrameState.tinted``); needs ``labels``.
    """
    if picture is not None and not labels:
        raise ValueError("tinting the picture needs the label map (labels=True)")
    height, width = (int(v) for v in result.frame_hw)
    ids = [int(i) for i in result.obj_ids]
    index = int(result.frame_index)
    if not ids:
        return FrameState(index, height, width, [], np.zeros((height, width), np.uint8) if labels else None,
                          None if picture is None else picture.cpu().numpy())
    scores = result.object_score_logits.reshape(-1).float()
    regions = _regions(result, height, width, scores)                 # host copy 1: spans
    kept = [r.row for r in regions]
    frame_logits = getattr(result, "frame_logits", None)
    logits = (frame_logits(kept) if frame_logits is not None else result.mask_logits[kept]).float()
    region_masks, boxes = [], []
    for k, region in enumerate(regions):
        mask = logits[k, region.y0:region.y1, region.x0:region.x1] > 0
        top, bottom = _first_and_last(mask.any(dim=1)[None])
        left, right = _first_and_last(mask.any(dim=0)[None])
        boxes.append(torch.stack([top[0], bottom[0], left[0], right[0], mask.sum()]))
        region_masks.append(mask)
    tight = torch.stack(boxes).cpu().tolist() if boxes else []        # host copy 2: boxes, areas
    numbers = torch.stack([scores.double(), result.iou_scores.reshape(-1).double()], dim=1).cpu().tolist()
    objects = []
    predicted = getattr(result, "predicted_boxes", None) or [None] * len(ids)
    for row, object_id in enumerate(ids):
        score, iou = numbers[row]
        objects.append(ObjectState(object_id, bool(score > 0), _sigmoid(score), float(iou), NO_BOX, 0,
                                   np.zeros((0, 0), bool) if crops else None,
                                   _pixel_box(predicted[row], height, width)))
    parts = []
    for k, region in enumerate(regions):
        top, bottom, left, right, area = (int(v) for v in tight[k])
        if area:
            obj = objects[region.row]
            obj.area = area
            obj.bbox = (region.x0 + left, region.y0 + top, right - left + 1, bottom - top + 1)
            if crops:
                parts.append(region_masks[k][top:bottom + 1, left:right + 1].reshape(-1))
    label_map = _label_map(logits, regions, ids, height, width) if labels else None
    tinted = None
    if picture is not None:                                           # host copy 4, only for an overlay
        drawn = [o.object_id for o in objects if o.visible and o.area > 0]
        tinted = tint_labels_tensor(picture.to(label_map.device), label_map, drawn).cpu().numpy()
    if label_map is not None:
        parts.append(label_map.reshape(-1))
    if parts:
        packed = torch.cat([p.view(torch.uint8) for p in parts]).cpu().numpy()   # host copy 3: pixels
        offset = 0
        for obj in objects:
            if crops and obj.area:
                _, _, w, h = obj.bbox
                obj.mask = packed[offset:offset + w * h].view(bool).reshape(h, w)
                offset += w * h
        if label_map is not None:
            label_host = packed[offset:].view(np.uint8 if label_map.dtype == torch.uint8 else np.int32)
            label_map = label_host.reshape(height, width)
    return FrameState(index, height, width, objects, label_map, tinted)
