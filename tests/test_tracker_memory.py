"""The tracker's state stays flat however long the stream runs (stored tensors and RSS)."""

import gc
import os

import numpy as np
import psutil
import pytest

from micro_session import model, prompted_tracker, session, session_frames  # noqa: F401


def _run(model, session, num_frames: int, checkpoints, memory_policy: str = "official", keep=None):  # noqa: F811
    frames = session_frames(session)
    tracker = prompted_tracker(model, frames, fill_hole_area=8, memory_policy=memory_policy)
    tracker.add_prompt(3, points=[[179.2, 104.96], [51.2, 204.8]], labels=[1, 0])
    process = psutil.Process(os.getpid())
    stored, rss = {}, {}
    for t in range(1, num_frames + 1):
        # Every frame is new data (a shifted picture), as on a camera.
        frame = np.roll(frames[t % len(frames)], shift=t % 7, axis=1)
        tracker.track(frame)
        if t in checkpoints:
            gc.collect()
            stored[t] = tracker.memory_bytes()
            rss[t] = process.memory_info().rss
    if keep is not None:
        keep["tracker"] = tracker
    return stored, rss


def _assert_flat(stored, rss, first, last):
    assert stored[first] == stored[last], stored
    # RSS may wobble with the allocator, but must not grow with the stream: allow 32 MiB.
    assert rss[last] - rss[first] < 32 * 2**20, {k: v / 2**20 for k, v in rss.items()}


def test_memory_flat_over_300_frames(model, session):  # noqa: F811
    stored, rss = _run(model, session, 300, {100, 200, 300})
    _assert_flat(stored, rss, 100, 300)


def test_robust_memory_flat_over_300_frames(model, session):  # noqa: F811
    """The robust policy's memory gate only leaves frames out and its appearance memory holds at
    most its slots per object: never above the official bound plus those (and the frame's colour
    grid), and its per-object state (a motion filter) does not grow either."""
    bound, _ = _run(model, session, 100, {100})
    kept = {}
    stored, rss = _run(model, session, 300, {100, 200, 300}, memory_policy="robust", keep=kept)
    states = list(kept["tracker"]._objects.values())
    slots = states[0].robust.appearance.slots
    entries = [m for s in states for m in s.robust.appearance.entries.values()]
    one = max((m.features.numel() * m.features.element_size() + m.obj_ptr.numel() * m.obj_ptr.element_size()
               for m in entries), default=0)
    # Beside them the current frame's colour grid (3 x S/4 x S/4 float32) and two 0-dim exposure values.
    colours = 3 * (model.config.image_size // 4) ** 2 * 4 + 2 * 4
    assert max(stored.values()) <= bound[100] + len(states) * slots * one + colours, (stored, bound)
    assert rss[300] - rss[100] < 32 * 2**20, {k: v / 2**20 for k, v in rss.items()}


@pytest.mark.timeout(900)
def test_appearance_memory_flat_over_200_frames(model, session):  # noqa: F811
    """The appearance memory adds at most its slots per object (shared with recent memories while
    those are kept), whatever the stream's length; thresholds at their loosest so it always fills."""
    bound, _ = _run(model, session, 40, {40})  # the official windows are full from frame 16 on
    kept = {}
    policy = "robust+appearance_memory,appearance_min_iou=0,appearance_min_score=-100,appearance_interval=3," \
             "appearance_slots=2"
    stored, rss = _run(model, session, 200, {40, 120, 200}, memory_policy=policy, keep=kept)
    states = list(kept["tracker"]._objects.values())
    entries = [m for s in states for m in s.robust.appearance.entries.values()]
    assert entries and all(len(s.robust.appearance.entries) <= 2 for s in states)
    one = entries[0].features.numel() * entries[0].features.element_size() + \
        entries[0].obj_ptr.numel() * entries[0].obj_ptr.element_size()
    assert max(stored.values()) <= bound[40] + len(states) * 2 * one, (stored, bound)
    assert rss[200] - rss[40] < 32 * 2**20, {k: v / 2**20 for k, v in rss.items()}


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_memory_flat_over_5000_frames(model, session):  # noqa: F811
    stored, rss = _run(model, session, 5000, {100, 1000, 2500, 5000})
    _assert_flat(stored, rss, 100, 5000)
