"""3D from masks and depth (sam2_model.object_3d) on synthetic scenes of known geometry.

A pinhole camera (640x480, f = 525 px) sees a wall, a box and a sphere at known places; the depth
is ray cast here by closed formulas (ray/slab and ray/sphere intersection), the masks are where
each shape is the nearest surface. Expected positions and extents come from the shapes
themselves (centres, side lengths, radius), not from the code under test.
"""

import math

import numpy as np
import pytest

from sam2_model.frame_state import ObjectState
from sam2_model.object_3d import (DepthError, DepthOptions, PinholeIntrinsics, check_depth, erode,
                                  estimate_object, estimate_objects)

CAMERA = PinholeIntrinsics(fx=525.0, fy=525.0, cx=319.5, cy=239.5, width=640, height=480)
WALL_M = 2.0
BOX_CENTER, BOX_SIZE = np.array([0.0, -0.05, 1.05]), np.array([0.20, 0.15, 0.10])  # front face at 1.00 m
SPHERE_CENTER, SPHERE_R = np.array([-0.25, 0.12, 1.0]), 0.08


def _rays():
    v, u = np.mgrid[0:CAMERA.height, 0:CAMERA.width].astype(np.float64)
    return np.stack([(u - CAMERA.cx) / CAMERA.fx, (v - CAMERA.cy) / CAMERA.fy, np.ones_like(u)], axis=-1)


def _box_depth():
    """Only the front face of this box is visible (the camera sits inside its x and y slabs)."""
    rays = _rays()
    front = BOX_CENTER[2] - BOX_SIZE[2] / 2
    x, y = rays[..., 0] * front, rays[..., 1] * front
    inside = (np.abs(x - BOX_CENTER[0]) <= BOX_SIZE[0] / 2) & (np.abs(y - BOX_CENTER[1]) <= BOX_SIZE[1] / 2)
    return np.where(inside, front, np.inf)


def _sphere_depth():
    rays = _rays()
    a = (rays ** 2).sum(-1)
    b = -2 * rays @ SPHERE_CENTER
    c = SPHERE_CENTER @ SPHERE_CENTER - SPHERE_R ** 2
    disc = b * b - 4 * a * c
    t = (-b - np.sqrt(np.maximum(disc, 0))) / (2 * a)
    return np.where(disc >= 0, t, np.inf)


def _scene():
    """Depth in metres and the full-frame masks of object 1 (box) and 2 (sphere)."""
    box, sphere = _box_depth(), _sphere_depth()
    depth = np.minimum(np.minimum(box, sphere), WALL_M)
    return depth, {1: box <= np.minimum(sphere, WALL_M), 2: sphere < np.minimum(box, WALL_M)}


def _state(object_id, mask):
    rows, cols = np.nonzero(mask)
    y0, y1, x0, x1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    return ObjectState(object_id, True, 0.9, 0.9, (int(x0), int(y0), int(x1 - x0), int(y1 - y0)), int(mask.sum()),
                       mask[y0:y1, x0:x1].copy())


def _check_box(found):
    assert found.has_position and found.num_points > 5000
    np.testing.assert_allclose(found.position, [BOX_CENTER[0], BOX_CENTER[1], 1.0], atol=0.01)
    np.testing.assert_allclose(found.size, [BOX_SIZE[0], BOX_SIZE[1], 0.0], atol=0.02)


def _check_sphere(found):
    assert found.has_position
    # The visible cap faces the camera, centred on the line of sight to the centre. Its median
    # depth along that line: for pixels spread evenly over the disc, r^2 - rho^2 is uniform, so
    # the median of sqrt(r^2 - rho^2) is r / sqrt(2) in front of the centre (orthographic
    # approximation, good to a few mm at 1 m).
    line_of_sight = SPHERE_CENTER / np.linalg.norm(SPHERE_CENTER)
    expected = SPHERE_CENTER - SPHERE_R / math.sqrt(2) * line_of_sight
    np.testing.assert_allclose(found.position, expected, atol=0.01)
    # x and y: the diameter. z: part of the visible cap, which runs from the front (c - r) to the
    # rim (about c); the eroded rim, where depth changes fastest, is left out.
    np.testing.assert_allclose(found.size[:2], [2 * SPHERE_R, 2 * SPHERE_R], atol=0.02)
    assert 0.3 * SPHERE_R < found.size[2] < SPHERE_R


def test_box_face_and_sphere_at_one_metre():
    depth, masks = _scene()
    found = estimate_objects([_state(i, m) for i, m in masks.items()], depth.astype(np.float32), CAMERA,
                             DepthOptions())
    _check_box(found[0])
    _check_sphere(found[1])
    assert [f.object_id for f in found] == [1, 2]


