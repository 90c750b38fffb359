"""Depth image bytes -> metres (float32), ROS-free; used by the node (``depth_conversion``) and sam2-eval.

Encodings (REP 118): ``16UC1`` (and ``mono16``) in millimetres, 0 = no reading (RealSense, Kinect,
OAK); ``32FC1`` in metres, NaN = no reading. ``scale`` (metres per unit) overrides the encoding's
convention for cameras that differ (e.g. 16UC1 in 0.1 mm: 0.0001).

Compressed depth is what image_transport's ``compressedDepth`` plugin publishes on
``<depth topic>/compressedDepth``: a 12-byte header (int32 format, float32 depthParam[2], little
endian) followed by a PNG. For 16UC1 the PNG holds the raw 16-bit values; for 32FC1 it holds
quantized inverse depth ``q = A / depth + B`` (q = 0: no reading), decoded as
``depth = A / (q - B)`` with A, B = depthParam. A 16UC1 PNG without the header (older
publishers) is read as well. The plugin's ``rvl`` format is not supported.
"""

from __future__ import annotations

import io
import struct

import numpy as np
from PIL import Image as PILImage

from .image_codec import ImageConversionError, as_uint8_buffer, pixel_rows

# encoding -> (numpy dtype of one sample, metres per unit by that encoding's convention)
DEPTH_ENCODINGS = {"16UC1": (np.uint16, 0.001), "mono16": (np.uint16, 0.001), "32FC1": (np.float32, 1.0)}
COMPRESSED_DEPTH_HEADER = struct.Struct("<iff")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class DepthConversionError(ImageConversionError):
    """A depth message that cannot be read (encoding, size, corrupt data)."""


def _scale(encoding: str, scale: float) -> float:
    return scale if scale > 0 else DEPTH_ENCODINGS[encoding][1]


def _check_encoding(encoding: str) -> None:
    if encoding not in DEPTH_ENCODINGS:
        raise DepthConversionError(
            f"depth encoding {encoding!r} is not supported; use 16UC1 (millimetres) or 32FC1 (metres), "
            "or set depth_scale for a 16UC1/32FC1 image in other units")


def decode_depth(encoding: str, height: int, width: int, step: int, data, is_bigendian: bool = False,
                 scale: float = 0.0) -> np.ndarray:
    """Raw depth bytes -> ``H x W`` float32 metres (readings as they are: 0 and NaN stay)."""
    _check_encoding(encoding)
    dtype, _ = DEPTH_ENCODINGS[encoding]
    sample = np.dtype(dtype).newbyteorder(">" if is_bigendian else "<")
    try:
        rows = pixel_rows(encoding, height, width, step, data, sample.itemsize)
    except ImageConversionError as error:
        raise DepthConversionError(f"depth image: {error}") from None
    values = np.ascontiguousarray(rows).view(sample).reshape(height, width)
    return values.astype(np.float32) * np.float32(_scale(encoding, scale))


def decode_compressed_depth(data, format_field: str, scale: float = 0.0) -> np.ndarray:
    """An image_transport compressedDepth message's bytes -> ``H x W`` float32 metres."""
    parts = [p.strip() for p in format_field.split(";")]
    encoding = parts[0]
    if len(parts) < 2 or not parts[1].startswith("compressedDepth"):
        raise DepthConversionError(f"compressed depth format {format_field!r} is not image_transport's "
                                   "compressedDepth ('16UC1; compressedDepth png' or '32FC1; ...')")
    if "rvl" in parts[1]:
        raise DepthConversionError(f"compressed depth format {format_field!r}: RVL is not supported; set the "
                                   "publisher's compressedDepth format to png")
    _check_encoding(encoding)
    buffer = as_uint8_buffer(data)
    header_size = COMPRESSED_DEPTH_HEADER.size
    if encoding == "16UC1" and buffer[:len(PNG_SIGNATURE)].tobytes() == PNG_SIGNATURE:
        header_size = 0  # some older publishers wrote 16UC1 without the header
    elif buffer.size <= header_size:
        raise DepthConversionError(f"compressed depth has {buffer.size} bytes: no PNG after the 12-byte header")
    quant_a = quant_b = 0.0
    if header_size:
        _, quant_a, quant_b = COMPRESSED_DEPTH_HEADER.unpack(buffer[:header_size].tobytes())
    try:
        image = PILImage.open(io.BytesIO(buffer[header_size:].tobytes()))
        image.load()
    except Exception as error:  # Pillow raises many types for corrupt data
        raise DepthConversionError(f"compressed depth ({format_field!r}) is not a readable PNG: {error}") from None
    if image.format != "PNG" or not image.mode.startswith("I"):
        raise DepthConversionError(f"compressed depth must be a 16-bit PNG, got {image.format} {image.mode}")
    values = np.asarray(image).astype(np.float32)
    if encoding == "32FC1":
        with np.errstate(divide="ignore"):
            metres = np.where(values > 0, quant_a / (values - quant_b), np.nan).astype(np.float32)
        return metres * np.float32(scale if scale > 0 else 1.0)
    return values * np.float32(_scale(encoding, scale))
