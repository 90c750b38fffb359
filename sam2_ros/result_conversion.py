"""Tracker results -> ROS outputs: TrackedObjects, the label image and the overlay picture.

``summarize`` turns a ``TrackingResult`` (torch, possibly on the GPU) into plain numpy
``ObjectState``s once per frame; everything after that is numpy and messages, so the tracker
lock can be released before any of it runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence, Tuple

import numpy as np
from sensor_msgs.msg import RegionOfInterest
from std_msgs.msg import Header

from sam2_model.mask_geometry import box_from_roi
# tight_box: a TrackedObject's bbox, (x, y, width, height) of the mask's tight box; zeros when empty.
from sam2_model.mask_geometry import roi_from_mask as tight_box
from sam2_model.visualization import draw_tracked
from sam2_ros.msg import TrackedObject, TrackedObjects

from .image_conversion import labels_to_image, mask_to_image, rgb_to_image


@dataclass
class ObjectState:
    """One object on one frame, in the frame's pixels."""

    object_id: int
    visible: bool
    visibility: float            # sigmoid of the object-score logit
    iou_score: float             # the decoder's predicted IoU of the mask
    mask: np.ndarray             # H x W bool, empty when not visible
    bbox: Tuple[int, int, int, int]  # x, y, width, height; zeros when not visible or empty
    area: int                    # mask pixels

    @property
    def occlusion(self) -> float:
        return 1.0 - self.visibility


@dataclass
class FrameState:
    """Every object on one frame plus the per-pixel winner (the label image)."""

    frame_index: int
    height: int
    width: int
    objects: List[ObjectState]
    labels: np.ndarray           # H x W, object id per pixel, 0 = background


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -80.0, 80.0)))


def summarize(result) -> FrameState:
    """``sam2_model.TrackingResult`` -> FrameState (numpy, CPU)."""
    height, width = (int(v) for v in result.frame_hw)
    ids = [int(i) for i in result.obj_ids]
    if not ids:
        return FrameState(int(result.frame_index), height, width, [], np.zeros((height, width), np.int32))
    logits = result.mask_logits.detach().float().cpu().numpy()          # N x H x W
    scores = result.object_score_logits.detach().float().cpu().numpy().reshape(-1)
    ious = result.iou_scores.detach().float().cpu().numpy().reshape(-1)
    objects = [_object_state(object_id, logits[row], scores[row], ious[row]) for row, object_id in enumerate(ids)]
    masks = np.stack([o.mask for o in objects])
    return FrameState(int(result.frame_index), height, width, objects, label_map(ids, logits, masks))


def object_state(result, object_id: int) -> ObjectState:
    """One object of a ``TrackingResult`` (e.g. the one a prompt just added)."""
    row = [int(i) for i in result.obj_ids].index(int(object_id))
    return _object_state(int(object_id), result.mask_logits[row].detach().float().cpu().numpy(),
                         float(result.object_score_logits[row]), float(result.iou_scores[row]))


def _object_state(object_id: int, logits: np.ndarray, score: float, iou: float) -> ObjectState:
    visible = bool(score > 0)
    # An absent object's logits are all -1024 (official convention), so its mask is empty
    # anyway; masking with `visible` makes "not visible <=> empty mask" hold by construction.
    mask = logits > 0 if visible else np.zeros(logits.shape, bool)
    return ObjectState(object_id, visible, float(_sigmoid(np.float64(score))), float(iou), mask,
                       tight_box(mask) if visible else (0, 0, 0, 0), int(mask.sum()))


def label_map(ids: Sequence[int], logits: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Per pixel, the id of the object whose mask covers it; where masks overlap, the object
    with the highest logit wins (the rule of SAM 2's non_overlap_masks). 0 = background."""
    if len(ids) == 1:
        return np.where(masks[0], np.int32(ids[0]), np.int32(0))
    scored = np.where(masks, logits, -np.inf)
    winner = scored.argmax(axis=0)
    id_table = np.asarray(ids, dtype=np.int32)
    return np.where(masks.any(axis=0), id_table[winner], np.int32(0))


def tracked_object_msg(state: ObjectState, header: Header) -> TrackedObject:
    x, y, w, h = state.bbox
    return TrackedObject(id=state.object_id, visible=state.visible, visibility=state.visibility,
                         occlusion=state.occlusion, iou_score=state.iou_score,
                         bbox=RegionOfInterest(x_offset=x, y_offset=y, width=w, height=h, do_rectify=False),
                         area=state.area, mask=mask_to_image(state.mask, header))


def tracked_objects_msg(frame: FrameState, header: Header, latency_ms: float) -> TrackedObjects:
    return TrackedObjects(header=header, frame_index=frame.frame_index, latency_ms=float(latency_ms),
                          objects=[tracked_object_msg(o, header) for o in frame.objects])


def label_image_msg(frame: FrameState, header: Header):
    """mono8 while every tracked id fits a byte, else mono16 (decided by the ids tracked, not
    only those visible, so the encoding does not flicker as objects come and go)."""
    max_id = max((o.object_id for o in frame.objects), default=0)
    return labels_to_image(frame.labels, header, max_id=max_id)


# ---------------------------------------------------------------------------------- overlay
# Drawn by sam2_model.visualization, as the demo and sam2-eval's reports are: one palette.


def draw_overlay(rgb: np.ndarray, frame: FrameState) -> np.ndarray:
    """The input picture with each visible object's mask tinted in its colour, its box and id."""
    boxes = {o.object_id: box_from_roi(o.bbox) for o in frame.objects if o.visible and o.area > 0}
    return draw_tracked(rgb, frame.labels, boxes)


def overlay_msg(rgb: np.ndarray, frame: FrameState, header: Header):
    return rgb_to_image(draw_overlay(rgb, frame), header)
