"""Procedural training videos with exact ground truth (numpy only).

Each video is a textured, slowly panning background with a few moving, rotating and deforming
shapes drawn in a random depth order. Targets (ids 1..N) are labelled; distractors (some with a
colour close to a target's) are not. Opaque bars drawn over everything are placed across a
target's precomputed path so that it disappears for a few frames and comes back, and some
targets bounce off a box larger than the frame, so they leave the picture and re-enter. Those
are exactly the events a video tracker's memory has to survive, with pixel-exact labels.

Generation is a two-step affair: ``_sample_scene`` draws every random choice (trajectories
first, so that occluders can be placed on them), then ``_render`` paints frame by frame with the
painter's algorithm, writing the label map in the same pass so pixels and labels agree.
"""

from __future__ import annotations

import argparse
import colorsys
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from sam2_model.davis_format import write_davis_sequence
from sam2_model.depth_format import procedural_intrinsics, write_depth_sequence

# A target counts as "visible" on a prompt or re-appearance frame with at least this many pixels:
# fewer gives a useless prompt and an almost unmeasurable re-detection.
MIN_VISIBLE_PIXELS = 30
# On the prompt frame a target must also show this fraction of its largest area in the video.
MIN_PROMPT_FRACTION = 0.3
# Largest relative x/y scale oscillation of a shape (the brief's "up to ~20%").
MAX_DEFORM = 0.2
SHAPE_KINDS = ("ellipse", "rectangle", "polygon", "star")
# Layered depth (``generate_video(..., depth=True)``): every layer is a flat cut-out facing the
# camera at its own distance. The background is farthest, shapes spread evenly from FAR to NEAR in
# their drawing order (back to front), bars nearest of all: so the depth order is the painting order.
BACKGROUND_DEPTH_M = 4.0
FAR_SHAPE_DEPTH_M = 3.0
NEAR_SHAPE_DEPTH_M = 1.0
OCCLUDER_DEPTH_M = 0.8


@dataclass
class ProceduralConfig:
    height: int = 128
    width: int = 128
    num_frames: int = 24
    min_targets: int = 1  # labelled objects (ids 1..N)
    max_targets: int = 3
    max_distractors: int = 2  # unlabelled shapes, some with a colour close to a target's
    occluder_probability: float = 0.6  # chance of an occluding bar that hides objects passing behind it
    exit_probability: float = 0.4  # per target: chance its path leaves the frame and comes back
    min_size: float = 0.10  # object radius range as a fraction of min(height, width)
    max_size: float = 0.22
    max_speed: float = 0.05  # fraction of min(height, width) per frame
    # A camera's exposure change (auto-exposure, a robot driving into shade): above 1, each video's
    # brightness ramps over EXPOSURE_RAMP_FRAMES frames, from a frame in its second quarter (after
    # the prompt frame), to this factor or its inverse (brighter or darker at random). 1: none, only
    # the slow drift of at most +-8 % that every video has.
    exposure_step: float = 1.0
    # A robot turning its camera: above 0, from a frame in each video's second quarter the view
    # shifts over CAMERA_TURN_FRAMES frames by this fraction of min(height, width), in a random
    # direction, and stays there; everything in the world (objects, bars, background) moves with it.
    camera_turn: float = 0.0

    def check(self) -> None:
        """Raise ValueError naming the first setting no video can be generated from."""
        if self.min_targets < 0 or self.max_targets < self.min_targets or self.max_targets > 254:
            raise ValueError(f"need 0 <= min_targets <= max_targets <= 254, got {self.min_targets}..{self.max_targets}")
        if self.max_distractors < 0:
            raise ValueError(f"max_distractors must be >= 0, got {self.max_distractors}")
        if not self.max_speed > 0.0:
            raise ValueError(f"max_speed must be > 0 (a fraction of the frame's side per frame), got {self.max_speed}")
        if self.height < 8 or self.width < 8 or self.num_frames < 1:
            raise ValueError("frames must be at least 8x8 pixels and a video at least one frame long")
        if not 0.0 <= self.camera_turn <= 1.0:
            raise ValueError(f"camera_turn must be within 0..1 (a fraction of the frame's side), got {self.camera_turn}")
        if not self.exposure_step >= 1.0:
            raise ValueError(f"exposure_step must be >= 1 (a factor; 1: no change), got {self.exposure_step}")


@dataclass
class ProceduralVideo:
    frames: np.ndarray  # uint8 [T, H, W, 3] RGB
    labels: np.ndarray  # uint8 [T, H, W]: 0 background, 1..N target ids (occluded pixels are 0)
    num_targets: int
    seed: int | None = None  # the seed generate_video was given (generate_with_events: the accepted one)
    depth: np.ndarray | None = None  # float32 [T, H, W] metres, layered (generate_video(depth=True)); else None

    def pixel_counts(self, obj_id: int) -> np.ndarray:
        """Number of labelled pixels of ``obj_id`` per frame, int [T]."""
        return (self.labels == obj_id).sum(axis=(1, 2))

    def visible(self, obj_id: int, min_pixels: int = 1) -> np.ndarray:
        """Per frame, whether ``obj_id`` has at least ``min_pixels`` labelled pixels: bool [T]."""
        return self.pixel_counts(obj_id) >= min_pixels

    def hidden_spans(self, obj_id: int) -> list[tuple[int, int]]:
        """(first, last) frame of every run of frames where ``obj_id`` has no pixel, after it was
        first seen (inclusive; the last run may reach the end of the video)."""
        return _zero_runs(self.pixel_counts(obj_id))


