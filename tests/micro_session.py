"""The micro parity session and its model as module fixtures, for the tests that track on it
(import both names: ``from micro_session import model, session  # noqa: F401``), and the micro
tracker those tests start from: the session's two first prompts on its first frame."""

from __future__ import annotations

import pytest

import sam2_model

from parity_sessions import MICRO_SESSION, build_session_model, load_session


@pytest.fixture(scope="module")
def session():
    return load_session(MICRO_SESSION)


@pytest.fixture(scope="module")
def model(session):
    return build_session_model(session)


# The session's two first prompts, on its first frame: object 1 a click, object 2 a box.
FIRST_PROMPTS = ((1, dict(points=[[76.8, 89.6]], labels=[1])), (2, dict(box=[128.0, 133.12, 212.48, 199.68])))


def session_frames(session):
    """The session's frames as numpy arrays (H x W x 3, uint8)."""
    return [f.numpy() for f in session["frames"]]


def add_first_prompts(tracker, frames):
    """Track ``frames[0]`` and prompt the session's two first objects on it; the prompts' results."""
    tracker.track(frames[0])
    return [tracker.add_prompt(obj_id, **prompt) for obj_id, prompt in FIRST_PROMPTS]


def prompted_tracker(model, frames, fill_hole_area=0, **options):
    """A StreamingTracker on the micro model with the session's two first prompts on frame 0."""
    tracker = sam2_model.StreamingTracker(model, fill_hole_area=fill_hole_area, **options)
    add_first_prompts(tracker, frames)
    return tracker


def run_prompted(model, frames, count, **options):
    """``prompted_tracker`` then frames 1 .. count - 1 (cycling through the session's frames):
    the tracker and the results of those frames."""
    tracker = prompted_tracker(model, frames, **options)
    return tracker, [tracker.track(frames[t % len(frames)]) for t in range(1, count)]
