"""The robust policy's appearance memory (split memory, issue 25): what it takes, how it is bounded,
and which memories a hidden object attends to with it; constructed cases and the tracker."""

from collections import OrderedDict

import pytest
import torch

import sam2_model
import sam2_model.memory_bank as memory_bank
from sam2_model.appearance_memory import AppearanceMemory
from sam2_model.memory_bank import FrameMemory, ObjectMemory, select_memories
from sam2_model.robust_memory import Observation, RobustObjectState, decide
from sam2_model.robust_options import MemoryPolicyError, RobustMemoryOptions, parse_memory_policy

from micro_session import model, run_prompted, session, session_frames  # noqa: F401
from test_robust_memory import box_at, box_prompted_tracker

POLICY = "robust+appearance_memory"
# The thresholds the constructed cases below are worked out for (not the defaults, which may be tuned).
PINNED = POLICY + ",appearance_slots=2,appearance_interval=5,appearance_min_iou=0.5,appearance_min_score=1"


def memory_of(frame_index):
    """A memory whose tensors say which frame they are of."""
    return FrameMemory(frame_index, torch.full((4,), float(frame_index)), torch.full((2, 3, 3), float(frame_index)))


# ---------------------------------------------------------------- options


def test_policy_names_and_thresholds():
    options = parse_memory_policy(POLICY)
    assert options.components == ["kalman", "motion_gate", "last_seen", "appearance_memory", "colour_check",
                                  "colour_drift", "reacquire", "steady_size", "edge_return", "colour_anchor",
                                  "exposure", "colour_cut", "reacquire_cut", "reacquire_close"]
    assert RobustMemoryOptions().appearance_memory  # in plain robust since round 7 (docs/benchmarks.md)
    assert parse_memory_policy("robust") == options
    assert parse_memory_policy("robust:appearance_memory").components == ["appearance_memory"]
    tuned = parse_memory_policy(POLICY + ",appearance_slots=3,appearance_interval=2,appearance_min_iou=0.8")
    assert (tuned.appearance_slots, tuned.appearance_interval, tuned.appearance_min_iou) == (3, 2, 0.8)
    assert isinstance(tuned.appearance_slots, int)
    for bad in ("robust+", "robust+wings", "robust+appearance_memory:kalman", POLICY + ",appearance_slots=1.5",
                POLICY + ",appearance_slots=0", POLICY + ",appearance_interval=-2", "official+appearance_memory"):
        with pytest.raises(MemoryPolicyError):
            parse_memory_policy(bad)


def test_more_slots_than_the_window_leave_the_newest_recent_memory(model):
    """However many slots, a hidden object attends to at most the window less one of them (the
    newest, absence, memory stays); a model with a smaller window takes robust as it is."""
    window = model.config.num_maskmem - 1
    tracker = sam2_model.StreamingTracker(model, memory_policy=f"{POLICY},appearance_slots={window + 3}")
    state = ObjectMemory(obj_id=1, robust=RobustObjectState(frames_hidden=2))
    state.robust.appearance = AppearanceMemory(slots=window + 3, interval=1)
    for t in range(1, window + 4):
        state.robust.appearance.offer(memory_of(t), confident=True)
    attended = tracker._attended_appearance(state)
    assert [m.frame_index for m in attended] == list(range(window + 3, 3, -1))[:window - 1]
    state.robust.frames_hidden = 0  # visible: none
    assert tracker._attended_appearance(state) == []


def test_slots_beyond_the_attended_places_are_not_stored(model, session):
    """Only num_maskmem - 2 appearance memories are ever attended (the window less its newest
    frame), so no more are stored: appearance_slots=100000000 holds what that many places hold,
    and tracks as they do (the extra memories cost memory and changed nothing)."""
    frames = session_frames(session)
    places = model.config.num_maskmem - 2
    eager = POLICY + ",appearance_min_iou=0,appearance_min_score=-100,appearance_interval=1"
    huge, huge_results = run_prompted(model, frames, 16, memory_policy=eager + ",appearance_slots=100000000")
    fitted, fitted_results = run_prompted(model, frames, 16, memory_policy=eager + f",appearance_slots={places}")
    for a, b in zip(huge_results, fitted_results):
        assert torch.equal(a.low_res_logits, b.low_res_logits)
        assert torch.equal(a.object_score_logits, b.object_score_logits)
    assert [len(s.robust.appearance.entries) for s in huge._objects.values()] == [places, places]
    assert huge.memory_bytes() == fitted.memory_bytes()


# ---------------------------------------------------------------- what it takes


