"""Tracker results -> ROS outputs: TrackedObjects, the label image and the overlay picture.

``summarize`` turns a ``TrackingResult`` (torch, possibly on the GPU) into plain numpy
``ObjectState``s once per frame, every per-pixel step on the result's device
(``sam2_model.frame_summary``); everything after that is numpy and messages, so the tracker
lock can be released before any of it runs.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np
from sensor_msgs.msg import Image, RegionOfInterest
from std_msgs.msg import Header

from sam2_model.frame_summary import FrameState, ObjectState, summarize_frame
from sam2_ros.msg import TrackedObject, TrackedObjects

from .image_conversion import labels_to_image, mask_to_image, rgb_to_image


def summarize(result, labels: bool = True, crops: bool = True) -> FrameState:
    """``sam2_model.TrackingResult`` -> FrameState on the host: per-pixel work on the result's
    device, then compact copies (see ``sam2_model.frame_summary``). ``labels``/``crops``: compute
    the label map / the per-object mask crops (skip what nobody will receive)."""
    return summarize_frame(result, labels=labels, crops=crops)


def object_state(result, object_id: int) -> ObjectState:
    """One object of a ``TrackingResult`` (e.g. the one a prompt just added), with its mask crop."""
    frame = summarize_frame(result, labels=False, crops=True)
    return next(o for o in frame.objects if o.object_id == int(object_id))


def tracked_object_msg(state: ObjectState, header: Header) -> TrackedObject:
    """The object's mask covers its bbox only (``paste_object_mask`` restores the full frame); an
    object summarized without its mask (``publish_masks`` false) gets an empty 0 x 0 mask."""
    x, y, w, h = state.bbox
    mask = mask_to_image(state.mask, header) if state.mask is not None else Image(header=header, encoding="mono8")
    return TrackedObject(id=state.object_id, visible=state.visible, visibility=state.visibility,
                         occlusion=state.occlusion, iou_score=state.iou_score,
                         bbox=RegionOfInterest(x_offset=x, y_offset=y, width=w, height=h, do_rectify=False),
                         area=state.area, mask=mask)


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

MASK_ALPHA = 0.5
# Hues step by the golden ratio: any two ids close together get clearly different colours, and
# an object keeps its colour for as long as it is tracked.
_GOLDEN = 0.6180339887498949

# 3x5 bitmap digits (rows top to bottom, 3 bits each) for the id labels: no OpenCV, no fonts.
_DIGITS = {
    "0": (7, 5, 5, 5, 7), "1": (2, 6, 2, 2, 7), "2": (7, 1, 7, 4, 7), "3": (7, 1, 7, 1, 7),
    "4": (5, 5, 7, 1, 1), "5": (7, 4, 7, 1, 7), "6": (7, 4, 7, 5, 7), "7": (7, 1, 1, 1, 1),
    "8": (7, 5, 7, 5, 7), "9": (7, 5, 7, 1, 7),
}


def colour_of(object_id: int) -> np.ndarray:
    """A saturated RGB colour for an id (HSV with hue = id * golden ratio)."""
    return _colours(np.asarray([object_id]))[0]


def _colours(ids: np.ndarray) -> np.ndarray:
    hue = (ids.astype(np.float64) * _GOLDEN) % 1.0
    saturation, value = 0.75, 0.95
    sector = np.floor(hue * 6).astype(int) % 6
    f = hue * 6 - np.floor(hue * 6)
    v, p = np.full_like(hue, value), np.full_like(hue, value * (1 - saturation))
    q, t = value * (1 - f * saturation), value * (1 - (1 - f) * saturation)
    table = np.stack([np.stack(c, axis=-1) for c in
                      ((v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q))], axis=0)
    return np.round(table[sector, np.arange(len(ids))] * 255).astype(np.uint8)


def _text_bitmap(text: str) -> np.ndarray:
    """5 x (4 * len - 1) bool bitmap of a string of digits."""
    columns = []
    for index, char in enumerate(text):
        rows = _DIGITS[char]
        glyph = np.array([[(r >> (2 - c)) & 1 for c in range(3)] for r in rows], dtype=bool)
        if index:
            columns.append(np.zeros((5, 1), bool))
        columns.append(glyph)
    return np.concatenate(columns, axis=1)


def _draw_label(image: np.ndarray, text: str, x: int, y: int, colour: np.ndarray, scale: int) -> None:
    """Digits on a box of the object's colour (black on light colours, else white), top-left at
    (x, y), clipped to the image."""
    bitmap = np.kron(_text_bitmap(text), np.ones((scale, scale), bool))
    pad = scale
    height, width = bitmap.shape[0] + 2 * pad, bitmap.shape[1] + 2 * pad
    tile = np.empty((height, width, 3), np.uint8)
    tile[:] = colour
    luminance = 0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2]
    tile[pad:pad + bitmap.shape[0], pad:pad + bitmap.shape[1]][bitmap] = 0 if luminance > 150 else 255
    img_h, img_w = image.shape[:2]
    x = min(max(x, 0), max(img_w - width, 0))
    y = min(max(y, 0), max(img_h - height, 0))
    h, w = min(height, img_h - y), min(width, img_w - x)
    image[y:y + h, x:x + w] = tile[:h, :w]


def _draw_box(image: np.ndarray, box: Tuple[int, int, int, int], colour: np.ndarray, thickness: int) -> None:
    x, y, w, h = box
    x1, y1 = x + w, y + h
    t = thickness
    image[y:min(y + t, y1), x:x1] = colour
    image[max(y1 - t, y):y1, x:x1] = colour
    image[y:y1, x:min(x + t, x1)] = colour
    image[y:y1, max(x1 - t, x):x1] = colour


def draw_overlay(rgb: np.ndarray, frame: FrameState) -> np.ndarray:
    """The input picture with each visible object's mask tinted in its colour, its box and id."""
    out = rgb.copy()
    if not frame.objects:
        return out
    # Tint by the label image so overlapping objects show the winner only, as label_image does.
    labelled = frame.labels > 0
    if labelled.any():
        ids = np.array([o.object_id for o in frame.objects])
        table = np.zeros((int(ids.max()) + 1, 3), np.float32)
        table[ids] = _colours(ids)
        colours = table[frame.labels[labelled]]
        out[labelled] = (out[labelled] * (1 - MASK_ALPHA) + colours * MASK_ALPHA).astype(np.uint8)
    scale = max(1, min(frame.height, frame.width) // 120)
    for state in frame.objects:
        if not state.visible or state.area == 0:
            continue
        colour = colour_of(state.object_id)
        _draw_box(out, state.bbox, colour, thickness=scale)
        _draw_label(out, str(state.object_id), state.bbox[0], state.bbox[1] - 7 * scale, colour, scale)
    return out


def overlay_msg(rgb: np.ndarray, frame: FrameState, header: Header):
    return rgb_to_image(draw_overlay(rgb, frame), header)
