"""Depth decoding, stamp pairing and the 3D outputs' messages, without a graph."""

import io
import struct
import threading
import time

import numpy as np
import pytest
from PIL import Image as PILImage
from sensor_msgs.msg import CameraInfo
from std_msgs.msg import Header
from visualization_msgs.msg import Marker

from sam2_model.object_3d import Object3D
from sam2_model.visualization import colour_of
from sam2_ros.depth_codec import DepthConversionError, decode_compressed_depth, decode_depth
from sam2_ros.depth_conversion import cloud_points, intrinsics_from_camera_info, markers_msg, point_cloud_msg
from sam2_ros.depth_input import ProblemThrottle
from sam2_ros.stamp_pairing import NS_PER_S, StampPairing


# ---------------------------------------------------------------------------------- decoding
def test_16uc1_millimetres_with_row_padding_and_either_byte_order():
    values = np.array([[0, 1000, 1500], [65535, 250, 7]], np.uint16)
    for order in ("<", ">"):
        rows = values.astype(order + "u2").tobytes()
        padded = b"".join(rows[r * 6:(r + 1) * 6] + b"\0\0" for r in range(2))   # step 8 for 6-byte rows
        metres = decode_depth("16UC1", 2, 3, 8, padded, is_bigendian=order == ">")
        np.testing.assert_allclose(metres, values / 1000.0, rtol=1e-6)
    assert decode_depth("16UC1", 2, 3, 6, values.tobytes(), scale=0.0001)[0, 1] == pytest.approx(0.1)


def test_32fc1_metres_keep_nan():
    values = np.array([[1.25, np.nan], [0.0, 3.5]], "<f4")
    metres = decode_depth("32FC1", 2, 2, 8, values.tobytes())
    np.testing.assert_array_equal(np.isnan(metres), np.isnan(values))
    assert metres[1, 1] == 3.5


@pytest.mark.parametrize("encoding, data, fragment", [
    ("rgb8", bytes(12), "depth encoding 'rgb8' is not supported"),
    ("16UC1", bytes(5), "needs 12 bytes of data, got 5"),
])
def test_bad_raw_depth_says_why(encoding, data, fragment):
    with pytest.raises(DepthConversionError, match=fragment):
        decode_depth(encoding, 2, 3, 6, data)


