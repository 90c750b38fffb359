"""sensor_msgs images <-> numpy, without cv_bridge (which is not installable from PyPI).

Inputs become ``H x W x 3`` uint8 RGB arrays, the tracker's frame format. Outputs are
mono8 masks (255 = object) and label images (one object id per pixel, mono8 or mono16).

The numpy-level functions (``decode_raw``, ``decode_compressed``, ...) take plain values so
that they can be tested without messages; the message-level ones wrap them.
"""

from __future__ import annotations

import array
import io
from typing import Dict, Tuple

import numpy as np
from PIL import Image as PILImage
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header


class ImageConversionError(ValueError):
    """An image the node cannot use; the message says what is wrong with it."""


# Raw encodings we read: encoding -> (channels, indices of R, G, B among the channels).
# 8-bit data has no byte order, so is_bigendian is irrelevant for all of them.
_RAW_ENCODINGS: Dict[str, Tuple[int, Tuple[int, int, int]]] = {
    "rgb8": (3, (0, 1, 2)),
    "bgr8": (3, (2, 1, 0)),
    "rgba8": (4, (0, 1, 2)),
    "bgra8": (4, (2, 1, 0)),
    "mono8": (1, (0, 0, 0)),
}
SUPPORTED_ENCODINGS = tuple(_RAW_ENCODINGS)

# Compressed formats Pillow decodes for us (compressed_image_transport writes these two).
_COMPRESSED_FORMATS = ("JPEG", "PNG")
# Pillow modes that are 8 bits per channel and convert to RGB without losing meaning;
# 16-bit or float PNGs (depth images, label images) are not camera pictures.
_EIGHT_BIT_MODES = ("1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr")


def _as_uint8_buffer(data) -> np.ndarray:
    """Message byte arrays (array.array('B'), bytes, lists) as a flat uint8 view, no copy when possible."""
    if isinstance(data, (bytes, bytearray, memoryview, array.array, np.ndarray)):
        return np.frombuffer(data, dtype=np.uint8)
    return np.asarray(data, dtype=np.uint8).reshape(-1)


def _to_byte_array(pixels: np.ndarray) -> array.array:
    """A numpy array as the ``array.array('B')`` that rclpy stores for ``uint8[]`` fields.

    Building it from bytes is a single copy; assigning a numpy array or bytes to the field
    would make rclpy check every element in Python, which takes ~100 ms for a 960x540 image.
    """
    out = array.array("B")
    out.frombytes(np.ascontiguousarray(pixels).tobytes())
    return out


def _pixel_rows(encoding: str, height: int, width: int, step: int, data, bytes_per_pixel: int) -> np.ndarray:
    """The ``height x (width * bytes_per_pixel)`` bytes of an image, row padding (``step``) removed."""
    if height <= 0 or width <= 0:
        raise ImageConversionError(f"{encoding} image is empty ({width}x{height})")
    row_bytes = width * bytes_per_pixel
    if step < row_bytes:
        raise ImageConversionError(
            f"{encoding} image {width}x{height} has step {step}, less than the {row_bytes} bytes of a row")
    buffer = _as_uint8_buffer(data)
    needed = step * (height - 1) + row_bytes  # the last row's padding may be missing
    if buffer.size < needed:
        raise ImageConversionError(
            f"{encoding} image {width}x{height} (step {step}) needs {needed} bytes of data, got {buffer.size}")
    if buffer.size < step * height:
        buffer = np.concatenate([buffer, np.zeros(step * height - buffer.size, np.uint8)])
    return buffer[: step * height].reshape(height, step)[:, :row_bytes]


