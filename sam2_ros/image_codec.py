"""Image bytes -> numpy, for the node and the evaluation alike (no ROS imports).

The node decodes sensor_msgs images from rclpy; sam2-eval decodes the same messages read from
bags with ``rosbags``. Both hand the fields (encoding, size, step, byte order, data) to this
module, so a camera stream the evaluation accepts is a stream the node can track, with the same
pixels and the same error messages.

Camera images become ``H x W x 3`` uint8 RGB (the tracker's frame format); label images
(pixel = object id) become ``H x W`` uint8 or uint16 arrays.
"""

from __future__ import annotations

import array
import io
from typing import Dict, Optional, Tuple

import numpy as np
from PIL import Image as PILImage


class ImageConversionError(ValueError):
    """An image that cannot be used; the message says what is wrong with it."""


# Raw camera encodings: encoding -> (channels, bytes per channel, indices of R, G, B; None = grey).
# cv_bridge's conventions for the OpenCV type names: 8UC3 is BGR, 8UC4 BGRA.
_COLOUR_ENCODINGS: Dict[str, Tuple[int, int, Optional[Tuple[int, int, int]]]] = {
    "rgb8": (3, 1, (0, 1, 2)),
    "bgr8": (3, 1, (2, 1, 0)),
    "8UC3": (3, 1, (2, 1, 0)),
    "rgba8": (4, 1, (0, 1, 2)),
    "bgra8": (4, 1, (2, 1, 0)),
    "8UC4": (4, 1, (2, 1, 0)),
    "mono8": (1, 1, None),
    "8UC1": (1, 1, None),
    "rgb16": (3, 2, (0, 1, 2)),
    "bgr16": (3, 2, (2, 1, 0)),
    "mono16": (1, 2, None),
    "16UC1": (1, 2, None),
}
COLOUR_ENCODINGS = tuple(_COLOUR_ENCODINGS)
# Label images: encoding -> bytes per pixel.
_LABEL_ENCODINGS = {"mono8": 1, "8UC1": 1, "mono16": 2, "16UC1": 2}
LABEL_ENCODINGS = tuple(_LABEL_ENCODINGS)

# Compressed formats Pillow decodes for us (compressed_image_transport writes these two).
_COMPRESSED_FORMATS = ("JPEG", "PNG")
# Pillow modes that are 8 bits per channel and convert to RGB without losing meaning;
# 16-bit or float PNGs (depth images, label images) are not camera pictures.
_EIGHT_BIT_MODES = ("1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr")


def as_uint8_buffer(data) -> np.ndarray:
    """Message byte arrays (array.array('B'), bytes, numpy, lists) as a flat uint8 view, no copy when possible."""
    if isinstance(data, (bytes, bytearray, memoryview, array.array, np.ndarray)):
        return np.frombuffer(data, dtype=np.uint8)
    return np.asarray(data, dtype=np.uint8).reshape(-1)


def pixel_rows(encoding: str, height: int, width: int, step: int, data, bytes_per_pixel: int) -> np.ndarray:
    """The ``height x (width * bytes_per_pixel)`` bytes of an image, row padding (``step``) removed."""
    if height <= 0 or width <= 0:
        raise ImageConversionError(f"{encoding} image is empty ({width}x{height})")
    row_bytes = width * bytes_per_pixel
    if step < row_bytes:
        raise ImageConversionError(
            f"{encoding} image {width}x{height} has step {step}, less than the {row_bytes} bytes of a row")
    buffer = as_uint8_buffer(data)
    needed = step * (height - 1) + row_bytes  # the last row's padding may be missing
    if buffer.size < needed:
        raise ImageConversionError(
            f"{encoding} image {width}x{height} (step {step}) needs {needed} bytes of data, got {buffer.size}")
    if buffer.size < step * height:
        buffer = np.concatenate([buffer, np.zeros(step * height - buffer.size, np.uint8)])
    return buffer[: step * height].reshape(height, step)[:, :row_bytes]


def _samples(encoding: str, height: int, width: int, step: int, data, channels: int, sample_bytes: int,
             is_bigendian: bool) -> np.ndarray:
    """``H x W x channels`` samples (uint8, or uint16 in native order), honouring step and byte order."""
    rows = pixel_rows(encoding, height, width, step, data, channels * sample_bytes)
    if sample_bytes == 1:
        return rows.reshape(height, width, channels)
    wire = np.dtype(">u2" if is_bigendian else "<u2")
    return np.ascontiguousarray(rows).view(wire).astype(np.uint16).reshape(height, width, channels)