def test_only_confident_visible_frames_enter_at_intervals_and_the_bank_stays_bounded():
    options = parse_memory_policy(PINNED + ",gate_distance=1.5,gate_growth=0.25")
    state = RobustObjectState()
    state.start(box_at(10, 30), options)
    script = {}
    for t in range(1, 13):  # visible, moving right; frame 7 poor (low IoU), frame 9 unsure (low score)
        script[t] = Observation(True, box_at(10 + t, 30), 0.3 if t == 7 else 0.9, 0.5 if t == 9 else 4.0)
    for t in range(13, 23):  # hidden; a far look-alike on 18 (refused by the gate)
        script[t] = Observation(False, None, 0.1, -4.0)
    script[18] = Observation(True, box_at(60, 90), 0.95, 6.0)
    for t in range(23, 40):
        script[t] = Observation(True, box_at(24 + t - 23, 30), 0.9, 4.0)
    taken, sizes, refused = [], [], []
    for t in sorted(script):
        decision = decide(state, script[t], options)
        if not decision.accepted:
            refused.append(t)
        if state.appearance.offer(memory_of(t), decision.confident):
            taken.append(t)
        sizes.append(len(state.appearance.entries))
        if t == 22:
            held_while_hidden = list(state.appearance.entries)
    assert refused == [18]
    # The rule by hand: the first good visible frame once 5 frames passed since the last one taken
    # (or since the prompt, frame 0): 5, then 10, then (11-12 too soon, 13-22 hidden or refused) 23,
    # 28, 33, 38.
    assert taken == [5, 10, 23, 28, 33, 38]
    assert held_while_hidden == [5, 10]
    assert max(sizes) == options.appearance_slots == 2
    assert list(state.appearance.entries) == [33, 38]
    good = {t for t, seen in script.items() if seen.visible and seen.iou >= 0.5 and seen.object_score >= 1.0}
    assert set(taken) <= good - {18}


def test_a_prompt_empties_the_appearance_memory():
    options = parse_memory_policy(PINNED)
    state = RobustObjectState()
    state.start(box_at(10, 30), options)
    for t in range(1, 11):
        decision = decide(state, Observation(True, box_at(10, 30), 0.9, 4.0), options)
        state.appearance.offer(memory_of(t), decision.confident)
    assert list(state.appearance.entries) == [5, 10]
    state.restart_from_prompt()
    assert not state.appearance.entries and state.appearance.frames_since == 0


# ---------------------------------------------------------------- what a hidden object attends to


def object_with_memories(last_frame, window):
    state = ObjectMemory(obj_id=1)
    state.conditioning[0] = memory_of(0)
    state.recent = OrderedDict((t, memory_of(t)) for t in range(1, last_frame + 1))
    for t, memory in state.recent.items():  # features only within the spatial window, as forget_old keeps them
        if last_frame - t >= window:
            memory.features = None
    return state


def spatial_frames(selection):
    return [(int(features[0, 0, 0]), index) for features, index in selection.spatial]


def pointer_frames(selection):
    return sorted((int(pointer[0]), distance) for pointer, distance in selection.pointers)


@pytest.mark.parametrize("frame", [21, 40])
def test_a_hidden_object_attends_to_its_appearance_in_the_oldest_places(frame):
    num_maskmem, max_pointers = 7, 16
    window = num_maskmem - 1
    state = object_with_memories(frame - 1, window)
    args = (frame, num_maskmem, max_pointers, 0, True, False)
    official = select_memories(state, *args)
    appearance = [memory_of(10), memory_of(5)]  # newest first
    split = select_memories(state, *args, appearance=appearance)
    # Official: the prompt (temporal index 6) and the six newest frames (index = frames back - 1).
    assert spatial_frames(official) == [(0, 6)] + [(frame - b, b - 1) for b in range(window, 0, -1)]
    # Split: the two oldest places go to the appearance memories, at the oldest temporal index;
    # the four newest frames (the absence evidence) stay. As many memories as the official choice.
    assert sorted(spatial_frames(split)) == sorted([(0, 6), (10, 5), (5, 5)] +
                                                   [(frame - b, b - 1) for b in range(4, 0, -1)])
    assert len(split.spatial) == len(official.spatial)
    # Pointers: the official ones, and each appearance memory's outside the pointer window.
    outside = [(t, frame - t) for t in (5, 10) if frame - t >= max_pointers]
    assert pointer_frames(split) == sorted(pointer_frames(official) + outside)
    assert select_memories(state, *args, appearance=[]).spatial == official.spatial