def decode_raw(encoding: str, height: int, width: int, step: int, data) -> np.ndarray:
    """Raw image bytes -> ``H x W x 3`` uint8 RGB (a new contiguous array)."""
    spec = _RAW_ENCODINGS.get(encoding)
    if spec is None:
        raise ImageConversionError(
            f"image encoding {encoding!r} is not supported; use one of {', '.join(SUPPORTED_ENCODINGS)} "
            "or a compressed (jpeg/png) image")
    channels, rgb_order = spec
    rows = _pixel_rows(encoding, height, width, step, data, channels)
    pixels = rows.reshape(height, width, channels)
    if channels == 1:
        return np.repeat(pixels, 3, axis=2)
    return np.ascontiguousarray(pixels[:, :, list(rgb_order)])


def decode_compressed(data, format_hint: str = "") -> np.ndarray:
    """JPEG or PNG bytes -> ``H x W x 3`` uint8 RGB.

    The format string of a CompressedImage (``"jpeg"``, ``"rgb8; jpeg compressed bgr8"``, ...)
    only names the source encoding; the bytes are standard JPEG/PNG with RGB channel order
    whatever it says, so the data itself decides.
    """
    buffer = _as_uint8_buffer(data)
    if buffer.size == 0:
        raise ImageConversionError("compressed image has no data")
    try:
        with PILImage.open(io.BytesIO(buffer.tobytes())) as image:
            if image.format not in _COMPRESSED_FORMATS:
                raise ImageConversionError(
                    f"compressed image is {image.format}, not JPEG or PNG (format field {format_hint!r})")
            if image.mode not in _EIGHT_BIT_MODES:
                raise ImageConversionError(
                    f"compressed {image.format} image has pixel mode {image.mode}; only 8-bit colour or grey "
                    "images can be tracked")
            return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()
    except ImageConversionError:
        raise
    except Exception as error:  # Pillow raises many types for corrupt data (OSError, SyntaxError, ...)
        raise ImageConversionError(
            f"compressed image data (format field {format_hint!r}, {buffer.size} bytes) could not be decoded "
            f"as JPEG or PNG: {error}") from None


def image_to_rgb(msg: Image) -> np.ndarray:
    """sensor_msgs/Image (rgb8, bgr8, rgba8, bgra8, mono8) -> ``H x W x 3`` uint8 RGB."""
    return decode_raw(msg.encoding, int(msg.height), int(msg.width), int(msg.step), msg.data)


def compressed_to_rgb(msg: CompressedImage) -> np.ndarray:
    """sensor_msgs/CompressedImage (jpeg, png) -> ``H x W x 3`` uint8 RGB."""
    return decode_compressed(msg.data, msg.format)


def image_to_mask(msg: Image) -> np.ndarray:
    """A mono8 mask image -> ``H x W`` bool (nonzero = object)."""
    if msg.encoding not in ("mono8", "8UC1"):
        raise ImageConversionError(f"mask encoding must be mono8 (nonzero = object), got {msg.encoding!r}")
    rows = _pixel_rows(msg.encoding, int(msg.height), int(msg.width), int(msg.step), msg.data, 1)
    return rows != 0


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
        pixels, step = labels.astype(np.uint8), width
    else:
        pixels, step = labels.astype("<u2"), 2 * width  # little-endian, is_bigendian = 0
    return Image(header=header, height=height, width=width, encoding=encoding, is_bigendian=0, step=step,
                 data=_to_byte_array(pixels))


def image_to_labels(msg: Image) -> np.ndarray:
    """A mono8/mono16 label image -> ``H x W`` int32 ids (for tests and consumers)."""
    if msg.encoding in ("mono8", "8UC1"):
        return _pixel_rows(msg.encoding, msg.height, msg.width, msg.step, msg.data, 1).astype(np.int32)
    if msg.encoding in ("mono16", "16UC1"):
        rows = np.ascontiguousarray(_pixel_rows(msg.encoding, msg.height, msg.width, msg.step, msg.data, 2))
        dtype = ">u2" if msg.is_bigendian else "<u2"
        return rows.view(dtype).reshape(msg.height, msg.width).astype(np.int32)
    raise ImageConversionError(f"label image encoding must be mono8 or mono16, got {msg.encoding!r}")