def decode_raw(encoding: str, height: int, width: int, step: int, data, is_bigendian: bool = False) -> np.ndarray:
    """Raw camera image bytes -> ``H x W x 3`` uint8 RGB (a new contiguous array)."""
    spec = _COLOUR_ENCODINGS.get(encoding)
    if spec is None:
        raise ImageConversionError(
            f"image encoding {encoding!r} is not supported; use one of {', '.join(COLOUR_ENCODINGS)} "
            "or a compressed (jpeg/png) image")
    channels, sample_bytes, rgb_order = spec
    pixels = _samples(encoding, height, width, step, data, channels, sample_bytes, bool(is_bigendian))
    if sample_bytes == 2:
        pixels = (pixels >> 8).astype(np.uint8)  # keep the high byte, as cv_bridge does for 16 -> 8 bit
    if rgb_order is None:
        return np.repeat(pixels, 3, axis=2)
    return np.ascontiguousarray(pixels[:, :, list(rgb_order)])


def decode_raw_labels(encoding: str, height: int, width: int, step: int, data,
                      is_bigendian: bool = False) -> np.ndarray:
    """Raw label image bytes (mono8/mono16) -> ``H x W`` uint8 or uint16 object ids."""
    sample_bytes = _LABEL_ENCODINGS.get(encoding)
    if sample_bytes is None:
        raise ImageConversionError(
            f"label image encoding {encoding!r} is not a label image (supported: {', '.join(LABEL_ENCODINGS)})")
    return _samples(encoding, height, width, step, data, 1, sample_bytes, bool(is_bigendian))[:, :, 0].copy()


def _open_compressed(data, format_hint: str) -> PILImage.Image:
    buffer = as_uint8_buffer(data)
    if buffer.size == 0:
        raise ImageConversionError("compressed image has no data")
    try:
        image = PILImage.open(io.BytesIO(buffer.tobytes()))
        image.load()
    except Exception as error:  # Pillow raises many types for corrupt data (OSError, SyntaxError, ...)
        raise ImageConversionError(
            f"compressed image data (format field {format_hint!r}, {buffer.size} bytes) could not be decoded "
            f"as JPEG or PNG: {error}") from None
    if image.format not in _COMPRESSED_FORMATS:
        raise ImageConversionError(
            f"compressed image is {image.format}, not JPEG or PNG (format field {format_hint!r})")
    return image


def decode_compressed(data, format_hint: str = "") -> np.ndarray:
    """JPEG or PNG bytes -> ``H x W x 3`` uint8 RGB.

    The format string of a CompressedImage (``"jpeg"``, ``"rgb8; jpeg compressed bgr8"``, ...)
    only names the source encoding; the bytes are standard JPEG/PNG with RGB channel order
    whatever it says, so the data itself decides.
    """
    image = _open_compressed(data, format_hint)
    if image.mode not in _EIGHT_BIT_MODES:
        raise ImageConversionError(
            f"compressed {image.format} image has pixel mode {image.mode}; only 8-bit colour or grey "
            "images can be tracked")
    return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()


def _lossy_labels(found: str, format_hint: str) -> ImageConversionError:
    return ImageConversionError(f"label image is {found} (format field {format_hint!r}); lossy compression "
                                "changes pixel values, so label images must be raw Images or PNG")


def decode_compressed_labels(data, format_hint: str = "") -> np.ndarray:
    """A PNG label image -> ``H x W`` uint8 or uint16 object ids (JPEG would change the ids).
    A format field naming JPEG is refused before decoding; otherwise the data decides."""
    if "jpeg" in format_hint.lower() or "jpg" in format_hint.lower():
        raise _lossy_labels("JPEG", format_hint)
    image = _open_compressed(data, format_hint)
    if image.format != "PNG":
        raise _lossy_labels(image.format, format_hint)
    if image.mode in ("P", "L", "1"):
        return np.array(image, dtype=np.uint8)
    if image.mode.startswith("I"):
        return np.array(image).astype(np.uint16)
    raise ImageConversionError(
        f"label PNG is {image.mode}; it must be a single-channel label image (pixel = object id)")
