"""Depth and camera_info in evaluation bags (rosbags messages): written by sam2-make-bag, read by sam2-eval.

Depth is written as a ``16UC1`` Image in millimetres (0 = no reading), the convention RealSense's
aligned depth topic uses, with a ``sensor_msgs/CameraInfo`` of the colour camera on every frame,
both stamped like the frame's image. Reading takes ``16UC1``/``32FC1`` Images and image_transport
``compressedDepth`` (the node's decoder, ``sam2_ros.depth_codec``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sam2_model.object_3d import PinholeIntrinsics

from ..depth_codec import decode_compressed_depth, decode_depth
from ..image_codec import ImageConversionError
from .errors import EvaluationInputError

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
DEFAULT_DEPTH_TOPIC = "/camera/aligned_depth_to_color/image_raw"
DEFAULT_CAMERA_INFO_TOPIC = "/camera/color/camera_info"
MAX_MM = 65535


def encode_depth(depth_m: np.ndarray, header: Any, typestore: Any) -> tuple[Any, str]:
    """(message, msgtype): metres -> 16UC1 millimetres; NaN, inf, <= 0 and > 65.535 m -> 0."""
    depth = np.asarray(depth_m, np.float64)
    valid = np.isfinite(depth) & (depth > 0) & (depth * 1000 <= MAX_MM)
    millimetres = np.where(valid, np.round(np.where(valid, depth, 0) * 1000), 0).astype("<u2")
    height, width = millimetres.shape
    msg = typestore.types[IMAGE](header=header, height=height, width=width, encoding="16UC1", is_bigendian=0,
                                 step=2 * width, data=millimetres.view(np.uint8).reshape(-1))
    return msg, IMAGE


def encode_camera_info(intrinsics: PinholeIntrinsics, header: Any, typestore: Any) -> tuple[Any, str]:
    """(message, msgtype): a distortion-free pinhole CameraInfo (K, and P = [K | 0])."""
    fx, fy, cx, cy = intrinsics.fx, intrinsics.fy, intrinsics.cx, intrinsics.cy
    roi = typestore.types["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0,
                                                             do_rectify=False)
    msg = typestore.types[CAMERA_INFO](
        header=header, height=intrinsics.height, width=intrinsics.width, distortion_model="plumb_bob",
        d=np.zeros(5), k=np.array([fx, 0, cx, 0, fy, cy, 0, 0, 1], float),
        r=np.array([1, 0, 0, 0, 1, 0, 0, 0, 1], float), p=np.array([fx, 0, cx, 0, 0, fy, cy, 0, 0, 0, 1, 0], float),
        binning_x=0, binning_y=0, roi=roi)
    return msg, CAMERA_INFO


def decode_depth_msg(msg: Any, msgtype: str, where: str) -> np.ndarray:
    """A depth Image or compressedDepth CompressedImage -> HxW float32 metres."""
    try:
        if msgtype == COMPRESSED_IMAGE:
            return decode_compressed_depth(msg.data, str(msg.format))
        return decode_depth(str(msg.encoding), int(msg.height), int(msg.width), int(msg.step), msg.data,
                            bool(msg.is_bigendian))
    except ImageConversionError as error:
        raise EvaluationInputError(f"{where}: {error}") from None


def intrinsics_from_info(msg: Any, where: str) -> PinholeIntrinsics:
    k = [float(v) for v in msg.k]
    intrinsics = PinholeIntrinsics(k[0], k[4], k[2], k[5], int(msg.width), int(msg.height))
    problems = intrinsics.problems()
    if problems:
        raise EvaluationInputError(f"{where}: " + "; ".join(problems))
    return intrinsics