def test_plane_position_is_its_distance():
    depth = np.full((CAMERA.height, CAMERA.width), 1.5, np.float32)
    mask = np.zeros(depth.shape, bool)
    mask[100:200, 300:420] = True   # pixels u 300..419, v 100..199
    found = estimate_object(_state(3, mask), depth, CAMERA, DepthOptions())
    # Centre pixel (359.5, 149.5) back-projected at 1.5 m; width 120 px -> 120 * 1.5 / 525 m.
    expected = [(359.5 - CAMERA.cx) * 1.5 / CAMERA.fx, (149.5 - CAMERA.cy) * 1.5 / CAMERA.fy, 1.5]
    np.testing.assert_allclose(found.position, expected, atol=0.01)
    np.testing.assert_allclose(found.size, [120 * 1.5 / 525, 100 * 1.5 / 525, 0.0], atol=0.02)


@pytest.mark.parametrize("encoding", ["16UC1", "32FC1"])
def test_holes_nans_and_out_of_range_readings_are_ignored(encoding):
    depth, masks = _scene()
    rng = np.random.default_rng(0)
    holes = rng.random(depth.shape) < 0.3
    far = rng.random(depth.shape) < 0.01
    if encoding == "16UC1":   # millimetres, 0 = no reading, 65535 = far beyond max_depth
        raw = np.round(depth * 1000).astype(np.uint16)
        raw[holes], raw[far] = 0, 65535
        depth_m = raw.astype(np.float32) * np.float32(0.001)
    else:                     # metres, NaN = no reading
        raw = depth.astype(np.float32)
        raw[holes], raw[far] = np.nan, 80.0
        depth_m = raw
    states = [_state(i, m) for i, m in masks.items()]
    found = estimate_objects(states, depth_m, CAMERA, DepthOptions())
    _check_box(found[0])
    _check_sphere(found[1])
    complete = estimate_objects(states, depth.astype(np.float32), CAMERA, DepthOptions())
    assert found[0].num_points < 0.75 * complete[0].num_points


def test_a_mask_spilling_onto_the_background_is_eroded_away():
    """A segmentation one pixel too wide all round takes in the wall 1 m behind: the erosion drops
    that border, so the extent stays the box's (without erosion the far wall stretches z)."""
    depth, masks = _scene()
    wide = erode(~masks[1], 1) ^ True   # dilation by one pixel
    state = _state(1, wide)
    _check_box(estimate_object(state, depth.astype(np.float32), CAMERA, DepthOptions()))
    sloppy = estimate_object(state, depth.astype(np.float32), CAMERA, DepthOptions(erode_px=0))
    assert sloppy.size[2] > 0.5


def test_too_few_points_invisible_and_empty_objects_have_no_position():
    depth = np.full((CAMERA.height, CAMERA.width), np.nan, np.float32)
    mask = np.zeros(depth.shape, bool)
    mask[10:30, 10:30] = True
    depth[15:17, 15:17] = 1.0   # 4 valid pixels < min_points
    found = estimate_object(_state(1, mask), depth, CAMERA, DepthOptions())
    assert not found.has_position and found.num_points == 4
    hidden = ObjectState(2, False, 0.1, 0.5, (0, 0, 0, 0), 0, np.zeros((0, 0), bool))
    assert not estimate_object(hidden, depth, CAMERA, DepthOptions()).has_position


def test_points_follow_the_stride_grid():
    depth = np.full((CAMERA.height, CAMERA.width), 1.0, np.float32)
    mask = np.zeros(depth.shape, bool)
    mask[100:140, 200:260] = True
    state = _state(1, mask)
    dense = estimate_object(state, depth, CAMERA, DepthOptions(erode_px=0), points_stride=1)
    sparse = estimate_object(state, depth, CAMERA, DepthOptions(erode_px=0), points_stride=4)
    assert dense.points.shape == (40 * 60, 3) and sparse.points.shape == (10 * 15, 3)
    assert estimate_object(state, depth, CAMERA, DepthOptions()).points is None
    # Pixel (200, 100) at 1 m.
    np.testing.assert_allclose(sparse.points[0], [(200 - 319.5) / 525, (100 - 239.5) / 525, 1.0], rtol=1e-6)


def test_erode_matches_a_direct_minimum_filter():
    rng = np.random.default_rng(3)
    mask = rng.random((30, 40)) < 0.8
    for radius in (1, 2, 3):
        padded = np.pad(mask, radius)
        expected = np.ones_like(mask)
        for dy in range(2 * radius + 1):
            for dx in range(2 * radius + 1):
                expected &= padded[dy:dy + 30, dx:dx + 40]
        np.testing.assert_array_equal(erode(mask, radius), expected)


def test_bad_depth_and_intrinsics_are_refused_with_the_reason():
    with pytest.raises(DepthError, match="does not match the colour image 640x480"):
        check_depth(np.zeros((240, 320), np.float32), CAMERA, (480, 640))
    with pytest.raises(DepthError, match="focal length fx = 0.0"):
        check_depth(np.zeros((480, 640), np.float32), PinholeIntrinsics(0.0, 525, 320, 240, 640, 480), (480, 640))
    with pytest.raises(DepthError, match="camera_info is for 320x240"):
        check_depth(np.zeros((480, 640), np.float32), PinholeIntrinsics(525, 525, 160, 120, 320, 240), (480, 640))
    assert DepthOptions(min_depth=2.0, max_depth=1.0).problems()
    assert not DepthOptions().problems()
