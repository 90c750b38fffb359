"""sensor_msgs images <-> numpy, without cv_bridge (which is not installable from PyPI).

Inputs become ``H x W x 3`` uint8 RGB arrays, the tracker's frame format. Outputs are
mono8 masks (255 = object) and label images (one object id per pixel, mono8 or mono16).

Decoding itself (``decode_raw``, ``decode_compressed``, ...) lives in the ROS-free
``image_codec``, shared with sam2-eval; this module wraps it and the encoders for rclpy messages.
"""

from __future__ import annotations

import array
from typing import TYPE_CHECKING, Tuple

import numpy as np
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from sam2_model.frame_state import paste_mask

from .image_codec import (COLOUR_ENCODINGS, ImageConversionError, decode_compressed, decode_raw,  # noqa: F401
                          decode_raw_labels, pixel_rows)

if TYPE_CHECKING:  # torch is imported where a tensor is made: a server-backed node never loads it
    import torch


# Decoding is shared with sam2-eval (image_codec, ROS-free); this module wraps it for rclpy messages.
SUPPORTED_ENCODINGS = COLOUR_ENCODINGS


def _to_byte_array(pixels: np.ndarray) -> array.array:
    """A numpy array as the ``array.array('B')`` that rclpy stores for ``uint8[]`` fields.

    Building it from bytes is a single copy; assigning a numpy array or bytes to the field
    would make rclpy check every element in Python, which takes ~100 ms for a 960x540 image.
    """
    out = array.array("B")
    out.frombytes(np.ascontiguousarray(pixels).reshape(-1).view(np.uint8))  # one copy, from the buffer
    return out


def image_to_rgb(msg: Image) -> np.ndarray:
    """sensor_msgs/Image (8- or 16-bit colour or grey, see ``SUPPORTED_ENCODINGS``) -> ``H x W x 3`` uint8 RGB."""
    return decode_raw(msg.encoding, int(msg.height), int(msg.width), int(msg.step), msg.data, bool(msg.is_bigendian))


# Raw encodings whose bytes already are H x W x 3 uint8 pixels: read in place, channels swapped on the device.
_IN_PLACE_ENCODINGS = {"rgb8": False, "bgr8": True, "8UC3": True}  # encoding -> stored as BGR


def image_to_rgb_tensor(msg: Image, device="cpu") -> "torch.Tensor":
    """sensor_msgs/Image -> ``H x W x 3`` uint8 RGB tensor on ``device``.

    rgb8/bgr8 are not converted on the host: the tensor is a view on the message's buffer (row
    padding skipped by strides), moved to the device as it is; bgr8's channel swap happens there.
    Other encodings go through ``image_to_rgb``.
    """
    import torch  # here only: a node whose model runs in sam2_server imports no torch

    swap = _IN_PLACE_ENCODINGS.get(msg.encoding)
    if swap is None:
        return torch.from_numpy(image_to_rgb(msg)).to(device)
    height, width = int(msg.height), int(msg.width)
    rows = pixel_rows(msg.encoding, height, width, int(msg.step), msg.data, 3)
    if not rows.flags.writeable:  # e.g. bytes: torch wants writable memory
        rows = rows.copy()
    pixels = torch.from_numpy(rows.reshape(height, width, 3)).to(device)
    return pixels.flip(2) if swap else pixels


def compressed_to_rgb(msg: CompressedImage) -> np.ndarray:
    """sensor_msgs/CompressedImage (jpeg, png) -> ``H x W x 3`` uint8 RGB."""
    return decode_compressed(msg.data, msg.format)


def image_to_mask(msg: Image) -> np.ndarray:
    """A mono8 mask image -> ``H x W`` bool (nonzero = object)."""
    if msg.encoding not in ("mono8", "8UC1"):
        raise ImageConversionError(f"mask encoding must be mono8 (nonzero = object), got {msg.encoding!r}")
    rows = pixel_rows(msg.encoding, int(msg.height), int(msg.width), int(msg.step), msg.data, 1)
    return rows != 0


