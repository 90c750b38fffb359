"""A frame's ``FrameState`` -> ROS outputs: TrackedObjects, the label image and the overlay picture.

The backend (``sam2_ros.tracker_backend``: in-process or a ``sam2-server``) hands the node a
``FrameState`` already on the host, every per-pixel step done on the model's device
(``sam2_model.frame_summary``); what is here is numpy and messages, run after the tracker lock is
released.
"""

from __future__ import annotations

import numpy as np
from sensor_msgs.msg import Image, RegionOfInterest
from std_msgs.msg import Header

from sam2_model.frame_state import FrameState, ObjectState
from sam2_model.mask_geometry import box_from_roi
from sam2_model.visualization import draw_tracked
from sam2_ros.msg import TrackedObject, TrackedObjects

from .image_conversion import labels_to_image, mask_to_image, rgb_to_image


def tracked_object_msg(state: ObjectState, header: Header) -> TrackedObject:
    """The object's mask covers its bbox only (``paste_object_mask`` restores the full frame); an
    object summarized without its mask (``publish_masks`` false) gets an empty 0 x 0 mask."""
    x, y, w, h = state.bbox
    mask = mask_to_image(state.mask, header) if state.mask is not None else Image(header=header, encoding="mono8")
    px, py, pw, ph = state.predicted_bbox if state.predicted_bbox is not None else (0, 0, 0, 0)
    return TrackedObject(id=state.object_id, visible=state.visible, visibility=state.visibility,
                         occlusion=state.occlusion, iou_score=state.iou_score,
                         bbox=RegionOfInterest(x_offset=x, y_offset=y, width=w, height=h, do_rectify=False),
                         area=state.area, mask=mask, box_predicted=state.box_predicted,
                         predicted_bbox=RegionOfInterest(x_offset=px, y_offset=py, width=pw, height=ph,
                                                         do_rectify=False))


def tracked_objects_msg(frame: FrameState, header: Header, latency_ms: float) -> TrackedObjects:
    return TrackedObjects(header=header, frame_index=frame.frame_index, latency_ms=float(latency_ms),
                          objects=[tracked_object_msg(o, header) for o in frame.objects])


def label_image_msg(frame: FrameState, header: Header):
    """mono8 while every tracked id fits a byte, else mono16 (decided by the ids tracked, not
    only those visible, so the encoding does not flicker as objects come and go)."""
    if frame.labels is None:
        raise ValueError("the frame was summarized without its label map (labels=False)")
    max_id = max((o.object_id for o in frame.objects), default=0)
    return labels_to_image(frame.labels, header, max_id=max_id)


# ---------------------------------------------------------------------------------- overlay
# Drawn by sam2_model.visualization, as the demo and sam2-eval's reports are: one palette.


def draw_overlay(frame: FrameState) -> np.ndarray:
    """The input picture with each visible object's mask tinted in its colour (done on the model's
    device: ``Outputs(tinted=True)``), its box and id."""
    if frame.tinted is None:
        raise ValueError("the frame was summarized without its tinted picture (Outputs tinted=False)")
    boxes = {o.object_id: box_from_roi(o.bbox) for o in frame.objects if o.visible and o.area > 0}
    return draw_tracked(frame.tinted, None, boxes)


def overlay_msg(frame: FrameState, header: Header):
    return rgb_to_image(draw_overlay(frame), header)
