"""The robust policy's round-13 components (issue 25) on constructed cases: ``steady_size`` (the
gates measure distances in the largest side seen lately, not in the sliver an object shrinks to as
it slides behind an occluder) and ``edge_return`` (an object last seen at the frame's edge is
reacquired only across the edge); the options, the decisions, the observations' edge flags and
the tracker with a scripted decoder."""

import numpy as np
import pytest
import torch

from sam2_model.robust_memory import (Observation, RobustObjectState, Unblanked, decide, gate_limit, observations,
                                      touches_edge)
from sam2_model.robust_options import MemoryPolicyError, RobustMemoryOptions, parse_memory_policy

from micro_session import model, session  # noqa: F401
from test_colour_check import RED, colour_tracked, coloured
from test_robust_memory import box_at, seen

ROUND_12 = "robust:kalman+motion_gate+last_seen+appearance_memory+colour_check+colour_drift+reacquire"
STEADY = f"{ROUND_12}+steady_size"
EDGE = f"{ROUND_12}+edge_return"


# ---------------------------------------------------------------- options


def test_options():
    assert RobustMemoryOptions().steady_size and RobustMemoryOptions().edge_return  # since round 13
    options = parse_memory_policy("robust,size_decay=0.8")
    assert options.steady_size and options.edge_return and options.size_decay == 0.8
    assert {"steady_size", "edge_return"} <= set(options.components)
    assert not ({"steady_size", "edge_return"} & set(parse_memory_policy(ROUND_12).components))
    assert parse_memory_policy("robust:kalman+edge_return").components == ["kalman", "edge_return"]
    for bad in ("0", "1.5"):
        with pytest.raises(MemoryPolicyError, match=f"size_decay {float(bad)} must be within"):
            parse_memory_policy(f"robust+steady_size,size_decay={bad}")


# ---------------------------------------------------------------- steady_size


def shrinking_then_hidden(options, hidden=2):
    """An object 12 cells wide moving right 2 cells per frame, sliding behind an occluder on its
    last 4 visible frames (its box shrinking to 2 x 6), then hidden."""
    state = RobustObjectState()
    state.start(box_at(10, 30, w=12), options)
    for t in range(1, 5):
        assert decide(state, coloured(box_at(10 + 2 * t, 30, w=12), RED), options).accepted
    for t, width in enumerate((9.0, 6.0, 4.0, 2.0), start=5):
        assert decide(state, coloured(box_at(10 + 2 * t, 30, w=width), RED), options).accepted
    for _ in range(hidden):
        assert decide(state, seen(None, visible=False, score=-3.0), options).accepted
    return state


def test_steady_size_remembers_the_size_before_the_object_shrank():
    options = parse_memory_policy(STEADY)
    state = shrinking_then_hidden(options, hidden=0)
    assert state.last_size == 6.0  # the sliver's larger side is its height
    # 12 on the last frame of full size, then 0.9 per accepted frame, the larger of that and the box.
    assert state.steady_size == pytest.approx(12 * 0.9 ** 4)
    assert state.gate_size(options) == state.steady_size
    assert state.gate_size(parse_memory_policy(ROUND_12)) == state.last_size
    # A box larger than the remembered size replaces it at once, if the mask fills it: a mask of
    # stray cells scattered over a large box does not (the size still decays).
    before = state.steady_size
    scattered = coloured(box_at(28, 30, w=30, h=30), RED)
    scattered.area = 0.2 * 30 * 30
    decide(state, scattered, options)
    assert state.last_size == 30.0 and state.steady_size == pytest.approx(0.9 * before)
    filled = coloured(box_at(30, 30, w=20), RED)
    filled.area = 0.25 * 20 * 6
    decide(state, filled, options)
    assert state.steady_size == 20.0
    # Without the component the size is still kept (so that switching it on mid-stream is harmless).
    plain = shrinking_then_hidden(parse_memory_policy(ROUND_12), hidden=0)
    assert plain.steady_size == pytest.approx(12 * 0.9 ** 4)


