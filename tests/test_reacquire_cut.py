"""The robust policy's ``reacquire_cut`` (issue 25, round 22) on constructed cases: where the model
scores an object just absent and the mask it would have output runs from the object onto something of
another colour, reacquire judges that mask's part in the object's colour; the options, and the tracker
(output, object score and memory) with a scripted decoder on painted frames."""

import numpy as np
import pytest
import torch

from sam2_model.robust_options import MemoryPolicyError, RobustMemoryOptions, parse_memory_policy

from micro_session import model, session  # noqa: F401
from test_colour_check import colour_tracked
from test_colour_cut import ROUND_19
from test_return_checks import absent_pointer

CUT = "robust+reacquire_cut"  # in plain robust since round 22


def test_reacquire_cut_options():
    options = parse_memory_policy(CUT)
    assert options.reacquire_cut and options.reacquire and "reacquire_cut" in options.components
    assert RobustMemoryOptions().reacquire_cut and parse_memory_policy("robust") == options  # since round 22
    assert not parse_memory_policy(ROUND_19).reacquire_cut
    # Its thresholds are the colour cut's and reacquire's.
    assert (options.cut_max_distance, options.cut_min_cells, options.reacquire_max_distance) == (40.0, 4, 40.0)
    alone = parse_memory_policy("robust:reacquire_cut")
    assert alone.components == ["kalman", "reacquire", "reacquire_cut"]  # brings reacquire and its filter
    assert RobustMemoryOptions(reacquire=False).problems() == []  # without reacquire it cuts nothing
    with pytest.raises(MemoryPolicyError, match="unknown component"):
        parse_memory_policy("robust+reacquire_cuts")


def lost_over(block):
    """Object 1 (red rows 8-21 of ``painted_frames``) visible on frames 1-3 (score 4: its colour
    learnt), scored just absent (-0.5) on frame 4 with the mask it would have output on ``block``."""
    script = {t: [(4.0, (10, 20, 10 + t, 20 + t))] for t in (1, 2, 3)}
    script[4] = [(-0.5, block)]
    return script, [(10, 20, 10, 20)]


def test_a_just_absent_mask_running_onto_grey_is_reacquired_by_its_red_part(model, monkeypatch):  # noqa: F811
    """Frame 4's unblanked mask covers red rows 10-21 and grey rows 22-34 (mean colour about 84 from
    red, beyond reacquire's 40): round 19's robust leaves the object absent; with reacquire_cut the output
    is the red rows, as a decoder that made only them, scored present, would give, and the frame's
    memory holds the ungated pointer of a visible frame."""
    script, blocks = lost_over((10, 35, 13, 23))
    tracker, results = colour_tracked(model, monkeypatch, CUT, script, blocks)
    assert [bool(r.visible[0]) for r in results] == [True] * 4
    _, present = colour_tracked(model, monkeypatch, ROUND_19, {**script, 4: [(0.5, (10, 22, 13, 23))]}, blocks)
    assert results[3].masks[0].any() and np.array_equal(results[3].masks[0], present[3].masks[0])
    assert float(results[3].object_score_logits[0]) == pytest.approx(0.5)
    memory = tracker._objects[1].recent
    assert torch.allclose(memory[4].obj_ptr, torch.ones_like(memory[4].obj_ptr))
    plain_tracker, plain = colour_tracked(model, monkeypatch, ROUND_19, script, blocks)
    assert [bool(r.visible[0]) for r in plain] == [True] * 3 + [False]
    assert torch.allclose(plain_tracker._objects[1].recent[4].obj_ptr, absent_pointer(model))


def test_a_just_absent_mask_on_another_colour_stays_absent(model, monkeypatch):  # noqa: F811
    """Frame 4's unblanked mask lies wholly on blue (rows 38-45): nothing in red to keep, absent as
    under round 19's robust; a mask with three red cells on grey keeps fewer than cut_min_cells: absent."""
    for block in ((38, 46, 13, 23), (21, 30, 13, 16)):
        script, blocks = lost_over(block)
        tracker, results = colour_tracked(model, monkeypatch, CUT, script, blocks)
        assert [bool(r.visible[0]) for r in results] == [True] * 3 + [False]
        assert not results[3].masks[0].any() and results[3].predicted_boxes[0] is not None
        assert torch.allclose(tracker._objects[1].recent[4].obj_ptr, absent_pointer(model))


def test_a_mask_reacquire_takes_whole_is_not_cut(model, monkeypatch):  # noqa: F811
    """Frame 4's unblanked mask covers red rows 10-21 and grey rows 22-23 (mean colour about 23 from
    red, within reacquire's 40): reacquired whole, grey rows too, exactly as under round 19's robust."""
    script, blocks = lost_over((10, 24, 13, 23))
    _, results = colour_tracked(model, monkeypatch, CUT, script, blocks)
    _, plain = colour_tracked(model, monkeypatch, ROUND_19, script, blocks)
    assert bool(results[3].visible[0]) and bool(plain[3].visible[0])
    assert np.array_equal(results[3].masks[0], plain[3].masks[0])
    rows = np.nonzero(np.asarray(results[3].masks[0]).any(axis=1))[0]
    assert rows.max() >= 22 * 4  # the grey grid rows 22-23 (4 pixels each) kept