def paste_object_mask(obj, frame_hw: Tuple[int, int]) -> np.ndarray:
    """A ``sam2_ros/TrackedObject``'s mask as a full-frame ``H x W`` bool mask.

    The message's mask covers only the object's ``bbox`` (its width and height are the box's, its
    origin the box's corner); ``frame_hw`` is the input image's (height, width), e.g. the label
    image's. An object without mask pixels carries an empty mask.
    """
    box = obj.bbox
    bbox = (int(box.x_offset), int(box.y_offset), int(box.width), int(box.height))
    if obj.mask.width == 0 or obj.mask.height == 0:
        if obj.area:
            raise ImageConversionError(
                f"object {obj.id} has {obj.area} mask pixels but its message carries no mask "
                "(the node runs with publish_masks false: boxes and scores only)")
        return np.zeros(tuple(int(v) for v in frame_hw), bool)
    try:
        return paste_mask(image_to_mask(obj.mask), bbox, frame_hw)
    except ValueError as error:
        raise ImageConversionError(f"object {obj.id}: {error}") from None


def rgb_to_image(rgb: np.ndarray, header: Header, encoding: str = "rgb8") -> Image:
    """``H x W x 3`` uint8 RGB -> sensor_msgs/Image in rgb8 (or bgr8)."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ImageConversionError(f"expected an HxWx3 uint8 image, got {rgb.dtype} {list(rgb.shape)}")
    if encoding == "bgr8":
        rgb = rgb[:, :, ::-1]
    elif encoding != "rgb8":
        raise ImageConversionError(f"rgb_to_image writes rgb8 or bgr8, not {encoding!r}")
    height, width = rgb.shape[:2]
    return Image(header=header, height=height, width=width, encoding=encoding, is_bigendian=0,
                 step=3 * width, data=_to_byte_array(rgb))


def mask_to_image(mask: np.ndarray, header: Header) -> Image:
    """``H x W`` bool mask -> mono8 Image, 255 = object, 0 = background."""
    if mask.ndim != 2:
        raise ImageConversionError(f"expected an HxW mask, got shape {list(mask.shape)}")
    height, width = mask.shape
    pixels = (mask != 0).astype(np.uint8) * np.uint8(255)
    return Image(header=header, height=height, width=width, encoding="mono8", is_bigendian=0, step=width,
                 data=_to_byte_array(pixels))


def label_encoding(max_id: int) -> str:
    """mono8 while every id fits a byte, else mono16 (the vision_msgs segmentation convention)."""
    if max_id < 0 or max_id > 0xFFFF:
        raise ImageConversionError(f"object id {max_id} does not fit a mono16 label image (0..65535)")
    return "mono8" if max_id <= 0xFF else "mono16"


def labels_to_image(labels: np.ndarray, header: Header, max_id: int | None = None) -> Image:
    """``H x W`` integer object ids (0 = background) -> mono8 or mono16 label image.

    ``max_id`` picks the encoding (default: the largest id present), so a caller can keep one
    encoding for all frames of a session even when the big ids are not on screen.
    """
    if labels.ndim != 2:
        raise ImageConversionError(f"expected an HxW label array, got shape {list(labels.shape)}")
    encoding = label_encoding(int(labels.max(initial=0)) if max_id is None else int(max_id))
    height, width = labels.shape
    if encoding == "mono8":
        pixels, step = labels.astype(np.uint8, copy=False), width
    else:
        pixels, step = labels.astype("<u2", copy=False), 2 * width  # little-endian, is_bigendian = 0
    return Image(header=header, height=height, width=width, encoding=encoding, is_bigendian=0, step=step,
                 data=_to_byte_array(pixels))


def image_to_labels(msg: Image) -> np.ndarray:
    """A mono8/mono16 label image -> ``H x W`` int32 ids (for tests and consumers)."""
    return decode_raw_labels(msg.encoding, int(msg.height), int(msg.width), int(msg.step), msg.data,
                             bool(msg.is_bigendian)).astype(np.int32)