@pytest.mark.parametrize("policy, taken", [(ROUND_12, False), (STEADY, True), ("robust", True)],
                         ids=["round 12", "steady_size", "robust"])
def test_a_return_beyond_the_slivers_reach_but_within_the_objects_is_taken(policy, taken):
    """The return lies across the motion direction from the last box (the predicted centre is no
    nearer), between the reach in sliver sizes and the reach in steady sizes."""
    options = parse_memory_policy(policy)
    state = shrinking_then_hidden(options)
    reach = gate_limit(state.frames_hidden, options)
    sliver, steady = 6.0, 12 * 0.9 ** 4  # the last box's larger side, and the decayed 12
    distance = reach * (sliver + steady) / 2
    assert reach * sliver < distance < reach * steady
    last_centre = (state.last_box[:2] + state.last_box[2:]) / 2
    decision = decide(state, coloured(box_at(last_centre[0], last_centre[1] + distance, w=6), RED, score=2.0),
                      options)
    assert decision.accepted is taken and (state.frames_hidden == 0) is taken


def test_a_prompt_restarts_the_steady_size():
    options = parse_memory_policy(STEADY)
    state = shrinking_then_hidden(options, hidden=0)
    state.restart_from_prompt()
    state.start(box_at(40, 40, w=4, h=4), options)
    assert state.steady_size == 4.0 and state.last_size == 4.0


# ---------------------------------------------------------------- edge_return


def test_touches_edge():
    grid = (64, 48)  # height, width
    assert touches_edge(np.array([0, 10, 5, 20]), grid) and touches_edge(np.array([10, 0, 20, 5]), grid)
    assert touches_edge(np.array([40, 10, 48, 20]), grid) and touches_edge(np.array([10, 50, 20, 64]), grid)
    assert not touches_edge(np.array([1, 1, 47, 63]), grid)


def test_observations_flag_masks_touching_the_grid_edge_and_count_their_cells():
    logits = torch.full((3, 1, 16, 12), -5.0)
    logits[0, 0, 4:8, 0:3] = 5.0     # on the left edge
    logits[1, 0, 4:8, 3:6] = 5.0     # inside
    unblanked = torch.full((3, 1, 16, 12), -5.0)
    unblanked[0, 0, 4:8, 4:6] = 5.0  # inside
    unblanked[1, 0, 13:16, 4:6] = 5.0  # on the bottom edge
    found = observations(logits, torch.tensor([2.0, 2.0, -3.0]), torch.ones(3), unblanked_logits=unblanked,
                         unblanked_colours=torch.zeros(3, 3))
    assert [o.on_edge for o in found] == [True, False, False]  # the third mask is empty
    assert [o.unblanked.on_edge for o in found] == [False, True, False]
    assert [o.area for o in found] == [12.0, 12.0, 0.0] and [o.unblanked.area for o in found] == [8.0, 6.0, 0.0]


def left_at_the_edge(options, hidden=2):
    """A red object moving left 2 cells per frame until its box touches the grid's left edge
    (flagged as the observations flag it), then hidden."""
    state = RobustObjectState()
    state.start(box_at(17, 30), options)
    for t in range(1, 7):
        box = box_at(17 - 2 * t, 30)
        observed = coloured(box, RED)
        observed.on_edge = bool(box[0] <= 0)
        assert decide(state, observed, options).accepted
    assert state.last_on_edge
    for _ in range(hidden):
        assert decide(state, seen(None, visible=False, score=-3.0), options).accepted
    return state


def just_absent(box, on_edge, score=-0.5):
    return Observation(False, None, 0.9, score, unblanked=Unblanked(np.asarray(box, float), RED.copy(), on_edge))


@pytest.mark.parametrize("policy, inside_taken", [(ROUND_12, True), (EDGE, False), ("robust", False)],
                         ids=["round 12", "edge_return", "robust"])
