"""The tracker node with use_depth in a real ROS 2 graph: colour + depth + camera_info in,
TrackedObjects with 3D, RViz markers and a point cloud out; bad depth input leaves tracking alone.

The depth the test publishes is a wall at a known distance with a pattern of holes (and NaNs
for 32FC1). Expected values come from the definitions in docs/node.md applied here with plain
numpy to the mask the node published (a direct minimum filter for the erosion, back-projection
of the median / percentile pixel), not from sam2_model.object_3d.
"""

import array
import io
import struct

import numpy as np
import pytest
from PIL import Image as PILImage
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
from visualization_msgs.msg import Marker, MarkerArray

from sam2_model.visualization import colour_of
from sam2_ros.depth_conversion import cloud_points
from sam2_ros.image_conversion import paste_object_mask

from node_harness import _Recorder, make_header, model_files, prompt_msg, start_node, stamp_of  # noqa: F401

pytestmark = pytest.mark.ros

BOX = [128.0, 133.12, 212.48, 199.68]   # the parity session's second object
POINT = [76.8, 89.6]                    # its first
FX = FY = 200.0
CX = CY = 127.5
ERODE_PX, LOW, HIGH, STRIDE = 2, 0.5, 99.5, 3


def _holes(shape):
    """Every 7th column and every 5th row without a reading."""
    holes = np.zeros(shape, bool)
    holes[:, ::7] = True
    holes[::5, :] = True
    return holes


def depth_image(distance_m, index, encoding="16UC1", shape=(256, 256)):
    header = make_header(index)
    holes = _holes(shape)
    if encoding == "32FC1":
        values = np.full(shape, distance_m, "<f4")
        values[holes] = np.nan
    else:
        values = np.full(shape, round(distance_m * 1000), "<u2")
        values[holes] = 0
    msg = Image(header=header, height=shape[0], width=shape[1], encoding=encoding, is_bigendian=0,
                step=values.strides[0])
    msg.data = array.array("B", values.tobytes())
    return msg


def compressed_depth(distance_m, index, shape=(256, 256)):
    """image_transport's compressedDepth for 32FC1, written from its definition: a 12-byte header
    (int32 format, float32 A, B) and a 16-bit PNG of q = A / depth + B (0 = no reading)."""
    quant_a = 100.0 * (100.0 + 1.0)           # the plugin's depth_quantization 100, depth_max 10 m
    quant_b = 1.0 - quant_a / 10.0
    q = np.full(shape, round(quant_a / distance_m + quant_b), np.uint16)
    q[_holes(shape)] = 0
    png = io.BytesIO()
    PILImage.fromarray(q).save(png, format="PNG")
    msg = CompressedImage(header=make_header(index), format="32FC1; compressedDepth png")
    msg.data = array.array("B", struct.pack("<iff", 0, quant_a, quant_b) + png.getvalue())
    return msg, quant_a / (int(q[1, 1]) - quant_b)   # and the depth a decoder must get back


def camera_info(index, fx=FX, width=256, height=256):
    return CameraInfo(header=make_header(index), width=width, height=height,
                      k=[fx, 0.0, CX, 0.0, FY, CY, 0.0, 0.0, 1.0])


def expected_3d(mask, distance_m):
    """The documented estimate for a wall at distance_m: eroded mask, valid pixels, back-projection."""
    padded = np.pad(mask, ERODE_PX)
    eroded = np.ones_like(mask)
    for dy in range(2 * ERODE_PX + 1):
        for dx in range(2 * ERODE_PX + 1):
            eroded &= padded[dy:dy + mask.shape[0], dx:dx + mask.shape[1]]
    rows, cols = np.nonzero(eroded & ~_holes(mask.shape))
    x = (cols - CX) * distance_m / FX
    y = (rows - CY) * distance_m / FY
    position = [np.median(x), np.median(y), distance_m]
    margin = 2 * ERODE_PX * distance_m / FX
    size = [np.percentile(x, HIGH) - np.percentile(x, LOW) + margin,
            np.percentile(y, HIGH) - np.percentile(y, LOW) + margin, 0.0]
    grid = (rows % STRIDE == 0) & (cols % STRIDE == 0)
    return np.array(position), np.array(size), rows.size, int(grid.sum())


class DepthClient:
    """The test's extra publishers and recorders for the depth topics (on the harness's client node)."""

    def __init__(self, running, depth_topic, info_topic, compressed=False):
        client = running.client
        node, fqn = client.node, running.process.fqn
        self.client = client
        self.depth_pub = node.create_publisher(CompressedImage if compressed else Image, depth_topic, 10)
        self.info_pub = node.create_publisher(CameraInfo, info_topic, 10)
        self.markers, self.points = _Recorder(), _Recorder()
        self.marker_arrays = []
        self._subs = [node.create_subscription(MarkerArray, f"{fqn}/markers", self._on_markers, 50),
                      node.create_subscription(PointCloud2, f"{fqn}/points", self.points, 50)]
        client.wait_until(lambda: self.depth_pub.get_subscription_count() > 0
                          and self.info_pub.get_subscription_count() > 0
                          and all(s.get_publisher_count() > 0 for s in self._subs), 30, "the depth topics")

    def _on_markers(self, msg):
        self.marker_arrays.append(msg)
        if msg.markers:
            self.markers(msg.markers[0])   # recorded by the stamp of its frame

    def track(self, rgb, index, depth_msg, info=None):
        """Publish camera_info, depth, then colour for frame ``index``; the frame's outputs."""
        self.info_pub.publish(info or camera_info(index))
        if depth_msg is not None:
            self.depth_pub.publish(depth_msg)
        return self.client.track(rgb, index)