# ----------------------------------------------------------------------------- scene state


@dataclass
class _Shape:
    kind: str  # one of SHAPE_KINDS
    aspect: float  # ellipse minor/major axis, rectangle short/long side
    points: int  # polygon sides, star points
    inner: float  # polygon/star: distance of the point between two corners (the corner is at 1)


@dataclass
class _Texture:
    colour: np.ndarray  # float [3], 0..255
    stripe_amplitude: float
    stripe_frequency: float  # cycles per unit of local coordinate
    stripe_angle: float
    stripe_phase: float
    noise: np.ndarray  # float [n, n], patchy brightness variation in local coordinates
    noise_amplitude: float
    light: np.ndarray  # float [2], a linear shading gradient over the shape


@dataclass
class _Track:
    cx: np.ndarray  # float [T], pixel columns
    cy: np.ndarray  # float [T], pixel rows
    angle: np.ndarray  # float [T], radians
    sx: np.ndarray  # float [T], deformation scale along the shape's own x axis
    sy: np.ndarray  # float [T]


@dataclass
class _Object:
    obj_id: int  # 0 for distractors
    shape: _Shape
    radius: float  # circumradius in pixels before deformation
    deform: float  # amplitude of the scale oscillation, so extent = radius * (1 + deform)
    texture: _Texture
    track: _Track

    @property
    def extent(self) -> float:
        """Radius of a circle that contains the shape on every frame."""
        return self.radius * (1.0 + self.deform)


@dataclass
class _Occluder:
    cx: float
    cy: float
    angle: float  # direction of the bar's width axis (the direction the hidden target moves in)
    half_width: float
    half_length: float
    texture: _Texture


@dataclass
class _Scene:
    height: int
    width: int
    num_frames: int
    num_targets: int
    background: np.ndarray  # float32 [H + 2m, W + 2m, 3], larger than the frame so it can pan
    pan: np.ndarray  # int [T, 2], (row, column) offset of the frame in the background
    gain: np.ndarray  # float [T], global brightness per frame
    noise_sigma: float  # sensor noise added to every frame
    noise_seed: int
    objects: list[_Object] = field(default_factory=list)  # back to front
    occluders: list[_Occluder] = field(default_factory=list)
    # int [T, 2], (row, column) of the view in the world per frame (ProceduralConfig.camera_turn);
    # None: the view never moves. Objects' tracks and the pan already include it; bars are placed in
    # the world and shifted by it when painted.
    camera: np.ndarray | None = None


@dataclass
class _Rendering:
    frames: np.ndarray  # uint8 [T, H, W, 3]
    labels: np.ndarray  # uint8 [T, H, W]
    background: np.ndarray | None  # float32 [T, H, W, 3], the frames without shapes, bars and noise
    occluded: np.ndarray | None  # bool [T, H, W], pixels covered by an occluding bar
    depth: np.ndarray | None = None  # float32 [T, H, W] metres (layered), when asked for


# ----------------------------------------------------------------------------- sampling


def _hsv_colour(hue: float, saturation: float, value: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(hue % 1.0, saturation, value), dtype=np.float64) * 255.0


def _random_colour(rng: np.random.Generator, saturation: tuple[float, float], value: tuple[float, float]) -> np.ndarray:
    return _hsv_colour(rng.uniform(), rng.uniform(*saturation), rng.uniform(*value))


def _similar_colour(rng: np.random.Generator, colour: np.ndarray) -> np.ndarray:
    """A colour of the same hue family, close enough to confuse an appearance-only tracker."""
    hue, saturation, value = colorsys.rgb_to_hsv(*(colour / 255.0))
    return _hsv_colour(
        hue + rng.uniform(-0.03, 0.03),
        float(np.clip(saturation * rng.uniform(0.85, 1.15), 0.0, 1.0)),
        float(np.clip(value * rng.uniform(0.85, 1.15), 0.0, 1.0)),
    )


def _sample_shape(rng: np.random.Generator) -> _Shape:
    kind = SHAPE_KINDS[rng.integers(len(SHAPE_KINDS))]
    aspect = rng.uniform(0.45, 1.0)
    if kind == "star":
        points = int(rng.integers(4, 7))
        inner = rng.uniform(0.4, 0.6)
    else:
        points = int(rng.integers(3, 7))
        # A regular polygon is a "star" whose in-between point is the middle of an edge.
        inner = math.cos(math.pi / points)
    return _Shape(kind=kind, aspect=aspect, points=points, inner=inner)


def _sample_texture(rng: np.random.Generator, colour: np.ndarray) -> _Texture:
    grid = int(rng.integers(3, 7))
    return _Texture(
        colour=colour,
        stripe_amplitude=rng.uniform(0.08, 0.25) if rng.uniform() < 0.6 else 0.0,
        stripe_frequency=rng.uniform(0.8, 2.5),
        stripe_angle=rng.uniform(0.0, math.pi),
        stripe_phase=rng.uniform(0.0, 2.0 * math.pi),
        noise=rng.uniform(-1.0, 1.0, size=(grid, grid)),
        noise_amplitude=rng.uniform(0.04, 0.15),
        light=rng.uniform(-0.15, 0.15, size=2),
    )