def test_an_object_that_left_the_view_is_reacquired_only_across_the_edge(policy, inside_taken):
    options = parse_memory_policy(policy)
    inside = box_at(12, 30)  # its colour, within the reach: a look-alike inside the frame
    assert decide(left_at_the_edge(options), just_absent(inside, False), options).reacquired is inside_taken
    state = left_at_the_edge(options)
    decision = decide(state, just_absent(box_at(4, 30), True), options)  # coming back across the edge
    assert decision.reacquired and state.last_on_edge and state.frames_hidden == 0


def test_an_object_last_seen_inside_the_frame_is_reacquired_anywhere_within_reach():
    options = parse_memory_policy(EDGE)
    state = RobustObjectState()
    state.start(box_at(30, 30), options)
    for t in range(1, 7):
        assert decide(state, coloured(box_at(30 + t, 30), RED), options).accepted
    assert not state.last_on_edge
    decide(state, seen(None, visible=False, score=-3.0), options)
    assert decide(state, just_absent(box_at(38, 30), False), options).reacquired


def test_tracker_reacquires_an_object_that_left_only_across_the_edge(model, monkeypatch):  # noqa: F811
    """Object 1 (red rows) moves left until its mask touches the grid's left edge (frame 3), is
    scored absent far below the reacquire bar (frames 4-5), then just absent with its mask inside the
    frame (frame 6: a look-alike's place) and at the edge (frame 7). Under edge_return frame 6 stays
    absent and frame 7 is reacquired; round 12's robust reacquires frame 6."""
    still = (4.0, (40, 50, 10, 20))
    script = {t: [(4.0, (10, 20, 6 - 2 * t, 16 - 2 * t)), still] for t in (1, 2, 3)}
    script[4] = script[5] = [(-3.0, (10, 20, 0, 2)), still]
    script[6] = [(-0.5, (10, 20, 8, 18)), still]
    script[7] = [(-0.5, (10, 20, 0, 6)), still]
    blocks = [(10, 20, 6, 16), (40, 50, 10, 20)]
    tracker, results = colour_tracked(model, monkeypatch, EDGE, script, blocks)
    assert tracker._objects[1].robust.frames_hidden == 0
    assert [bool(r.visible[0]) for r in results] == [True] * 3 + [False] * 3 + [True]
    assert results[6].masks[0].any() and not results[5].masks[0].any()
    assert all(bool(r.visible[1]) for r in results)  # object 2 untouched
    _, plain = colour_tracked(model, monkeypatch, ROUND_12, script, blocks)
    assert [bool(r.visible[0]) for r in plain] == [True] * 3 + [False] * 2 + [True] * 2


@pytest.mark.parametrize("policy, taken", [(ROUND_12, True), (STEADY, False)], ids=["round 12", "steady_size"])
def test_a_mask_several_times_the_objects_size_is_not_reacquired(policy, taken):
    """Just absent, the object's colour, centred where the object hid, but spread over a box more
    than ``reacquire_max_growth`` steady sizes (seen on dev: a mask over the whole frame): not the
    object."""
    options = parse_memory_policy(policy)
    state = shrinking_then_hidden(options)
    centre = (state.last_box[:2] + state.last_box[2:]) / 2
    side = options.reacquire_max_growth * state.steady_size + 2  # just beyond the growth
    huge = box_at(centre[0], centre[1], w=side, h=side)
    unblanked = Unblanked(huge, RED.copy())
    assert decide(state, Observation(False, None, 0.9, -0.5, unblanked=unblanked), options).reacquired is taken
    if not taken:  # one within the growth is
        state = shrinking_then_hidden(options)
        fits = Unblanked(box_at(centre[0], centre[1], w=23, h=6), RED.copy())
        assert 23 <= options.reacquire_max_growth * state.steady_size
        assert decide(state, Observation(False, None, 0.9, -0.5, unblanked=fits), options).reacquired