def _check_3d(obj, mask, distance_m, tol=1e-3):
    position, size, count, _ = expected_3d(mask, distance_m)
    assert obj.has_position and obj.num_points == count
    np.testing.assert_allclose([obj.position.x, obj.position.y, obj.position.z], position, atol=tol)
    np.testing.assert_allclose([obj.size.x, obj.size.y, obj.size.z], size, atol=tol)


@pytest.fixture(scope="module")
def running(model_files, tmp_path_factory):  # noqa: F811
    namespace = "/sam2_depth_graph"
    params = model_files.params(use_depth=True, points_stride=STRIDE, diagnostics_period=0.2)
    # Remapped like a RealSense's aligned depth topics.
    node = start_node(tmp_path_factory.mktemp("depth"), params, namespace=namespace,
                      extra_args=("-r", f"depth:={namespace}/aligned_depth", "-r", f"camera_info:={namespace}/info"))
    yield node, DepthClient(node, f"{namespace}/aligned_depth", f"{namespace}/info")
    node.close()


def test_objects_carry_3d_markers_and_points(running, model_files):  # noqa: F811
    node, depth = running
    client = depth.client
    client.reset()
    frames = model_files.frames()[8:]   # the session's objects are visible on frames 8..19
    first = depth.track(frames[0], 0, depth_image(1.2, 0))
    assert first.ids() == []
    assert client.add_object(prompt_msg(box=BOX)).success
    assert client.add_object(prompt_msg(points=[POINT], labels=[1])).success
    for index, encoding, distance in [(1, "16UC1", 1.2), (2, "32FC1", 0.85), (3, "16UC1", 2.0)]:
        out = depth.track(frames[index], index, depth_image(distance, index, encoding))
        assert out.ids() == [1, 2]
        for obj in out.objects.objects:
            _check_3d(obj, paste_object_mask(obj, (256, 256)), distance)
        stamp = stamp_of(out.objects.header)

        markers = depth.markers.wait(stamp)
        array_msg = next(m for m in reversed(depth.marker_arrays) if stamp_of(m.markers[0].header) == stamp)
        assert markers is not None
        boxes = {m.id: m for m in array_msg.markers if m.ns == "sam2_boxes" and m.action == Marker.ADD}
        texts = {m.id: m for m in array_msg.markers if m.ns == "sam2_ids" and m.action == Marker.ADD}
        assert set(boxes) == set(texts) == {1, 2}
        for object_id, box in boxes.items():
            assert box.header.frame_id == "camera" and box.type == Marker.CUBE
            red, green, blue = colour_of(object_id)
            assert (round(box.color.r * 255), round(box.color.g * 255), round(box.color.b * 255)) == (red, green, blue)
            assert texts[object_id].text == str(object_id)
            assert box.pose.position.z == pytest.approx(distance, abs=1e-3)

        cloud = depth.points.wait(stamp)
        assert cloud is not None and cloud.header.frame_id == "camera"
        assert [f.name for f in cloud.fields] == ["x", "y", "z", "id"]
        points = cloud_points(cloud)
        for obj in out.objects.objects:
            mine = points[points["id"] == obj.id]
            assert len(mine) == expected_3d(paste_object_mask(obj, (256, 256)), distance)[3] > 0
            np.testing.assert_allclose(mine["z"], distance, atol=1e-3)
        assert set(np.unique(points["id"])) == {1, 2}

    # An object removed: its markers are deleted on the next frame.
    assert client.remove_object(1).success
    out = depth.track(frames[4], 4, depth_image(1.2, 4))
    assert out.ids() == [2]
    stamp = stamp_of(out.objects.header)
    assert depth.markers.wait(stamp) is not None
    array_msg = next(m for m in reversed(depth.marker_arrays) if stamp_of(m.markers[0].header) == stamp)
    deleted = {(m.ns, m.id) for m in array_msg.markers if m.action == Marker.DELETE}
    assert deleted == {("sam2_boxes", 1), ("sam2_ids", 1)}

    # A colour frame without a depth partner (the last depth is 460 ms older): tracked, no 3D.
    out = depth.track(frames[5], 50, None)
    assert out.ids() == [2] and not out.objects.objects[0].has_position
    assert out.objects.objects[0].area > 0