def _bounce(position: float, velocity: float, low: float, high: float) -> tuple[float, float]:
    """Reflect a coordinate that crossed the box [low, high] back inside."""
    if position < low:
        return min(2.0 * low - position, high), abs(velocity)
    if position > high:
        return max(2.0 * high - position, low), -abs(velocity)
    return position, velocity


def _simulate_track(
    rng: np.random.Generator, config: ProceduralConfig, radius: float, deform: float, exits: bool
) -> _Track:
    """Position, rotation and deformation of one shape over the whole video."""
    frames, height, width = config.num_frames, config.height, config.width
    v_max = config.max_speed * min(height, width)
    extent = radius * (1.0 + deform)
    # Start with the centre inside the picture so that every shape can be seen on frame 0.
    x = rng.uniform(min(radius, width / 2), max(width - radius, width / 2))
    y = rng.uniform(min(radius, height / 2), max(height - radius, height / 2))
    if exits:
        # Head roughly for the nearest edge, fast, so the exit happens early enough to come back.
        distances = (x, width - x, y, height - y)
        heading = (math.pi, 0.0, -math.pi / 2, math.pi / 2)[int(np.argmin(distances))]
        direction = heading + rng.uniform(-0.6, 0.6)
        speed = rng.uniform(0.7, 1.0) * v_max
        # The bounce box reaches past the frame by the shape's extent (fully outside) plus a
        # few frames' travel, which is how long it stays out before bouncing back.
        margin = extent + v_max * rng.uniform(1.0, 2.5)
        low_x, high_x, low_y, high_y = -margin, width + margin, -margin, height + margin
    else:
        direction = rng.uniform(0.0, 2.0 * math.pi)
        speed = rng.uniform(0.3, 1.0) * v_max
        low_x, high_x = min(radius, width / 2), max(width - radius, width / 2)
        low_y, high_y = min(radius, height / 2), max(height - radius, height / 2)
    vx, vy = speed * math.cos(direction), speed * math.sin(direction)
    cx, cy = np.empty(frames), np.empty(frames)
    for t in range(frames):
        cx[t], cy[t] = x, y
        # Small random acceleration, speed kept in a band so shapes neither stall nor jump.
        vx, vy = vx + rng.normal(0.0, 0.1 * v_max), vy + rng.normal(0.0, 0.1 * v_max)
        norm = math.hypot(vx, vy)
        if norm > 0.0:
            clamped = min(max(norm, 0.25 * v_max), v_max)
            vx, vy = vx * clamped / norm, vy * clamped / norm
        x, vx = _bounce(x + vx, vx, low_x, high_x)
        y, vy = _bounce(y + vy, vy, low_y, high_y)
    time = np.arange(frames, dtype=np.float64)
    angle = rng.uniform(0.0, 2.0 * math.pi) + rng.uniform(-0.12, 0.12) * time
    omega = rng.uniform(0.15, 0.6)
    sx = 1.0 + deform * np.sin(omega * time + rng.uniform(0.0, 2.0 * math.pi))
    sy = 1.0 + deform * np.sin(omega * time + rng.uniform(0.0, 2.0 * math.pi))
    return _Track(cx=cx, cy=cy, angle=angle, sx=sx, sy=sy)


def _sample_object(
    rng: np.random.Generator, config: ProceduralConfig, obj_id: int, colour: np.ndarray, exits: bool
) -> _Object:
    side = min(config.height, config.width)
    radius = rng.uniform(config.min_size, config.max_size) * side
    deform = rng.uniform(0.0, MAX_DEFORM)
    return _Object(
        obj_id=obj_id,
        shape=_sample_shape(rng),
        radius=radius,
        deform=deform,
        texture=_sample_texture(rng, colour),
        track=_simulate_track(rng, config, radius, deform, exits),
    )


