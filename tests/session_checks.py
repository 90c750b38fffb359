"""Shared by the tracking-session and server tests: the bundled model (fixture ``model``), a generated
scene and an exact FrameState comparison."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest

import sam2_model
from sam2_model.frame_state import FrameState
from sam2_model.train.procedural import ProceduralConfig, generate_video

# Two targets in view from the first frame (the generator finds them; prompts have something to hold).
SCENE_CONFIG = ProceduralConfig(num_frames=6, max_distractors=0, occluder_probability=0.0, exit_probability=0.0,
                                min_targets=2, max_targets=2)


@pytest.fixture(scope="module")
def model():
    """The bundled "default" model with its weights."""
    return sam2_model.build_model("default")


@lru_cache(maxsize=4)
def scene(seed: int = 6):
    """(frames [T, H, W, 3] uint8, labels [T, H, W]) of a procedural video."""
    video = generate_video(seed, SCENE_CONFIG)
    frames, labels = video.frames, video.labels
    frames.setflags(write=False)
    return frames, labels


def first_target_box(labels: np.ndarray, target: int):
    """[x0, y0, x1, y1] of a target on one frame."""
    ys, xs = np.nonzero(labels == target)
    return [float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max())]


def centre_click(labels: np.ndarray, target: int):
    ys, xs = np.nonzero(labels == target)
    k = len(xs) // 2
    return [[float(xs[k]), float(ys[k])]]


def assert_same_frame(got: FrameState, expected: FrameState, where: str = "") -> None:
    """Bit for bit: every number, box, crop, label and tinted pixel."""
    assert (got.frame_index, got.height, got.width) == (expected.frame_index, expected.height, expected.width), where
    assert [o.object_id for o in got.objects] == [o.object_id for o in expected.objects], where
    for a, b in zip(got.objects, expected.objects):
        assert (a.visible, a.visibility, a.iou_score, tuple(a.bbox), a.area) == \
               (b.visible, b.visibility, b.iou_score, tuple(b.bbox), b.area), f"{where} object {b.object_id}"
        assert (a.mask is None) == (b.mask is None), where
        if b.mask is not None:
            assert a.mask.dtype == b.mask.dtype and np.array_equal(a.mask, b.mask), f"{where} object {b.object_id}"
    for name in ("labels", "tinted"):
        a, b = getattr(got, name), getattr(expected, name)
        assert (a is None) == (b is None), f"{where} {name}"
        if b is not None:
            assert a.dtype == b.dtype and np.array_equal(a, b), f"{where} {name}"
