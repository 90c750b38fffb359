"""The robust policy's ``reacquire_close`` (issue 25, round 23) on constructed cases: where the model
scores an object absent and the mask it would have output lies in the object's colour, reacquire
takes it down to a lower object score; the options, and the tracker (output and memory) with a
scripted decoder on painted frames."""

import numpy as np
import pytest
import torch

from sam2_model.robust_options import MemoryPolicyError, RobustMemoryOptions, parse_memory_policy

from micro_session import model, session  # noqa: F401
from test_colour_check import colour_tracked
from test_colour_cut import ROUND_22
from test_return_checks import absent_pointer

CLOSE = "robust+reacquire_close"  # in plain robust since round 23


def test_reacquire_close_options():
    options = parse_memory_policy(CLOSE)
    assert options.reacquire_close and "reacquire_close" in options.components
    assert RobustMemoryOptions().reacquire_close and parse_memory_policy("robust") == options  # since round 23
    assert not parse_memory_policy(ROUND_22).reacquire_close
    # Its bar lies below reacquire's, for colours within a fraction of reacquire's distance.
    assert options.reacquire_close_min_score < options.reacquire_min_score
    assert options.reacquire_close_max_distance < options.reacquire_max_distance
    alone = parse_memory_policy("robust:reacquire_close")
    assert alone.components == ["kalman", "reacquire", "reacquire_close"]  # brings reacquire and its filter
    tuned = parse_memory_policy(CLOSE + ",reacquire_close_min_score=-2,reacquire_close_max_distance=20")
    assert (tuned.reacquire_close_min_score, tuned.reacquire_close_max_distance) == (-2.0, 20.0)
    with pytest.raises(MemoryPolicyError, match="reacquire_close_max_distance -1.0 must be >= 0"):
        parse_memory_policy(CLOSE + ",reacquire_close_max_distance=-1")
    with pytest.raises(MemoryPolicyError, match="reacquire_close_min_score needs a number, got 'low'"):
        parse_memory_policy(CLOSE + ",reacquire_close_min_score=low")


def lost_at(score, block):
    """Object 1 (red rows 8-21 of ``painted_frames``) visible on frames 1-3 (score 4: its colour
    learnt), scored absent at ``score`` on frame 4 with the mask it would have output on ``block``."""
    script = {t: [(4.0, (10, 20, 10 + t, 20 + t))] for t in (1, 2, 3)}
    script[4] = [(score, block)]
    return script, [(10, 20, 10, 20)]


def test_a_mask_in_the_objects_colour_is_reacquired_below_reacquires_score(model, monkeypatch):  # noqa: F811
    """Frame 4's unblanked mask lies wholly on red, scored -2 (below reacquire's -1, above -3):
    round 22's robust leaves the object absent; with reacquire_close the output is that mask, as a decoder
    that scored it present would give, and the frame's memory holds a visible frame's pointer."""
    script, blocks = lost_at(-2.0, (10, 20, 13, 23))
    tracker, results = colour_tracked(model, monkeypatch, CLOSE, script, blocks)
    assert [bool(r.visible[0]) for r in results] == [True] * 4
    _, present = colour_tracked(model, monkeypatch, "robust", {**script, 4: [(0.5, (10, 20, 13, 23))]}, blocks)
    assert results[3].masks[0].any() and np.array_equal(results[3].masks[0], present[3].masks[0])
    memory = tracker._objects[1].recent
    assert torch.allclose(memory[4].obj_ptr, torch.ones_like(memory[4].obj_ptr))
    plain_tracker, plain = colour_tracked(model, monkeypatch, ROUND_22, script, blocks)
    assert [bool(r.visible[0]) for r in plain] == [True] * 3 + [False]
    assert torch.allclose(plain_tracker._objects[1].recent[4].obj_ptr, absent_pointer(model))


@pytest.mark.parametrize("score, block, why", [
    (-4.0, (10, 20, 13, 23), "below the lower bar"),
    # Red rows 10-21 and grey rows 22-23: a mean colour about 23 from red, within reacquire's 40
    # (taken at -0.5) but beyond reacquire_close's 15.
    (-2.0, (10, 24, 13, 23), "not close enough in colour for the lower bar"),
    # Wholly on red, but more than reacquire's 3 box sizes from where the object can be.
    (-2.0, (10, 20, 45, 55), "beyond reacquire's reach"),
])
def test_other_masks_scored_below_reacquires_bar_stay_absent(model, monkeypatch, score, block, why):  # noqa: F811
    script, blocks = lost_at(score, block)
    tracker, results = colour_tracked(model, monkeypatch, CLOSE, script, blocks)
    assert [bool(r.visible[0]) for r in results] == [True] * 3 + [False], why
    assert not results[3].masks[0].any()
    assert torch.allclose(tracker._objects[1].recent[4].obj_ptr, absent_pointer(model))
    if block == (10, 24, 13, 23):  # reacquire's own bar still takes it
        _, just_absent = colour_tracked(model, monkeypatch, CLOSE, {**script, 4: [(-0.5, block)]}, blocks)
        assert bool(just_absent[3].visible[0])
