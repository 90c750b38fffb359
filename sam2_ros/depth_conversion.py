"""ROS messages <-> the 3D of tracked objects: depth/CameraInfo in; TrackedObject fields, RViz
markers and a point cloud out. Used by the tracker node (through ``depth_input``) and its tests.

The geometry itself is ``sam2_model.object_3d`` (numpy, ROS-free). Everything here is in the
frame of the colour image's header (the camera optical frame: x right, y down, z forward), in
metres. Colours are ``sam2_model.visualization.colour_of``, as in the overlay image.
"""

from __future__ import annotations

import array
from typing import Iterable, List, Sequence, Set, Tuple

import numpy as np
from geometry_msgs.msg import Point, Vector3
from sensor_msgs.msg import CameraInfo, CompressedImage, PointCloud2, PointField
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker, MarkerArray

from sam2_model.object_3d import Object3D, PinholeIntrinsics
from sam2_model.visualization import colour_of

from .depth_codec import decode_compressed_depth, decode_depth

BOX_NAMESPACE = "sam2_boxes"
TEXT_NAMESPACE = "sam2_ids"
BOX_ALPHA = 0.4
TEXT_HEIGHT_M = 0.05          # RViz text markers: scale.z is the height of a capital letter
MIN_BOX_SIDE_M = 0.005        # a flat face still shows as a thin box
# PointCloud2 layout: x, y, z float32 and the object id uint32, 16 bytes a point.
POINT_FIELDS = [PointField(name="x", offset=0, datatype=PointField.FLOAT32, count=1),
                PointField(name="y", offset=4, datatype=PointField.FLOAT32, count=1),
                PointField(name="z", offset=8, datatype=PointField.FLOAT32, count=1),
                PointField(name="id", offset=12, datatype=PointField.UINT32, count=1)]
POINT_DTYPE = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("id", "<u4")])


def depth_to_metres(msg, scale: float = 0.0) -> np.ndarray:
    """sensor_msgs/Image (16UC1, 32FC1) or image_transport compressedDepth CompressedImage -> H x W metres."""
    if isinstance(msg, CompressedImage):
        return decode_compressed_depth(msg.data, msg.format, scale)
    return decode_depth(msg.encoding, int(msg.height), int(msg.width), int(msg.step), msg.data,
                        bool(msg.is_bigendian), scale)


def intrinsics_from_camera_info(msg: CameraInfo) -> PinholeIntrinsics:
    """CameraInfo's K (row-major 3x3: fx 0 cx / 0 fy cy / 0 0 1) and image size. Unchecked:
    ``PinholeIntrinsics.check`` says what is wrong (e.g. an uncalibrated camera's zero K)."""
    k = [float(v) for v in msg.k]
    return PinholeIntrinsics(fx=k[0], fy=k[4], cx=k[2], cy=k[5], width=int(msg.width), height=int(msg.height))


def fill_3d(objects: Sequence, estimates: Iterable[Object3D]) -> None:
    """Set has_position, position, size and num_points on TrackedObject messages, matched by id."""
    by_id = {e.object_id: e for e in estimates}
    for obj in objects:
        found = by_id.get(obj.id)
        if found is None:
            continue
        obj.num_points = int(found.num_points)
        obj.has_position = bool(found.has_position)
        if found.has_position:
            x, y, z = (float(v) for v in found.position)
            obj.position = Point(x=x, y=y, z=z)
            sx, sy, sz = (float(v) for v in found.size)
            obj.size = Vector3(x=sx, y=sy, z=sz)


def _rgba(object_id: int, alpha: float) -> ColorRGBA:
    red, green, blue = colour_of(object_id)
    return ColorRGBA(r=red / 255.0, g=green / 255.0, b=blue / 255.0, a=float(alpha))


def _marker(header: Header, namespace: str, object_id: int, action: int) -> Marker:
    marker = Marker(header=header, ns=namespace, id=int(object_id), action=action)
    marker.pose.orientation.w = 1.0
    return marker


def markers_msg(estimates: Iterable[Object3D], header: Header, shown: Set[int]) -> Tuple[MarkerArray, Set[int]]:
    """One box (the points' percentile box) and one id label per object with 3D; DELETE markers
    for the ids in ``shown`` (the previous array's) that have none now. Returns the array and the
    ids it shows."""
    array_msg = MarkerArray()
    now: Set[int] = set()
    for found in estimates:
        if not found.has_position:
            continue
        object_id = int(found.object_id)
        now.add(object_id)
        centre = [float(v) for v in found.box_center]
        box = _marker(header, BOX_NAMESPACE, object_id, Marker.ADD)
        box.type = Marker.CUBE
        box.pose.position = Point(x=centre[0], y=centre[1], z=centre[2])
        sides = [max(float(v), MIN_BOX_SIDE_M) for v in found.size]
        box.scale = Vector3(x=sides[0], y=sides[1], z=sides[2])
        box.color = _rgba(object_id, BOX_ALPHA)
        text = _marker(header, TEXT_NAMESPACE, object_id, Marker.ADD)
        text.type = Marker.TEXT_VIEW_FACING
        # Above the box: optical frame y points down.
        text.pose.position = Point(x=centre[0], y=centre[1] - sides[1] / 2 - TEXT_HEIGHT_M, z=centre[2])
        text.scale.z = TEXT_HEIGHT_M
        text.color = _rgba(object_id, 1.0)
        text.text = str(object_id)
        array_msg.markers += [box, text]
    for object_id in sorted(shown - now):
        array_msg.markers += [_marker(header, BOX_NAMESPACE, object_id, Marker.DELETE),
                              _marker(header, TEXT_NAMESPACE, object_id, Marker.DELETE)]
    return array_msg, now


def point_cloud_msg(estimates: Iterable[Object3D], header: Header) -> PointCloud2:
    """Every object's sampled points (``Object3D.points``) with its id, as an unordered cloud."""
    parts: List[np.ndarray] = []
    for found in estimates:
        if not found.has_position or found.points is None or len(found.points) == 0:
            continue
        part = np.empty(len(found.points), POINT_DTYPE)
        part["x"], part["y"], part["z"] = found.points[:, 0], found.points[:, 1], found.points[:, 2]
        part["id"] = int(found.object_id)
        parts.append(part)
    points = np.concatenate(parts) if parts else np.empty(0, POINT_DTYPE)
    data = array.array("B")
    data.frombytes(points.tobytes())  # one copy (see image_conversion._to_byte_array)
    return PointCloud2(header=header, height=1, width=len(points), fields=POINT_FIELDS, is_bigendian=False,
                       point_step=POINT_DTYPE.itemsize, row_step=POINT_DTYPE.itemsize * len(points), data=data,
                       is_dense=True)


def cloud_points(msg: PointCloud2) -> np.ndarray:
    """A cloud from ``point_cloud_msg`` as a structured numpy array (x, y, z, id); for tests and tools."""
    return np.frombuffer(bytes(msg.data), POINT_DTYPE).copy()

