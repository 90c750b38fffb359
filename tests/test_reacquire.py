"""The robust policy's ``reacquire`` (issue 25, round 12) on constructed cases: a frame the model
scored absent, but only just, is taken as the object when the mask the model would have output has
the object's remembered colour and lies where the object can be; the decisions, the options, and
the tracker (output, object score and memory) with a scripted decoder."""

import numpy as np
import pytest
import torch

from sam2_model.robust_memory import Observation, RobustObjectState, Unblanked, decide
from sam2_model.robust_options import MemoryPolicyError, RobustMemoryOptions, parse_memory_policy

from micro_session import model, session  # noqa: F401
from test_colour_check import RED, colour_tracked, coloured, red_then_hidden
from test_return_checks import absent_pointer
from test_robust_memory import box_at

REACQUIRE = "robust+reacquire,reacquire_min_score=-1,reacquire_max_distance=40"
ROUND_11 = "robust:kalman+motion_gate+last_seen+appearance_memory+colour_check+colour_drift"  # robust before it


def scored_absent(box, colour, score=-0.5):
    """The model's output for an object it scored absent: no mask; ``box`` and ``colour`` are
    those of the mask it would have output (None: that mask is empty too)."""
    unblanked = Unblanked(None if box is None else np.asarray(box, float),
                          None if colour is None else np.asarray(colour, float))
    return Observation(False, None, 0.9, score, unblanked=unblanked)


# ---------------------------------------------------------------- options


def test_reacquire_options():
    options = parse_memory_policy("robust+reacquire")
    assert options.reacquire and options.measures_colour and "reacquire" in options.components
    assert RobustMemoryOptions().reacquire and parse_memory_policy("robust").reacquire  # since round 12
    assert (options.reacquire_min_score, options.reacquire_max_distance, options.reacquire_gate) == (-1.0, 40.0, 3.0)
    alone = parse_memory_policy("robust:reacquire")
    assert alone.components == ["kalman", "reacquire"] and alone.measures_colour  # brings its filter
    with pytest.raises(MemoryPolicyError, match="reacquire_min_score 0.5 must be <= 0"):
        parse_memory_policy("robust+reacquire,reacquire_min_score=0.5")
    with pytest.raises(MemoryPolicyError, match="reacquire_max_distance -1.0 must be >= 0"):
        parse_memory_policy("robust+reacquire,reacquire_max_distance=-1")
    problem = RobustMemoryOptions(kalman=False, motion_gate=False, reacquire=True).problems()[0]
    assert "reacquire" in problem and "need kalman" in problem


# ---------------------------------------------------------------- decisions


@pytest.mark.parametrize("hidden", [0, 2])
def test_a_just_absent_frame_in_the_objects_colour_where_it_can_be_is_taken(hidden):
    """On the first frame the model loses the object (hidden 0) and on a return (hidden 2)."""
    options = parse_memory_policy(REACQUIRE)
    state = red_then_hidden(options, hidden=hidden)
    box = box_at(24 + 2 * hidden, 30)
    decision = decide(state, scored_absent(box, RED + np.array([0.0, 39.0, 0.0])), options)
    assert decision.reacquired and decision.accepted and decision.admitted
    assert state.frames_hidden == 0 and decision.predicted_box is None
    np.testing.assert_array_equal(state.last_box, box)
    # The score stays below the appearance memory's bar: its colour is not learnt.
    assert not decision.confident
    np.testing.assert_allclose(state.colour, RED)


@pytest.mark.parametrize("case", ["other colour", "too unsure", "too far", "beyond its own reach", "empty",
                                  "unmeasured", "off"])
def test_otherwise_the_absent_frame_stays_absent(case):
    options = parse_memory_policy(REACQUIRE)
    box, colour, score = box_at(28, 30), RED, -0.5
    if case == "other colour":
        colour = RED + np.array([0.0, 41.0, 0.0])
    elif case == "too unsure":  # below reacquire's bar, and reacquire_close's for a mask in the object's colour
        score = min(options.reacquire_min_score, options.reacquire_close_min_score) - 0.01
    elif case == "too far":  # 3 + 1 per frame hidden (2) box sizes (10 cells): 50 cells from x 28
        box = box_at(28 + 51, 30)
    elif case == "beyond its own reach":  # 3 box sizes, not growing: within the motion gate's 50, past 30
        box = box_at(28 + 31, 30)
    elif case == "empty":
        box = colour = None
    elif case == "unmeasured":
        colour = None
    elif case == "off":
        options = parse_memory_policy(ROUND_11)
    state = red_then_hidden(options)
    decision = decide(state, scored_absent(box, colour, score), options)
    assert not decision.reacquired and decision.accepted and decision.admitted
    assert state.frames_hidden == 3 and decision.predicted_box is not None
    if case == "beyond its own reach":  # the motion gate takes the same box scored present
        state = red_then_hidden(options)
        assert decide(state, coloured(box, RED, score=0.5), options).accepted and state.frames_hidden == 0


def test_no_remembered_colour_reacquires_nothing():
    options = parse_memory_policy(REACQUIRE)
    state = RobustObjectState()
    state.start(box_at(10, 30), options)
    assert not decide(state, scored_absent(box_at(10, 30), RED), options).reacquired
    # A frame the model scored present is the model's own, whatever its unblanked mask.
    visible = coloured(box_at(12, 30), RED)
    assert not decide(state, visible, options).reacquired


# ---------------------------------------------------------------- the tracker


def test_tracker_outputs_and_remembers_a_reacquired_object(model, monkeypatch):  # noqa: F811
    """Object 1 (red) moves on frames 1-3; on frame 4 the model scores it -0.5 with its mask still
    on red: under reacquire the output is that mask, its score positive, its memory a visible
    frame (the ungated pointer). On frame 5 the same score with the mask on blue (object 2) stays
    absent. Round 11's robust reports frame 4 absent."""
    still = (4.0, (40, 50, 10, 20))
    script = {t: [(4.0, (10, 20, 10 + t, 20 + t)), still] for t in (1, 2, 3)}
    script[4] = [(-0.5, (10, 20, 14, 24)), still]
    script[5] = [(-0.5, (40, 50, 10, 20)), still]
    blocks = [(10, 20, 10, 20), (40, 50, 10, 20)]
    tracker, results = colour_tracked(model, monkeypatch, REACQUIRE, script, blocks)
    assert [bool(r.visible[0]) for r in results] == [True] * 4 + [False]
    # The output is what the model gives when it scores the same mask present (+0.5).
    _, present = colour_tracked(model, monkeypatch, "robust", {**script, 4: [(0.5, (10, 20, 14, 24)), still]},
                                blocks)
    assert results[3].masks[0].any() and torch.equal(results[3].masks[0], present[3].masks[0])
    assert float(results[3].object_score_logits[0]) == pytest.approx(0.5)
    memory = tracker._objects[1].recent
    assert torch.allclose(memory[4].obj_ptr, torch.ones_like(memory[4].obj_ptr))
    assert torch.allclose(memory[5].obj_ptr, absent_pointer(model))
    assert not results[4].masks[0].any() and results[4].predicted_boxes[0] is not None
    assert all(bool(r.visible[1]) for r in results)  # object 2 untouched
    _, plain = colour_tracked(model, monkeypatch, ROUND_11, script, blocks)
    assert [bool(r.visible[0]) for r in plain] == [True] * 3 + [False] * 2