def _png16(values):
    buffer = io.BytesIO()
    PILImage.fromarray(values.astype(np.uint16)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_compressed_depth_16uc1_is_the_png_after_the_header():
    values = np.array([[0, 800], [1200, 4000]], np.uint16)
    data = struct.pack("<iff", 0, 0.0, 0.0) + _png16(values)
    np.testing.assert_allclose(decode_compressed_depth(data, "16UC1; compressedDepth png"), values / 1000.0)
    np.testing.assert_allclose(decode_compressed_depth(data, "16UC1; compressedDepth"), values / 1000.0)
    # Without the header (some older publishers): the PNG itself.
    np.testing.assert_allclose(decode_compressed_depth(_png16(values), "16UC1; compressedDepth"), values / 1000.0)


def test_compressed_depth_32fc1_is_quantized_inverse_depth():
    quant_a, quant_b = 100.0 * 101.0, 1.0 - 100.0 * 101.0 / 10.0
    depth = np.array([[0.5, 1.0], [2.0, np.nan]])
    q = np.where(np.isnan(depth), 0, np.round(quant_a / np.nan_to_num(depth, nan=1.0) + quant_b))
    data = struct.pack("<iff", 0, quant_a, quant_b) + _png16(q)
    metres = decode_compressed_depth(data, "32FC1; compressedDepth png")
    assert np.isnan(metres[1, 1])
    np.testing.assert_allclose(metres[~np.isnan(depth)], depth[~np.isnan(depth)], rtol=2e-3)


@pytest.mark.parametrize("data, fmt, fragment", [
    (b"\0" * 12 + b"junk", "16UC1; compressedDepth png", "not a readable PNG"),
    (b"\0" * 8, "16UC1; compressedDepth png", "no PNG after the 12-byte header"),
    (b"\0" * 20, "32FC1; compressedDepth rvl", "RVL is not supported"),
    (b"\0" * 20, "jpeg", "is not image_transport's compressedDepth"),
    (b"\0" * 20, "8UC3; compressedDepth png", "depth encoding '8UC3' is not supported"),
])
def test_bad_compressed_depth_says_why(data, fmt, fragment):
    with pytest.raises(DepthConversionError, match=fragment):
        decode_compressed_depth(data, fmt)


def test_camera_info_k_gives_the_intrinsics():
    info = CameraInfo(width=640, height=480, k=[615.0, 0.0, 320.5, 0.0, 612.0, 240.25, 0.0, 0.0, 1.0])
    found = intrinsics_from_camera_info(info)
    assert (found.fx, found.fy, found.cx, found.cy, found.width, found.height) == (615.0, 612.0, 320.5, 240.25,
                                                                                    640, 480)
    assert intrinsics_from_camera_info(CameraInfo()).problems()   # an uncalibrated camera's zero K


# ---------------------------------------------------------------------------------- pairing
def test_pairing_takes_the_exact_stamp_else_the_nearest_within_max_age():
    pairing = StampPairing(max_age_s=0.02)
    assert pairing.pair(0, wait_s=0).reason == "no depth image received yet"
    for ms in (0, 33, 66):
        pairing.put(ms * 10**6, f"depth {ms}")
    assert pairing.pair(33 * 10**6, wait_s=0).item == "depth 33"
    found = pairing.pair(45 * 10**6, wait_s=0)
    assert found.item == "depth 33" and found.offset_s == pytest.approx(-0.012)
    missed = pairing.pair(120 * 10**6, wait_s=0)
    assert missed.item is None and "-54.0 ms" in missed.reason and "depth_max_age 20.0 ms" in missed.reason


def test_pairing_waits_for_a_partner_that_is_on_its_way_but_not_for_a_dead_stream():
    pairing = StampPairing(max_age_s=0.02)
    pairing.put(0, "old")
    timer = threading.Timer(0.03, pairing.put, (100 * 10**6, "partner"))
    timer.start()
    assert pairing.pair(100 * 10**6, wait_s=1.0).item == "partner"
    # Depth stamps 10 s behind the colour: no waiting, no partner.
    started = time.monotonic()
    assert pairing.pair(10 * NS_PER_S, wait_s=1.0).item is None
    assert time.monotonic() - started < 0.5


def test_problems_of_a_new_kind_are_warned_about_at_once():
    throttle = ProblemThrottle(2.0)
    assert throttle.should_warn("nearest depth is +40.0 ms away", now=0.0)
    assert not throttle.should_warn("nearest depth is +73.5 ms away", now=1.0)   # same kind, numbers differ
    assert throttle.should_warn("depth encoding 'rgb8' is not supported", now=1.0)
    assert throttle.should_warn("nearest depth is +12.0 ms away", now=2.5)


# ---------------------------------------------------------------------------------- outputs
def _object(object_id, points=None):
    return Object3D(object_id, True, np.array([0.1, 0.2, 1.0]), np.array([0.2, 0.1, 0.0]),
                    np.array([0.1, 0.2, 1.01]), 100, points)


def test_markers_box_and_id_in_the_object_colour_and_deleted_when_gone():
    header = Header(frame_id="camera_color_optical_frame")
    markers, shown = markers_msg([_object(3), _object(7), Object3D(9, False)], header, set())
    assert shown == {3, 7}
    boxes = [m for m in markers.markers if m.type == Marker.CUBE]
    texts = [m for m in markers.markers if m.type == Marker.TEXT_VIEW_FACING]
    assert [m.id for m in boxes] == [3, 7] and [m.text for m in texts] == ["3", "7"]
    assert all(m.header.frame_id == "camera_color_optical_frame" for m in markers.markers)
    red, green, blue = colour_of(7)
    assert (round(boxes[1].color.r * 255), round(boxes[1].color.g * 255), round(boxes[1].color.b * 255)) == \
        (red, green, blue)
    assert (boxes[0].pose.position.x, boxes[0].pose.position.z) == (0.1, 1.01)   # the percentile box's centre
    assert boxes[0].scale.z > 0   # a flat face is still drawn
    markers, shown = markers_msg([_object(7)], header, shown)
    assert shown == {7}
    assert {(m.ns, m.id) for m in markers.markers if m.action == Marker.DELETE} == {("sam2_boxes", 3), ("sam2_ids", 3)}


def test_point_cloud_holds_every_objects_points_with_its_id():
    first = np.array([[0.0, 0.1, 1.0], [0.2, 0.3, 1.1]], np.float32)
    second = np.array([[-0.5, 0.0, 2.0]], np.float32)
    cloud = point_cloud_msg([_object(2, first), _object(5, second), Object3D(6, False)], Header(frame_id="cam"))
    assert cloud.width == 3 and cloud.height == 1 and cloud.point_step == 16 and len(cloud.data) == 48
    points = cloud_points(cloud)
    np.testing.assert_array_equal(points["id"], [2, 2, 5])
    np.testing.assert_allclose(np.stack([points["x"], points["y"], points["z"]], 1), np.vstack([first, second]))
    assert point_cloud_msg([], Header()).width == 0


# ---------------------------------------------------------------------------------- parameters
@pytest.mark.parametrize("values, fragment", [
    ({"depth_min": 5.0, "depth_max": 1.0}, "depth range min_depth 5.0 .. max_depth 1.0"),
    ({"points_stride": 0}, "points_stride 0 must be in 1..64"),
    ({"depth_scale": -1.0}, "depth_scale -1.0 must be >= 0"),
    ({"depth_max_age": -0.5}, "depth_max_age -0.5 must be in 0..10"),
    ({"depth_low_percentile": 60.0}, "percentiles 60.0 / 99.5"),
    ({"depth_min_points": 0}, "min_points 0 must be at least 1"),
    ({"use_depth": "yes"}, "use_depth must be true or false"),
])
def test_bad_depth_parameters_are_named(values, fragment):
    from sam2_ros.node_parameters import ParameterError, parameters_from_values

    with pytest.raises(ParameterError, match=fragment):
        parameters_from_values(values)


def test_depth_parameters_default_to_the_geometry_options():
    from sam2_model.object_3d import DepthOptions
    from sam2_ros.node_parameters import TrackerParameters

    params = TrackerParameters()
    assert params.depth_options() == DepthOptions() and params.use_depth is False


# ---------------------------------------------------------------------------------- the node's depth input
def _depth_input_frame():
    """A FrameState with one 20x10 object at pixels x 30..49, y 20..29; a 16UC1 wall at 1.25 m."""
    import array as array_module

    from sensor_msgs.msg import Image

    from sam2_model.frame_state import FrameState, ObjectState

    state = FrameState(0, 64, 80, [ObjectState(4, True, 0.9, 0.9, (30, 20, 20, 10), 200, np.ones((10, 20), bool))],
                       None)
    depth = Image(height=64, width=80, encoding="16UC1", step=160)
    depth.data = array_module.array("B", np.full((64, 80), 1250, "<u2").tobytes())
    depth.header.stamp.sec = 5
    return state, depth


def test_depth_input_pairs_estimates_and_reports():
    from sam2_model.object_3d import DepthOptions
    from sam2_ros.depth_input import DepthInput, DepthSettings

    state, depth = _depth_input_frame()
    inputs = DepthInput(DepthSettings(DepthOptions(), 0.02, 0.0, 2), "/depth", "/info")
    found = inputs.estimate(state, depth.header, points=False, wait_s=0)
    assert found.objects is None and "no depth image received yet" in found.problem
    inputs.put_depth(depth)
    found = inputs.estimate(state, depth.header, points=False, wait_s=0)
    assert found.objects is None and found.problem == "no camera_info received yet on /info"
    inputs.put_camera_info(CameraInfo(width=80, height=64, k=[100.0, 0, 39.5, 0, 100.0, 31.5, 0, 0, 1]))
    found = inputs.estimate(state, depth.header, points=True, wait_s=0)
    (obj,) = found.objects
    # Eroded by 2: pixels x 32..47, y 22..27 at 1.25 m; the median pixel (39.5, 24.5).
    assert obj.has_position and obj.num_points == 16 * 6
    np.testing.assert_allclose(obj.position, [0.0, (24.5 - 31.5) * 1.25 / 100, 1.25], atol=1e-6)
    assert len(obj.points) == 8 * 3   # stride 2: even columns 32..46, even rows 22..26
    status = inputs.status("tracker_node: depth")
    values = {kv.key: kv.value for kv in status.values}
    assert status.level == b"\x01" and "no camera_info received yet" in status.message   # recent problems
    assert values["frames with 3D (total)"] == "1" and values["frames without 3D (total)"] == "2"