def test_an_appearance_memory_among_the_newest_frames_is_not_repeated():
    state = object_with_memories(20, 6)
    split = select_memories(state, 21, 7, 16, 0, True, False, appearance=[state.recent[18], memory_of(9)])
    # Frame 18 is one of the four kept (frames back 1-4); only frame 9 takes a place, frame 16
    # (frames back 5) keeps the other.
    assert sorted(spatial_frames(split)) == sorted([(0, 6), (9, 5), (16, 4), (17, 3), (18, 2), (19, 1), (20, 0)])


# ---------------------------------------------------------------- the tracker


def test_tracker_keeps_appearance_apart_from_absence(model, session, monkeypatch):
    frames = session_frames(session)
    side = model.image_size // 4
    # Visible and moving 1 cell right per frame on 1-12, hidden on 13-22 with a far look-alike on
    # 18, back near where it went on 23-24.
    script = {t: (True, (10, 20, 10 + t, 20 + t)) for t in range(1, 13)}
    script.update({t: (False, (0, 0, 0, 0)) for t in range(13, 23)})
    script[18] = (True, (side - 12, side - 2, side - 12, side - 2))
    script.update({t: (True, (10, 20, 22, 32)) for t in (23, 24)})
    tracker = box_prompted_tracker(model, frames, PINNED + ",gate_distance=1.5,gate_growth=0.25", script, monkeypatch)
    attended = {}
    real_select = memory_bank.select_memories

    def spy(state, frame_index, *args, appearance=()):
        selection = real_select(state, frame_index, *args, appearance=appearance)
        attended[frame_index] = ([m.frame_index for m in appearance], [f for f, _ in selection.spatial])
        return selection

    monkeypatch.setattr(memory_bank, "select_memories", spy)
    held = {}
    for t in range(1, 25):
        result = tracker.track(frames[t % len(frames)])
        assert bool(result.visible[0]) == (t <= 12 or t >= 23)  # the look-alike on 18 refused
        held[t] = dict(tracker._objects[1].robust.appearance.entries)
    appearance = tracker._objects[1].robust.appearance
    # Taken: the first visible frame 5 frames after the prompt, then every 5 frames; never 13-22.
    assert {t: list(entries) for t, entries in held.items() if t in (12, 18, 22, 24)} == {
        12: [5, 10], 18: [5, 10], 22: [5, 10], 24: [10, 23]}
    # Used only while hidden (the frame before was not accepted as visible).
    for t, (used, spatial) in attended.items():
        assert used == ([10, 5] if 14 <= t <= 23 else []), t
    # On a hidden frame the selection holds the appearance memories' own features.
    spatial_20 = attended[20][1]
    assert any(f is held[22][10].features for f in spatial_20) and any(f is held[22][5].features for f in spatial_20)
    assert len(spatial_20) == model.config.num_maskmem  # the prompt and the window: no more than official
    assert len(appearance.entries) <= 2


def test_nothing_changes_until_an_object_hides(model, session):
    """The appearance memory only acts on a hidden object: outputs equal robust's without it up to
    the frame after the first one where an object is not visible."""
    frames = session_frames(session)
    eager = POLICY + ",appearance_min_iou=0,appearance_min_score=-100,appearance_interval=1,appearance_slots=2"
    _, plain = run_prompted(model, frames, 10, memory_policy="robust:kalman+motion_gate+last_seen")
    tracker, split = run_prompted(model, frames, 10, memory_policy=eager)
    hidden = [k for k, r in enumerate(plain) if not bool(r.visible.all())]
    same_until = hidden[0] + 1 if hidden else len(plain) - 1
    for a, b in zip(plain[:same_until + 1], split[:same_until + 1]):
        assert torch.equal(a.low_res_logits, b.low_res_logits)
        assert torch.equal(a.object_score_logits, b.object_score_logits)
    for state in tracker._objects.values():
        assert len(state.robust.appearance.entries) <= 2


def test_appearance_state_goes_with_the_object_and_the_reset(model, session):
    frames = session_frames(session)
    eager = PINNED + ",appearance_min_iou=0,appearance_min_score=-100"
    tracker, _ = run_prompted(model, frames, 8, memory_policy=eager)
    assert all(isinstance(s.robust.appearance, AppearanceMemory) for s in tracker._objects.values())
    tracker.remove_object(1)
    assert tracker.obj_ids == [2]
    tracker.reset()
    constant = tracker._memory_pos  # the memory encoder's position encoding, a constant of the model
    assert tracker.obj_ids == [] and tracker.memory_bytes() == constant.numel() * constant.element_size()