def _upsample(grid: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear upsampling of a coarse [h, w, C] grid (h, w >= 2) to [height, width, C]."""
    rows, cols = grid.shape[:2]
    ys, xs = np.linspace(0.0, rows - 1, height), np.linspace(0.0, cols - 1, width)
    y0 = np.minimum(ys.astype(int), rows - 2)
    x0 = np.minimum(xs.astype(int), cols - 2)
    fy, fx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
    top = grid[y0][:, x0] * (1.0 - fx) + grid[y0][:, x0 + 1] * fx
    bottom = grid[y0 + 1][:, x0] * (1.0 - fx) + grid[y0 + 1][:, x0 + 1] * fx
    return top * (1.0 - fy) + bottom * fy


def _sample_background(rng: np.random.Generator, config: ProceduralConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A textured background larger than the frame, its pan offsets and the brightness drift."""
    height, width, frames = config.height, config.width, config.num_frames
    side = min(height, width)
    margin = max(1, int(math.ceil(0.04 * side)))
    big_h, big_w = height + 2 * margin, width + 2 * margin
    ys, xs = np.mgrid[0:big_h, 0:big_w] / side
    image = np.broadcast_to(_random_colour(rng, (0.05, 0.45), (0.3, 0.8)), (big_h, big_w, 3)).copy()
    # Low-frequency colour waves: large smooth structures such as walls, floor and shadows.
    for _ in range(int(rng.integers(2, 5))):
        theta = rng.uniform(0.0, 2.0 * math.pi)
        wave = np.sin(
            2.0 * math.pi * rng.uniform(0.5, 3.0) * (xs * math.cos(theta) + ys * math.sin(theta))
            + rng.uniform(0.0, 2.0 * math.pi)
        )
        image += wave[..., None] * rng.uniform(-35.0, 35.0, size=3)
    # Blobs at two scales and a little static grain, so no region is flat.
    coarse = int(rng.integers(3, 7))
    image += _upsample(rng.normal(0.0, 22.0, size=(coarse, coarse, 3)), big_h, big_w)
    fine = max(2, side // 6)
    image += _upsample(rng.normal(0.0, 9.0, size=(fine, fine, 3)), big_h, big_w)
    image += rng.normal(0.0, 3.0, size=image.shape)

    time = np.arange(frames, dtype=np.float64)
    pan_amount = rng.uniform(0.0, 1.0, size=2) * margin
    pan_omega = rng.uniform(0.05, 0.25, size=2)
    pan_phase = rng.uniform(0.0, 2.0 * math.pi, size=2)
    pan = np.rint(margin + pan_amount * np.sin(pan_omega * time[:, None] + pan_phase)).astype(int)
    pan = np.clip(pan, 0, 2 * margin)
    # Slow lighting drift: at most +-8 %, under one cycle per video.
    drift, cycles, phase = rng.uniform(0.0, 0.08), rng.uniform(0.2, 1.0), rng.uniform(0.0, 2.0 * math.pi)
    gain = 1.0 + drift * np.sin(2.0 * math.pi * cycles * time / frames + phase)
    return image.astype(np.float32), pan, gain


EXPOSURE_RAMP_FRAMES = 4  # an auto-exposure settles within a few frames
CAMERA_TURN_FRAMES = 6  # a robot's turn of its head or base takes a fraction of a second


def _exposure_change(rng: np.random.Generator, frames: int, step: float) -> np.ndarray:
    """Per frame, the gain of one exposure change (ProceduralConfig.exposure_step): 1 until a frame
    in the video's second quarter, then a linear ramp over EXPOSURE_RAMP_FRAMES frames to ``step``
    or ``1 / step``."""
    start = int(rng.integers(frames // 4, max(frames // 2, frames // 4 + 1)))
    factor = step if rng.uniform() < 0.5 else 1.0 / step
    progress = np.clip((np.arange(frames) - start) / EXPOSURE_RAMP_FRAMES, 0.0, 1.0)
    return 1.0 + (factor - 1.0) * progress


def _bar_across(track: _Track, t: int, extent: float, hide: float, half_length: float, shift: float,
                texture: _Texture) -> _Occluder:
    """A bar centred on the target's position at frame ``t``, its width axis along the target's
    velocity there, as wide as the target's diameter plus ``hide`` frames of travel: the target
    is then fully behind it for about ``hide`` frames around ``t``."""
    last = len(track.cx) - 1
    before, after = max(0, t - 1), min(last, t + 1)
    vx = (track.cx[after] - track.cx[before]) / max(1, after - before)
    vy = (track.cy[after] - track.cy[before]) / max(1, after - before)
    speed = math.hypot(vx, vy)
    angle = math.atan2(vy, vx) if speed > 1e-6 else 0.0
    # Slide the bar along its length, keeping the target's whole extent covered.
    shift *= max(0.0, min(half_length - extent, extent))
    return _Occluder(
        cx=track.cx[t] - shift * math.sin(angle),
        cy=track.cy[t] + shift * math.cos(angle),
        angle=angle,
        half_width=extent + speed * hide / 2.0,
        half_length=half_length,
        texture=texture,
    )


def _clear_at_start(bar: _Occluder, obj: _Object) -> bool:
    """Whether ``obj`` is (almost) clear of ``bar`` on frame 0: its centre lies outside the bar by
    a fifth of its extent, so most of it shows on the prompt frame."""
    dx, dy = obj.track.cx[0] - bar.cx, obj.track.cy[0] - bar.cy
    cos, sin = math.cos(bar.angle), math.sin(bar.angle)
    u, v = dx * cos + dy * sin, dy * cos - dx * sin
    margin = 0.2 * obj.extent
    return abs(u) >= bar.half_width + margin or abs(v) >= bar.half_length + margin


def _coverage(bar: _Occluder, height: int, width: int) -> float:
    pixels = _rasterise_occluder(bar, height, width)
    return 0.0 if pixels is None else float(pixels.mask.sum()) / (height * width)


def _place_occluder(
    rng: np.random.Generator,
    config: ProceduralConfig,
    target: _Object,
    targets: list[_Object],
    max_coverage: float,
) -> _Occluder | None:
    """An opaque bar across ``target``'s path that hides it completely for a few frames.

    The hiding frame is chosen so that, where possible, every target is clear of the bar on frame
    0 (a usable prompt) and the target has time to come out again before the end. Bars covering
    more than ``max_coverage`` of the picture are shortened or refused: a picture that is mostly
    bar teaches nothing. None when no frame works.
    """
    frames, height, width = config.num_frames, config.height, config.width
    track, extent = target.track, target.extent
    # Every random choice is drawn up front, so the result does not depend on how many
    # candidate frames get tried.
    hide = rng.uniform(3.0, 6.0)
    spans_picture = rng.uniform() < 0.5
    short_length = extent * rng.uniform(1.3, 2.5)
    shift = rng.uniform(-1.0, 1.0)
    if rng.uniform() < 0.5:
        colour = np.full(3, rng.uniform(50.0, 210.0))
    else:
        colour = _random_colour(rng, (0.2, 0.9), (0.3, 0.9))
    texture = _sample_texture(rng, colour)
    half_hide = int(math.ceil(hide / 2.0))
    candidates = [
        t for t in range(half_hide + 1, frames - half_hide - 2)
        if 0.0 <= track.cx[t] < width and 0.0 <= track.cy[t] < height
    ]
    fallback = None
    for t in rng.permutation(candidates) if candidates else []:
        bar = None
        for half_length in ((float(height + width), short_length) if spans_picture else (short_length,)):
            bar = _bar_across(track, int(t), extent, hide, half_length, shift, texture)
            if _coverage(bar, height, width) <= max_coverage:
                break
            bar = None
        if bar is None:
            continue
        if all(_clear_at_start(bar, obj) for obj in targets):
            return bar
        if fallback is None:
            fallback = bar
    return fallback


def _sample_scene(rng: np.random.Generator, config: ProceduralConfig) -> _Scene:
    config.check()
    background, pan, gain = _sample_background(rng, config)
    num_targets = int(rng.integers(config.min_targets, config.max_targets + 1))
    targets = []
    for obj_id in range(1, num_targets + 1):
        colour = _random_colour(rng, (0.5, 1.0), (0.45, 1.0))  # saturated: stands out from the background
        exits = rng.uniform() < config.exit_probability
        targets.append(_sample_object(rng, config, obj_id, colour, exits))
    distractors = []
    for index in range(int(rng.integers(0, config.max_distractors + 1))):
        # The first distractor usually, later ones sometimes, copy a target's hue family.
        if targets and rng.uniform() < (0.75 if index == 0 else 0.4):
            colour = _similar_colour(rng, targets[int(rng.integers(len(targets)))].texture.colour)
        else:
            colour = _random_colour(rng, (0.3, 1.0), (0.3, 1.0))
        distractors.append(_sample_object(rng, config, 0, colour, exits=rng.uniform() < 0.3))
    objects = targets + distractors
    objects = [objects[i] for i in rng.permutation(len(objects))]  # random depth order

    occluders = []
    if targets and rng.uniform() < config.occluder_probability:
        # Sometimes a second, smaller bar (the picture should stay mostly visible).
        for max_coverage in (0.4,) if rng.uniform() < 0.7 else (0.4, 0.2):
            target = targets[int(rng.integers(len(targets)))]
            occluder = _place_occluder(rng, config, target, targets, max_coverage)
            if occluder is not None:
                occluders.append(occluder)
    scene = _Scene(
        height=config.height,
        width=config.width,
        num_frames=config.num_frames,
        num_targets=num_targets,
        background=background,
        pan=pan,
        gain=gain,
        noise_sigma=rng.uniform(1.0, 4.0),
        noise_seed=int(rng.integers(2**63)),
        objects=objects,
        occluders=occluders,
    )
    if config.exposure_step > 1.0:  # drawn last, so that every other draw is that of a video without it
        scene.gain = scene.gain * _exposure_change(rng, config.num_frames, config.exposure_step)
    if config.camera_turn > 0.0:  # drawn after the exposure, for the same reason
        _turn_camera(scene, _camera_turn(rng, config.num_frames, config.camera_turn * min(config.height, config.width)))
    return scene


# ----------------------------------------------------------------------------- rendering


def _window(cx: float, cy: float, reach: float, height: int, width: int) -> tuple[slice, slice] | None:
    """The frame rows/columns within ``reach`` of a point, or None when that box is off-frame."""
    y0, y1 = max(0, int(math.floor(cy - reach))), min(height, int(math.ceil(cy + reach)) + 1)
    x0, x1 = max(0, int(math.floor(cx - reach))), min(width, int(math.ceil(cx + reach)) + 1)
    if y0 >= y1 or x0 >= x1:
        return None
    return slice(y0, y1), slice(x0, x1)


def _local_coords(window: tuple[slice, slice], cx: float, cy: float, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """Pixel offsets from (cx, cy) in a frame rotated by ``angle``, for the pixels of ``window``."""
    rows, cols = window
    dy = np.arange(rows.start, rows.stop, dtype=np.float32)[:, None] - np.float32(cy)
    dx = np.arange(cols.start, cols.stop, dtype=np.float32)[None, :] - np.float32(cx)
    cos, sin = np.float32(math.cos(angle)), np.float32(math.sin(angle))
    return dx * cos + dy * sin, dy * cos - dx * sin


def _shape_mask(shape: _Shape, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Inside test in the shape's unit frame (circumradius 1)."""
    if shape.kind == "ellipse":
        return u * u + (v / shape.aspect) ** 2 <= 1.0
    if shape.kind == "rectangle":
        # Half sides scaled so that the corners lie on the unit circle.
        norm = math.hypot(1.0, shape.aspect)
        return (np.abs(u) <= 1.0 / norm) & (np.abs(v) <= shape.aspect / norm)
    # Polygon or star: between a corner (radius 1, angle 0) and the next in-between point
    # (radius ``inner``, angle pi/n) the outline is a straight line; fold every direction onto
    # that segment and compare with the polar equation of the line.
    half = math.pi / shape.points
    phi = np.mod(np.arctan2(v, u), 2.0 * half)
    phi = np.minimum(phi, 2.0 * half - phi)
    boundary = shape.inner * math.sin(half) / (np.sin(phi) + shape.inner * np.sin(half - phi))
    return u * u + v * v <= boundary * boundary


def _shade(texture: _Texture, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Colours [..., 3] of a textured surface at local coordinates (u, v), which move with it so
    the texture is glued to the surface."""
    along = u * math.cos(texture.stripe_angle) + v * math.sin(texture.stripe_angle)
    shade = 1.0 + texture.stripe_amplitude * np.sin(
        (2.0 * math.pi * texture.stripe_frequency) * along + texture.stripe_phase
    )
    shade += texture.light[0] * np.clip(u, -1.5, 1.5) + texture.light[1] * np.clip(v, -1.5, 1.5)
    grid = texture.noise.shape[0]
    iu = np.floor((u + 1.0) * (grid / 2.0)).astype(np.int64) % grid
    iv = np.floor((v + 1.0) * (grid / 2.0)).astype(np.int64) % grid
    shade += texture.noise_amplitude * texture.noise[iv, iu]
    return shade[..., None] * texture.colour.astype(np.float32)


def shape_layer_depth(layer: int, layers: int) -> float:
    """Distance of the ``layer``-th shape drawn (0 = backmost) of ``layers``."""
    step = (FAR_SHAPE_DEPTH_M - NEAR_SHAPE_DEPTH_M) / max(layers - 1, 1)
    return FAR_SHAPE_DEPTH_M - layer * step


def _draw_object(obj: _Object, t: int, canvas: np.ndarray, labels: np.ndarray,
                 depth: np.ndarray | None = None, layer_depth: float = 0.0) -> None:
    track = obj.track
    window = _window(track.cx[t], track.cy[t], obj.extent + 1.0, *labels.shape)
    if window is None:
        return
    u, v = _local_coords(window, track.cx[t], track.cy[t], track.angle[t])
    u /= np.float32(obj.radius * track.sx[t])
    v /= np.float32(obj.radius * track.sy[t])
    mask = _shape_mask(obj.shape, u, v)
    if not mask.any():
        return
    # Texture only the covered pixels: about half of the window, and the costliest step.
    canvas[window][mask] = _shade(obj.texture, u[mask], v[mask])
    labels[window][mask] = obj.obj_id  # 0 for a distractor: it hides what is behind it
    if depth is not None:
        depth[window][mask] = layer_depth


@dataclass
class _BarPixels:
    """An occluder rasterised once per view: bars do not move in the world, so every frame seen from
    the same place reuses these."""

    window: tuple[slice, slice]
    mask: np.ndarray  # bool, window-sized
    colours: np.ndarray  # float32 [mask.sum(), 3]


def _rasterise_occluder(bar: _Occluder, height: int, width: int) -> _BarPixels | None:
    window = _window(bar.cx, bar.cy, math.hypot(bar.half_width, bar.half_length) + 1.0, height, width)
    if window is None:
        return None
    u, v = _local_coords(window, bar.cx, bar.cy, bar.angle)
    mask = (np.abs(u) <= bar.half_width) & (np.abs(v) <= bar.half_length)
    # Texture coordinates in units of 12 px so that a long bar is not one stretched stripe.
    colours = _shade(bar.texture, u[mask] / 12.0, v[mask] / 12.0).astype(np.float32)
    return _BarPixels(window=window, mask=mask, colours=colours)


def _camera_turn(rng: np.random.Generator, frames: int, shift: float) -> np.ndarray:
    """Per frame, the (row, column) of the view in the world for one camera turn
    (ProceduralConfig.camera_turn): 0 until a frame in the video's second quarter, then an eased
    move over CAMERA_TURN_FRAMES frames by ``shift`` pixels in a random direction; int [T, 2]."""
    start = int(rng.integers(frames // 4, max(frames // 2, frames // 4 + 1)))
    direction = rng.uniform(0.0, 2.0 * math.pi)
    progress = np.clip((np.arange(frames) - start) / CAMERA_TURN_FRAMES, 0.0, 1.0)
    eased = 0.5 - 0.5 * np.cos(math.pi * progress)  # starts and stops smoothly, as a motor does
    return np.rint(np.stack([shift * math.sin(direction) * eased, shift * math.cos(direction) * eased], axis=1)).astype(int)


def _turn_camera(scene: _Scene, camera: np.ndarray) -> None:
    """Move the view through the world by ``camera`` (int [T, 2], rows and columns): the objects'
    tracks become view coordinates, the background is extended by a mirrored border (no random
    draw, so every other draw stays that of the video without the turn) and the pan follows."""
    reach = int(np.abs(camera).max())
    for obj in scene.objects:
        obj.track.cy = obj.track.cy - camera[:, 0]
        obj.track.cx = obj.track.cx - camera[:, 1]
    if reach:
        scene.background = np.pad(scene.background, ((reach, reach), (reach, reach), (0, 0)), mode="reflect")
        scene.pan = scene.pan + reach + camera
    scene.camera = camera


def _bars_in_view(scene: _Scene, t: int, cache: dict) -> list[_BarPixels]:
    """The bars as painted on frame ``t``: placed in the world, so shifted by the camera's move;
    rasterised once per distinct view."""
    view = (0, 0) if scene.camera is None else tuple(int(v) for v in scene.camera[t])
    if view not in cache:
        shifted = (replace(bar, cy=bar.cy - view[0], cx=bar.cx - view[1]) for bar in scene.occluders)
        cache[view] = [b for b in (_rasterise_occluder(bar, scene.height, scene.width) for bar in shifted) if b is not None]
    return cache[view]


def _render(scene: _Scene, keep_layers: bool = False, depth: bool = False) -> _Rendering:
    """Paint the scene. ``keep_layers`` also returns the background and the occluder coverage
    (for checks; they cost time); ``depth`` the layered depth."""
    frames_n, height, width = scene.num_frames, scene.height, scene.width
    canvas = np.empty((frames_n, height, width, 3), dtype=np.float32)
    labels = np.zeros((frames_n, height, width), dtype=np.uint8)
    depths = np.full((frames_n, height, width), BACKGROUND_DEPTH_M, np.float32) if depth else None
    bars_by_view: dict = {}
    layers = len(scene.objects)
    for t in range(frames_n):
        bars = _bars_in_view(scene, t, bars_by_view)
        row, col = scene.pan[t]
        canvas[t] = scene.background[row:row + height, col:col + width]
        frame_depth = depths[t] if depths is not None else None
        for layer, obj in enumerate(scene.objects):  # back to front: the painter's algorithm, on labels too
            _draw_object(obj, t, canvas[t], labels[t], frame_depth, shape_layer_depth(layer, layers))
        for bar in bars:
            canvas[t][bar.window][bar.mask] = bar.colours
            labels[t][bar.window][bar.mask] = 0
            if frame_depth is not None:
                frame_depth[bar.window][bar.mask] = OCCLUDER_DEPTH_M
    background = occluded = None
    if keep_layers:
        background = np.stack(
            [scene.background[r:r + height, c:c + width] for r, c in scene.pan]
        ) * scene.gain.astype(np.float32)[:, None, None, None]
        occluded = np.zeros((frames_n, height, width), dtype=bool)
        for t in range(frames_n):
            for bar in _bars_in_view(scene, t, bars_by_view):
                occluded[t][bar.window] |= bar.mask
    # Lighting drift and sensor noise apply to the whole picture, as a camera would see them.
    canvas *= scene.gain.astype(np.float32)[:, None, None, None]
    # Uniform noise from random bytes, scaled to std noise_sigma: a fifth of the cost of normal
    # noise, and a network cannot tell the two apart at this amplitude.
    noise = np.frombuffer(np.random.default_rng(scene.noise_seed).bytes(canvas.size), dtype=np.uint8)
    noise = noise.reshape(canvas.shape).astype(np.float32)
    noise -= np.float32(127.5)
    noise *= np.float32(scene.noise_sigma * math.sqrt(12.0) / 256.0)
    canvas += noise
    np.clip(canvas, 0.0, 255.0, out=canvas)
    return _Rendering(frames=canvas.astype(np.uint8), labels=labels, background=background, occluded=occluded,
                      depth=depths)


# ----------------------------------------------------------------------------- public API


def generate_video(seed: int, config: ProceduralConfig = ProceduralConfig(), depth: bool = False) -> ProceduralVideo:
    """One procedural video; the same seed and config always give identical arrays. ``depth``: also
    its layered depth (``video.depth``; seen with ``sam2_model.depth_format.procedural_intrinsics``)."""
    scene = _sample_scene(np.random.default_rng(seed), config)
    rendering = _render(scene, depth=depth)
    return ProceduralVideo(
        frames=rendering.frames, labels=rendering.labels, num_targets=scene.num_targets, seed=seed,
        depth=rendering.depth,
    )


def _zero_runs(counts: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) of every run of zeros in ``counts`` after its first non-zero entry."""
    runs: list[tuple[int, int]] = []
    seen, start = False, None
    for t, count in enumerate(counts):
        if count > 0:
            if start is not None:
                runs.append((start, t - 1))
                start = None
            seen = True
        elif seen and start is None:
            start = t
    if start is not None:
        runs.append((start, len(counts) - 1))
    return runs


# generate_with_events finds a video with a hide-and-return in a few tries from this length on
# (12 frames: about 8 tries; 8 frames: often none in 200).
MIN_EVENT_VIDEO_FRAMES = 12


def _has_event(video: ProceduralVideo, min_hidden_frames: int) -> bool:
    """Every target clearly visible on frame 0, and one of them gone for ``min_hidden_frames``
    frames in a row and clearly visible again later."""
    found = False
    for obj_id in range(1, video.num_targets + 1):
        counts = video.pixel_counts(obj_id)
        # Also refuse a target mostly hidden on frame 0 (say behind a distractor): a sliver is a
        # poor prompt for training and for evaluation alike.
        if counts[0] < max(MIN_VISIBLE_PIXELS, MIN_PROMPT_FRACTION * counts.max()):
            return False
        for first, last in _zero_runs(counts):
            if last - first + 1 >= min_hidden_frames and (counts[last + 1:] >= MIN_VISIBLE_PIXELS).any():
                found = True
    return found


def _derived_seed(seed: int, attempt: int) -> int:
    # Attempt 0 is the seed itself, so a seed whose video already qualifies is returned as is.
    if attempt == 0:
        return seed
    return int(np.random.SeedSequence([seed, attempt]).generate_state(1, np.uint64)[0])


def generate_with_events(
    seed: int,
    config: ProceduralConfig = ProceduralConfig(),
    min_hidden_frames: int = 3,
    max_tries: int = 200,
    depth: bool = False,
) -> ProceduralVideo:
    """A video in which every target shows at least MIN_VISIBLE_PIXELS pixels on frame 0 (and at
    least MIN_PROMPT_FRACTION of its largest area in the video), and at least one target then
    has no pixel for ``min_hidden_frames`` consecutive frames (behind a bar or out of the
    picture) and shows again (>= MIN_VISIBLE_PIXELS) later.

    Rejection sampling over seeds derived from ``seed`` (deterministic); the accepted seed is
    ``video.seed``, and ``generate_video(video.seed, config)`` reproduces the video.
    """
    if config.min_targets < 1:
        raise ValueError("generate_with_events needs at least one target (min_targets >= 1)")
    for attempt in range(max_tries):
        video = generate_video(_derived_seed(seed, attempt), config, depth=depth)
        if _has_event(video, min_hidden_frames):
            return video
    raise RuntimeError(
        f"no video with a target hidden for {min_hidden_frames} frames in {max_tries} tries from seed {seed}; "
        "raise occluder_probability/exit_probability, num_frames or max_tries"
    )


def write_davis(root, videos: dict[str, ProceduralVideo], image_format: str = "png") -> None:
    """Write videos as a DAVIS-format folder: root/JPEGImages/<name>/00000.<image_format> and
    root/Annotations/<name>/00000.png (palette PNG, pixel value = object id), every frame
    annotated. "png" keeps the images lossless; "jpg" is smaller. A video with its depth also
    gets root/Depth/<name>/ (``sam2_model.depth_format``)."""
    for name, video in videos.items():
        frames = ((index, frame, labels) for index, (frame, labels) in enumerate(zip(video.frames, video.labels)))
        write_davis_sequence(root, name, frames, image_format)
        if video.depth is not None:
            height, width = video.frames.shape[1:3]
            write_depth_sequence(root, name, enumerate(video.depth), procedural_intrinsics(height, width))


def _describe(name: str, video: ProceduralVideo) -> str:
    parts = []
    for obj_id in range(1, video.num_targets + 1):
        spans = video.hidden_spans(obj_id)
        hidden = ",".join(f"{a}-{b}" for a, b in spans) if spans else "never"
        parts.append(f"{obj_id}: hidden {hidden}")
    return f"{name} seed={video.seed} targets={video.num_targets} " + "; ".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sam2_model.train.procedural",
        description="Write procedural videos with occlusion/exit events as a DAVIS-format folder.",
    )
    parser.add_argument("--out", required=True, type=Path, help="output folder (JPEGImages/, Annotations/)")
    parser.add_argument("--sequences", type=int, default=5, help="number of videos (gen_0000, ...)")
    parser.add_argument("--seed", type=int, default=1000, help="seed of the first video; video i uses seed + i")
    parser.add_argument("--frames", type=int, default=24, help="frames per video")
    parser.add_argument("--size", type=int, default=128, help="frame height and width in pixels")
    parser.add_argument("--image-format", choices=("png", "jpg"), default="png")
    parser.add_argument("--depth", action="store_true",
                        help="also write each video's layered depth: Depth/<name>/%%05d.png (16-bit mm) and "
                             "camera_info.json (sam2_model.depth_format)")
    parser.add_argument("--exposure-step", type=float, default=1.0, metavar="FACTOR",
                        help="a camera's exposure change in every video: from a frame in its second quarter the "
                             "brightness ramps over %d frames to FACTOR or 1/FACTOR (brighter or darker at random); "
                             "1 (default): none" % EXPOSURE_RAMP_FRAMES)
    defaults = ProceduralConfig()
    parser.add_argument("--max-targets", type=int, default=defaults.max_targets, metavar="N",
                        help="labelled objects per video, 1 to N (default: %(default)s)")
    parser.add_argument("--max-distractors", type=int, default=defaults.max_distractors, metavar="N",
                        help="unlabelled shapes per video, 0 to N, the first usually of a target's hue "
                             "(default: %(default)s)")
    parser.add_argument("--max-speed", type=float, default=defaults.max_speed, metavar="FRACTION",
                        help="fastest motion, as a fraction of the frame's side per frame (default: %(default)s)")
    parser.add_argument("--camera-turn", type=float, default=defaults.camera_turn, metavar="FRACTION",
                        help="a robot turning its camera in every video: from a frame in its second quarter the "
                             "view moves over %d frames by FRACTION of the frame's side, in a random direction, "
                             "objects, bars and background with it; 0 (default): none" % CAMERA_TURN_FRAMES)
    args = parser.parse_args(argv)
    if args.sequences < 0 or args.seed < 0:
        parser.error("--sequences and --seed must not be negative")
    config = ProceduralConfig(height=args.size, width=args.size, num_frames=args.frames,
                              exposure_step=args.exposure_step, max_targets=args.max_targets,
                              max_distractors=args.max_distractors, max_speed=args.max_speed,
                              camera_turn=args.camera_turn)
    try:
        config.check()
    except ValueError as error:
        parser.error(str(error))
    for index in range(args.sequences):
        name = f"gen_{index:04d}"
        video = generate_with_events(args.seed + index, config, depth=args.depth)
        # One sequence at a time, so a long run never holds every video in memory.
        write_davis(args.out, {name: video}, image_format=args.image_format)
        print(_describe(name, video), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
