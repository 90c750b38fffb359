"""Where each tracked object is in 3D, from its mask and an aligned depth image; called by the ROS
node (``sam2_ros.depth_input``) and sam2-eval (``position_error``). numpy only: no ROS, no torch.

Inputs are what the tracker already gives the host per frame (``frame_state.ObjectState``: each
object's box and its mask cropped to the box) plus a depth image in metres aligned to the colour
image and the colour camera's pinhole intrinsics. Per object, only the depth inside its box is
touched:

1. the mask crop is eroded by ``erode_px`` (a square window): pixels on the mask's border often
   see the background behind the object (and depth cameras smear depth across edges), so they
   are left out;
2. valid depth: finite and within ``[min_depth, max_depth]`` metres (0 = "no reading" for
   RealSense/Kinect, NaN for float depth, both fall out here);
3. those pixels are back-projected with the pinhole model (camera optical frame: x right, y down,
   z forward, metres): ``X = (u - cx) Z / fx``, ``Y = (v - cy) Z / fy`` for pixel column u, row v;
4. ``position`` is the per-axis median of the points (robust to up to half of them being
   outliers); ``size`` is, per axis, the distance between the ``low_percentile`` and
   ``high_percentile`` of the points, with the erosion added back on x and y (``erode_px`` pixels
   each side, at the median depth) so that a face is measured to its edges. Both describe the
   *visible surface* (one view cannot see an object's back): for a box facing the camera, z of
   ``position`` is the face's depth and z of ``size`` is about 0; for a sphere of radius r,
   ``position`` lies about r / sqrt(2) in front of its centre along the line of sight, and z of
   ``size`` is below r (the eroded rim is left out). ``box_center`` (the middle of the
   percentile box) is where markers draw the box.
5. an object with fewer than ``min_points`` valid points has no 3D (``has_position`` false).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

import numpy as np

from .frame_state import ObjectState


class DepthError(ValueError):
    """Depth or intrinsics that cannot give 3D for this frame (wrong size, zero focal length...)."""


@dataclass(frozen=True)
class PinholeIntrinsics:
    """The colour camera's pinhole model (pixels): sensor_msgs/CameraInfo's K, and the image size."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    def problems(self) -> List[str]:
        found = []
        for name in ("fx", "fy"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                found.append(f"focal length {name} = {value} must be a positive number")
        for name in ("cx", "cy"):
            if not math.isfinite(getattr(self, name)):
                found.append(f"principal point {name} = {getattr(self, name)} is not finite")
        if self.width <= 0 or self.height <= 0:
            found.append(f"image size {self.width}x{self.height} must be positive")
        return found

    def check(self) -> "PinholeIntrinsics":
        problems = self.problems()
        if problems:
            raise DepthError("camera intrinsics unusable: " + "; ".join(problems))
        return self


@dataclass(frozen=True)
class DepthOptions:
    """How 3D is estimated from depth (the node's depth_* parameters are views of these)."""

    min_depth: float = 0.1        # metres; closer readings are ignored (RealSense D4xx: ~0.1-0.3 m minimum)
    max_depth: float = 10.0       # metres; farther readings are ignored (too noisy to trust)
    erode_px: int = 2             # mask border pixels left out on each side (background leaking in)
    # size: from the low to the high percentile of the points, per axis (outliers beyond are
    # ignored). Tighter bounds trim real edges: a sphere's x/y size reads ~10% small at 0.5/99.5.
    low_percentile: float = 0.5
    high_percentile: float = 99.5
    min_points: int = 20          # fewer valid points: no 3D for the object

    def problems(self) -> List[str]:
        found = []
        if not (0.0 <= self.min_depth < self.max_depth and math.isfinite(self.max_depth)):
            found.append(f"depth range min_depth {self.min_depth} .. max_depth {self.max_depth} must satisfy "
                         "0 <= min < max (metres)")
        if not 0 <= self.erode_px <= 50:
            found.append(f"erode_px {self.erode_px} must be in 0..50 pixels")
        if not 0.0 <= self.low_percentile < 50.0 < self.high_percentile <= 100.0:
            found.append(f"percentiles {self.low_percentile} / {self.high_percentile} must satisfy "
                         "0 <= low < 50 < high <= 100")
        if self.min_points < 1:
            found.append(f"min_points {self.min_points} must be at least 1")
        return found


@dataclass
class Object3D:
    """One object's 3D estimate on one frame, in the camera optical frame (metres)."""

    object_id: int
    has_position: bool
    position: np.ndarray = field(default_factory=lambda: np.zeros(3))    # per-axis median of the points
    size: np.ndarray = field(default_factory=lambda: np.zeros(3))        # percentile extent per axis
    box_center: np.ndarray = field(default_factory=lambda: np.zeros(3))  # middle of the percentile box
    num_points: int = 0                                                  # valid depth pixels used
    points: Optional[np.ndarray] = None  # N x 3 float32 (every ``stride``-th pixel); None when not asked for


def erode(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary erosion by a (2 radius + 1)^2 square; outside the array counts as background.
    Separable: a pixel stays when its whole column window, then its whole row window, is set
    (running sums, so the cost does not grow with the radius)."""
    mask = np.asarray(mask, bool)
    if radius <= 0 or mask.size == 0:
        return mask.copy()
    window = 2 * radius + 1
    height, width = mask.shape
    # Down the columns: sums over rows y - r .. y + r (zero rows padded above and below).
    sums = np.zeros((height + window, width), np.int32)
    np.cumsum(np.pad(mask, ((radius, radius), (0, 0))), axis=0, dtype=np.int32, out=sums[1:])
    out = (sums[window:] - sums[:height]) == window
    # Along the rows, on that.
    sums = np.zeros((height, width + window), np.int32)
    np.cumsum(np.pad(out, ((0, 0), (radius, radius))), axis=1, dtype=np.int32, out=sums[:, 1:])
    return (sums[:, window:] - sums[:, :width]) == window


def check_depth(depth_m: np.ndarray, intrinsics: PinholeIntrinsics, frame_hw: Tuple[int, int]) -> None:
    """Depth aligned to the colour image: its size must be the colour image's (and the intrinsics')."""
    height, width = (int(v) for v in frame_hw)
    if depth_m.ndim != 2 or depth_m.shape != (height, width):
        raise DepthError(f"depth image of shape {tuple(depth_m.shape)} does not match the colour image "
                         f"{width}x{height}: depth must be aligned to the colour image (RealSense: "
                         "align_depth.enable:=true, topic aligned_depth_to_color/image_raw)")
    intrinsics.check()
    if (intrinsics.width, intrinsics.height) != (width, height):
        raise DepthError(f"camera_info is for {intrinsics.width}x{intrinsics.height} images, the colour image is "
                         f"{width}x{height}: give the colour camera's camera_info")


def estimate_object(state: ObjectState, depth_m: np.ndarray, intrinsics: PinholeIntrinsics,
                    options: DepthOptions, points_stride: int = 0) -> Object3D:
    """One object's 3D from its mask crop and the frame's depth in metres (see the module doc).
    ``points_stride`` > 0 also returns its points, every ``points_stride``-th pixel per axis."""
    if not state.visible or state.area == 0 or state.mask is None or state.mask.size == 0:
        return Object3D(state.object_id, False)
    x0, y0, width, height = (int(v) for v in state.bbox)
    depth = depth_m[y0:y0 + height, x0:x0 + width]
    keep = erode(state.mask, options.erode_px)
    keep &= np.isfinite(depth) & (depth >= options.min_depth) & (depth <= options.max_depth)
    rows, cols = np.nonzero(keep)
    count = int(rows.size)
    if count < options.min_points:
        return Object3D(state.object_id, False, num_points=count)
    z = depth[rows, cols]
    # Per axis, not as an N x 3 array: the stack alone would cost as much as the percentiles.
    x = ((cols + x0).astype(np.float32) - np.float32(intrinsics.cx)) * z / np.float32(intrinsics.fx)
    y = ((rows + y0).astype(np.float32) - np.float32(intrinsics.cy)) * z / np.float32(intrinsics.fy)
    quantiles = [options.low_percentile, 50.0, options.high_percentile]
    low, median, high = np.array([np.percentile(axis, quantiles) for axis in (x, y, z)], np.float64).T
    size = high - low
    # The erosion took erode_px pixels off each side of the mask: give them back on x and y.
    size[0] += 2 * options.erode_px * median[2] / intrinsics.fx
    size[1] += 2 * options.erode_px * median[2] / intrinsics.fy
    sampled = None
    if points_stride > 0:
        on_grid = ((rows + y0) % points_stride == 0) & ((cols + x0) % points_stride == 0)
        sampled = np.stack([x[on_grid], y[on_grid], z[on_grid]], axis=1).astype(np.float32)
    return Object3D(state.object_id, True, median, size, (low + high) / 2, count, sampled)


def estimate_mask(object_id: int, mask: np.ndarray, depth_m: np.ndarray, intrinsics: PinholeIntrinsics,
                  options: DepthOptions, points_stride: int = 0) -> Object3D:
    """``estimate_object`` for a full-frame ``H x W`` bool mask (cropped to its box here)."""
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        return Object3D(int(object_id), False)
    y0, y1, x0, x1 = int(rows.min()), int(rows.max()) + 1, int(cols.min()), int(cols.max()) + 1
    state = ObjectState(int(object_id), True, 1.0, 1.0, (x0, y0, x1 - x0, y1 - y0), int(rows.size),
                        np.asarray(mask[y0:y1, x0:x1], bool))
    return estimate_object(state, depth_m, intrinsics, options, points_stride)


def estimate_objects(objects: Sequence[ObjectState], depth_m: np.ndarray, intrinsics: PinholeIntrinsics,
                     options: DepthOptions, points_stride: int = 0) -> List[Object3D]:
    """Every object's 3D on one frame (``depth_m``: H x W metres, aligned to the colour image)."""
    return [estimate_object(o, depth_m, intrinsics, options, points_stride) for o in objects]


# ---------------------------------------------------------------------------------- rendering
# The inverse direction, for the benchmark (``sam2_ros.depth_benchmark``): the depth image of
# simple shapes seen by a pinhole camera (ray casting, nearest hit). The tests ray cast their own.


def pixel_rays(intrinsics: PinholeIntrinsics) -> np.ndarray:
    """H x W x 3 ray directions with z = 1 through each pixel (column u, row v)."""
    v, u = np.mgrid[0:intrinsics.height, 0:intrinsics.width].astype(np.float64)
    return np.stack([(u - intrinsics.cx) / intrinsics.fx, (v - intrinsics.cy) / intrinsics.fy,
                     np.ones_like(u)], axis=-1)


def render_box(intrinsics: PinholeIntrinsics, center, size) -> np.ndarray:
    """Depth (metres, inf where missed) of an axis-aligned box: ray/slab intersection, nearest hit."""
    rays = pixel_rays(intrinsics)
    center, half = np.asarray(center, float), np.asarray(size, float) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        t0 = (center - half) / rays   # z = t along each ray (ray z is 1)
        t1 = (center + half) / rays
    near = np.nanmax(np.minimum(t0, t1), axis=-1)
    far = np.nanmin(np.maximum(t0, t1), axis=-1)
    hit = (near <= far) & (near > 0)
    return np.where(hit, near, np.inf)


def render_sphere(intrinsics: PinholeIntrinsics, center, radius: float) -> np.ndarray:
    """Depth (metres, inf where missed) of a sphere: the nearer root of |t d - c|^2 = r^2."""
    rays = pixel_rays(intrinsics)
    center = np.asarray(center, float)
    a = np.sum(rays * rays, axis=-1)
    b = -2.0 * rays @ center
    c = float(center @ center) - radius * radius
    disc = b * b - 4 * a * c
    with np.errstate(invalid="ignore"):
        t = (-b - np.sqrt(disc)) / (2 * a)
    return np.where((disc >= 0) & (t > 0), t, np.inf)

