"""The robust policy's ``reacquire_shown`` (issue 25, round 26) on constructed cases: a mask the model
scored absent that fails only reacquire's score bar is shown in the output while the object's state
and memory take the frame as the model scored it; the options, and the tracker with a scripted
decoder on painted frames."""

import numpy as np
import pytest
import torch

from sam2_model.robust_options import MemoryPolicyError, RobustMemoryOptions, parse_memory_policy

from micro_session import model, session  # noqa: F401
from test_colour_check import colour_tracked
from test_reacquire_close import lost_at
from test_return_checks import absent_pointer

SHOWN = "robust+reacquire_shown"
# Red rows 10-21 and grey rows 22-23: a mean colour about 23 from red, within reacquire's 40 but beyond
# reacquire_close's 15, so reacquire's own bar (-1) applies.
MIXED = (10, 24, 13, 23)


def test_reacquire_shown_options():
    options = parse_memory_policy(SHOWN)
    assert options.reacquire_shown and "reacquire_shown" in options.components
    assert not RobustMemoryOptions().reacquire_shown and not parse_memory_policy("robust").reacquire_shown
    assert options.shown_min_score < options.reacquire_min_score
    alone = parse_memory_policy("robust:reacquire_shown")
    assert alone.components == ["kalman", "reacquire", "reacquire_shown"]  # brings reacquire and its filter
    assert parse_memory_policy(SHOWN + ",shown_min_score=-5").shown_min_score == -5.0
    with pytest.raises(MemoryPolicyError, match="shown_min_score needs a number, got 'low'"):
        parse_memory_policy(SHOWN + ",shown_min_score=low")
    with pytest.raises(MemoryPolicyError, match="shown_min_score nan must be a finite number"):
        parse_memory_policy(SHOWN + ",shown_min_score=nan")


def test_a_doubtful_mask_is_shown_and_remembered_as_absent(model, monkeypatch):  # noqa: F811
    """Frame 4's unblanked mask (red with two grey rows) is scored -2: below reacquire's bar for its
    colour. Plain robust reports the object absent; reacquire_shown outputs that mask as a decoder that
    scored it present would, with no predicted box, while the frame's memory, the filter and the hidden
    count are plain robust's; on frame 5 (the object back, scored present) both give the same output."""
    script, blocks = lost_at(-2.0, MIXED)
    script[5] = [(4.0, (10, 20, 14, 24))]
    tracker, results = colour_tracked(model, monkeypatch, SHOWN, script, blocks)
    plain_tracker, plain = colour_tracked(model, monkeypatch, "robust", script, blocks)
    assert [bool(r.visible[0]) for r in plain] == [True] * 3 + [False, True]
    assert [bool(r.visible[0]) for r in results] == [True] * 5
    _, present = colour_tracked(model, monkeypatch, "robust", {**script, 4: [(0.5, MIXED)]}, blocks)
    assert results[3].masks[0].any() and np.array_equal(results[3].masks[0], present[3].masks[0])
    assert results[3].predicted_boxes[0] is None and plain[3].predicted_boxes[0] is not None
    shown_memory, plain_memory = tracker._objects[1].recent[4], plain_tracker._objects[1].recent[4]
    assert torch.allclose(shown_memory.obj_ptr, absent_pointer(model))
    assert torch.equal(shown_memory.features, plain_memory.features)
    assert np.array_equal(results[4].masks[0], plain[4].masks[0])
    shown_state, plain_state = tracker._objects[1].robust, plain_tracker._objects[1].robust
    assert np.allclose(shown_state.kalman.box(), plain_state.kalman.box())
    assert np.allclose(shown_state.colour, plain_state.colour)


def test_the_hidden_count_goes_on_while_shown(model, monkeypatch):  # noqa: F811
    """Shown frames leave the object hidden for the policy: after two shown frames the hidden count is
    2, as plain robust's."""
    script, blocks = lost_at(-2.0, MIXED)
    script[5] = [(-2.0, (10, 24, 14, 24))]
    tracker, results = colour_tracked(model, monkeypatch, SHOWN, script, blocks)
    plain_tracker, _ = colour_tracked(model, monkeypatch, "robust", script, blocks)
    assert [bool(r.visible[0]) for r in results] == [True] * 5
    assert tracker._objects[1].robust.frames_hidden == plain_tracker._objects[1].robust.frames_hidden == 2


@pytest.mark.parametrize("score, block, why", [
    (-4.0, MIXED, "below shown_min_score"),
    (-2.0, (10, 20, 45, 55), "beyond reacquire's reach"),
    (-2.0, (40, 50, 13, 23), "another colour (blue rows)"),
])
def test_masks_reacquire_would_refuse_for_more_than_score_stay_absent(model, monkeypatch, score, block,
                                                                      why):  # noqa: F811
    script, blocks = lost_at(score, block)
    tracker, results = colour_tracked(model, monkeypatch, SHOWN, script, blocks)
    assert [bool(r.visible[0]) for r in results] == [True] * 3 + [False], why
    assert not results[3].masks[0].any() and results[3].predicted_boxes[0] is not None
    assert torch.allclose(tracker._objects[1].recent[4].obj_ptr, absent_pointer(model))