BAD_DEPTH = [
    (lambda i: depth_image(1.0, i, shape=(128, 128)), None, "does not match the colour image 256x256"),
    (lambda i: _with_encoding(depth_image(1.0, i), "rgb8"), None, "depth encoding 'rgb8' is not supported"),
    (lambda i: depth_image(1.0, i), lambda i: camera_info(i, fx=0.0), "focal length fx = 0.0"),
    (lambda i: depth_image(1.0, i + 5000), None, "beyond depth_max_age"),
    (lambda i: depth_image(1.0, i), lambda i: camera_info(i, width=640, height=480), "camera_info is for 640x480"),
]


def _with_encoding(msg, encoding):
    msg.encoding = encoding
    return msg


def test_bad_depth_input_warns_and_leaves_tracking_alone(running, model_files):  # noqa: F811
    node, depth = running
    client = depth.client
    client.reset()
    frames = model_files.frames()[8:]
    depth.track(frames[0], 100, depth_image(1.0, 100))
    assert client.add_object(prompt_msg(box=BOX)).success
    index = 110
    for make_depth, make_info, reason in BAD_DEPTH:
        info = make_info(index) if make_info else None
        out = depth.track(frames[(index - 100) // 10 % 12], index, make_depth(index), info)
        assert out.ids() == [1] and out.objects.objects[0].area > 0
        assert not out.objects.objects[0].has_position
        client.wait_until(lambda: _depth_status(client) is not None and reason in _depth_status(client).message,
                          10, f"a depth diagnostic naming {reason!r}")
        assert _depth_status(client).level == b"\x01"   # WARN
        assert reason in node.process.log()
        # Good input again: 3D is back. Frames 100 ms apart: no depth pairs with a neighbour's colour.
        index += 10
        out = depth.track(frames[(index - 100) // 10 % 12], index, depth_image(1.0, index))
        obj = out.objects.objects[0]
        _check_3d(obj, paste_object_mask(obj, (256, 256)), 1.0)
        index += 10
    assert node.process.alive()


def _depth_status(client):
    for array_msg in reversed(client.diagnostics[-3:]):
        for status in array_msg.status:
            if status.name.endswith(": depth"):
                return status
    return None


@pytest.mark.parametrize("remaps, expected", [
    ((), {"image": "/cam/image", "image/compressed": "/cam/image/compressed",
          "depth": "/cam/depth", "depth/compressedDepth": "/cam/depth/compressedDepth"}),
    # Remapping the base moves the transport's topic with it (image_transport's naming) ...
    (("image:=/rs/color", "depth:=/rs/aligned"), {"image/compressed": "/rs/color/compressed",
                                                  "depth/compressedDepth": "/rs/aligned/compressedDepth"}),
    # ... and remapping the transport's topic itself wins.
    (("image:=/rs/color", "image/compressed:=/rs/jpeg", "depth:=/rs/aligned", "depth/compressedDepth:=/rs/png"),
     {"image": "/rs/color", "image/compressed": "/rs/jpeg", "depth": "/rs/aligned", "depth/compressedDepth": "/rs/png"}),
])
def test_input_topics_follow_remapping_of_the_base_and_of_the_transport(remaps, expected):
    import rclpy

    from sam2_ros.tracker_node import TrackerNode

    context = rclpy.Context()
    rclpy.init(context=context, args=["--ros-args", *(arg for remap in remaps for arg in ("-r", remap))])
    try:
        node = TrackerNode(context=context, namespace="/cam")
        for name, topic in expected.items():
            base, _, transport = name.partition("/")
            assert node._transport_topic_name(base, transport or None) == topic, name
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)


def test_compressed_depth_input_without_published_masks(model_files, tmp_path):  # noqa: F811
    """compressedDepth on a remapped depth/compressedDepth (which wins over <depth>/compressedDepth);
    publish_masks false: the masks are computed for the 3D but not published."""
    namespace = "/sam2_depth_compressed"
    params = model_files.params(use_depth=True, depth_compressed=True, publish_masks=False)
    node = start_node(tmp_path, params, namespace=namespace,
                      extra_args=("-r", f"depth:={namespace}/aligned_depth",
                                  "-r", f"depth/compressedDepth:={namespace}/packed_depth"))
    try:
        depth = DepthClient(node, f"{namespace}/packed_depth", f"{namespace}/camera_info", compressed=True)
        frames = model_files.frames()[8:]
        msg, _ = compressed_depth(1.3, 0)
        depth.track(frames[0], 0, msg)
        assert depth.client.add_object(prompt_msg(box=BOX)).success
        msg, decoded = compressed_depth(1.3, 1)
        out = depth.track(frames[1], 1, msg)
        obj = out.objects.objects[0]
        # Quantized inverse depth: the decoder must give back A / (q - B), about 1.3 m.
        assert abs(decoded - 1.3) < 0.01
        assert (obj.mask.width, obj.mask.height) == (0, 0) and obj.area > 0
        assert obj.has_position and obj.num_points > 0
        assert obj.position.z == pytest.approx(decoded, abs=1e-4) and obj.size.z == pytest.approx(0.0, abs=1e-4)
    finally:
        node.close()
