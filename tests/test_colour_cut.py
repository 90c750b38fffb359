"""The robust policy's ``colour_cut`` (issue 25, round 20) on constructed cases: where a gate refuses
a mask the model called visible, the mask's cells in the object's remembered colour are judged in its
place. The cut itself, the decisions, the options, and the tracker with a scripted decoder."""

import dataclasses

import numpy as np
import pytest
import torch

from sam2_model.colour_cut import cells_in_colour, cut_to_colour, trim_far_cells
from sam2_model.robust_memory import advance, judge, judge_cut, settle
from sam2_model.robust_options import MemoryPolicyError, parse_memory_policy
from sam2_model.sam2 import NO_OBJECT_LOGIT

from micro_session import model, session  # noqa: F401
from test_colour_check import BLUE, GREY, RED, colour_tracked, coloured, red_then_hidden
from test_exposure import grid_of
from test_return_checks import absent_pointer, hidden_then_onto_still_object, masks, tracked
from test_robust_memory import box_at

CUT = "robust+colour_cut"  # in plain robust since round 22
_ROUND_19_COMPONENTS = ("robust:kalman+motion_gate+last_seen+appearance_memory+colour_check+colour_drift+reacquire"
                        "+steady_size+edge_return+colour_anchor+exposure")
_BEFORE_ROUND_23 = ",colour_max_distance=70,colour_score_allowance=20"  # the colour check's thresholds until then
ROUND_19 = _ROUND_19_COMPONENTS + _BEFORE_ROUND_23  # robust before round 22: never cuts
ROUND_22 = _ROUND_19_COMPONENTS + "+colour_cut+reacquire_cut" + _BEFORE_ROUND_23  # robust before round 23


# ---------------------------------------------------------------- options


def test_colour_cut_options():
    options = parse_memory_policy(CUT)
    assert options.colour_cut and (options.cut_max_distance, options.cut_min_cells) == (40.0, 4)
    assert parse_memory_policy("robust") == options  # since round 22
    assert parse_memory_policy(ROUND_19) == dataclasses.replace(options, colour_cut=False, reacquire_cut=False,
                                                                reacquire_close=False, colour_max_distance=70.0,
                                                                colour_score_allowance=20.0)
    alone = parse_memory_policy("robust:colour_cut,cut_max_distance=25,cut_min_cells=9")
    assert alone.components == ["colour_cut"] and alone.measures_colour  # it needs a remembered colour
    assert (alone.cut_max_distance, alone.cut_min_cells) == (25.0, 9)
    for bad, message in (("robust,cut_max_distance=-1", "cut_max_distance -1.0 must be >= 0"),
                         ("robust,cut_min_cells=0", "cut_min_cells 0 must be a whole number >= 1"),
                         ("robust,cut_min_cells=2.5", "cut_min_cells needs a whole number")):
        with pytest.raises(MemoryPolicyError, match=message):
            parse_memory_policy(bad)


# ---------------------------------------------------------------- the cut


def test_the_cut_keeps_only_the_mask_cells_in_each_masks_colour():
    # Rows 0-3 red, 4-7 grey, 8-11 blue, 12-15 red again (16 x 16 grid).
    grid = grid_of([(4, RED), (4, GREY), (4, BLUE), (4, RED)])[:, :, :1].expand(3, 16, 16)
    logits = masks([(0, 10, 0, 4)], [(0, 10, 0, 4)], [(6, 16, 8, 12)])
    colours = torch.tensor(np.stack([RED, BLUE, RED]), dtype=torch.float32)
    kept = cells_in_colour(logits, grid, colours, 40.0)
    expected = torch.zeros_like(kept)
    expected[0, 0, 0:4, 0:4] = True      # the red rows under the first mask, not the grey or blue ones
    expected[1, 0, 8:10, 0:4] = True     # the same mask judged for a blue object: its blue rows
    expected[2, 0, 12:16, 8:12] = True   # never a red cell outside the mask (rows 0-3 of that column)
    assert torch.equal(kept, expected)
    cut = cut_to_colour(logits, grid, colours, 40.0, NO_OBJECT_LOGIT)
    assert torch.equal(cut[kept], logits[kept]) and bool((cut[~kept] == NO_OBJECT_LOGIT).all())
    # The distance is inclusive: a cell exactly at it is kept, one just beyond is not.
    shifted = torch.tensor(np.stack([RED + [0.0, 30.0, 0.0]]), dtype=torch.float32)
    assert cells_in_colour(logits[:1], grid, shifted, 30.0)[0, 0, 0:4, 0:4].all()
    assert not cells_in_colour(logits[:1], grid, shifted, 29.9).any()


# ---------------------------------------------------------------- decisions


def refused_then_cut(options, cut_box, cut_colour, cut_area, hidden=0, mixed_box=None):
    """A red object tracked (``hidden`` frames hidden after), then a visible mask half red and half
    blue that a gate refuses; the verdict on its cut (``cut_box``, ``cut_colour``, ``cut_area``
    cells). Returns the state, the refused verdict, the cut's verdict and the predicted box."""
    state = red_then_hidden(options, hidden=hidden)
    colour = state.colour.copy()
    predicted = advance(state, options)
    mixed = coloured(box_at(24, 30) if mixed_box is None else mixed_box, (RED + BLUE) / 2, score=1.0)
    refused = judge(state, mixed, predicted, options)
    assert refused.rejected and not refused.visible
    cut = dataclasses.replace(coloured(cut_box, cut_colour, score=1.0), area=float(cut_area))
    np.testing.assert_allclose(state.colour, colour)  # judging changes nothing
    return state, refused, judge_cut(state, refused, cut, predicted, options), predicted


def test_a_refused_mask_s_part_in_the_object_s_colour_is_taken_and_not_learnt():
    options = parse_memory_policy(CUT)
    state, _, verdict, predicted = refused_then_cut(options, box_at(24, 30, w=6.0), RED + [0.0, 20.0, 0.0], 12)
    assert verdict.visible and verdict.cut and not verdict.rejected
    decision = settle(state, verdict, predicted, options)
    assert decision.accepted and decision.admitted and state.frames_hidden == 0
    # A frame whose cells were chosen by the remembered colour teaches neither colour nor appearance.
    assert not decision.confident
    np.testing.assert_allclose(state.colour, RED)
    np.testing.assert_allclose(state.last_box, box_at(24, 30, w=6.0))


def test_a_cut_too_small_far_or_off_colour_leaves_the_refusal():
    options = parse_memory_policy(CUT)
    for box, colour, area, hidden in ((box_at(24, 30), RED, 3, 0),          # fewer cells than cut_min_cells
                                      (box_at(24, 30), BLUE, 12, 0),        # the cut judged off colour again
                                      (box_at(95, 30), RED, 12, 2)):        # a return beyond the motion gate
        mixed = box_at(95, 30) if hidden else None
        state, refused, verdict, predicted = refused_then_cut(options, box, colour, area, hidden, mixed)
        assert verdict is refused
        assert not settle(state, verdict, predicted, options).accepted
    # Without the component the tracker never asks (tracker test below); with more cells asked, a cut
    # of 12 cells stays refused.
    strict = dataclasses.replace(options, cut_min_cells=13)
    _, refused, verdict, _ = refused_then_cut(strict, box_at(24, 30), RED, 12)
    assert verdict is refused


def test_only_refused_verdicts_are_cut():
    options = parse_memory_policy(CUT)
    state = red_then_hidden(options, hidden=0)
    predicted = advance(state, options)
    accepted = judge(state, coloured(box_at(24, 30), RED), predicted, options)
    cut = dataclasses.replace(coloured(box_at(25, 30), RED), area=12.0)
    assert accepted.visible and judge_cut(state, accepted, cut, predicted, options) is accepted
    withheld = dataclasses.replace(accepted, visible=False, rejected=True, withheld=True)
    assert judge_cut(state, withheld, cut, predicted, options) is withheld
    assert judge_cut(state, dataclasses.replace(accepted, visible=False, rejected=True), None, predicted,
                     options).rejected


# ---------------------------------------------------------------- the tracker


def spread_onto_blue():
    """Object 1 (red rows 8-22 of ``painted_frames``) visible on frames 1-3; on frame 4 its mask,
    called visible at score 1, runs from red row 10 over the grey band to blue row 49 (mean colour
    138 from red, beyond drift's 70 + 20 x 1); on frame 5 it lies wholly on blue."""
    script = {t: [(4.0, (10, 20, 10 + t, 20 + t))] for t in (1, 2, 3)}
    script[4] = [(1.0, (10, 50, 13, 23))]
    script[5] = [(1.0, (40, 50, 13, 23))]
    return script, [(10, 20, 10, 20)]


def test_tracker_outputs_and_remembers_the_part_in_the_object_s_colour(model, monkeypatch):
    """Frame 4 under robust+colour_cut: output and memory are those of a run whose decoder made only the
    mask's red rows (the cut keeps the kept cells' logits and gives the others the "no object"
    logit, as the scripted decoder does); frame 5, wholly on blue, has nothing to cut: refused."""
    script, blocks = spread_onto_blue()
    tracker, results = colour_tracked(model, monkeypatch, CUT, script, blocks)
    assert [bool(r.visible[0]) for r in results] == [True] * 4 + [False]
    red_part = dict(script)
    red_part[4] = [(1.0, (10, 22, 13, 23))]
    reference, expected = colour_tracked(model, monkeypatch, CUT, red_part, blocks)
    assert results[3].masks[0].any() and np.array_equal(results[3].masks[0], expected[3].masks[0])
    memory, reference_memory = tracker._objects[1].recent, reference._objects[1].recent
    assert torch.equal(memory[4].features, reference_memory[4].features)
    assert torch.equal(memory[4].obj_ptr, reference_memory[4].obj_ptr)   # the object's pointer, not absent
    assert not torch.allclose(memory[4].obj_ptr, absent_pointer(model))
    assert torch.allclose(memory[5].obj_ptr, absent_pointer(model))
    # Not learnt from: the remembered colour is the same as after frame 3 in both runs (the
    # reference learns frame 4's red, the cut run does not; red is red either way).
    assert np.abs(tracker._objects[1].robust.colour - RED).max() < 5
    # Round 19's robust refuses frame 4 whole: not output, remembered as absent.
    before, plain = colour_tracked(model, monkeypatch, ROUND_19, script, blocks)
    assert [bool(r.visible[0]) for r in plain] == [True] * 3 + [False] * 2
    assert not plain[3].masks[0].any()
    assert torch.allclose(before._objects[1].recent[4].obj_ptr, absent_pointer(model))


def test_a_hesitant_return_onto_another_object_is_not_cut_through_the_onto_other_check(model, session,
                                                                                      monkeypatch):
    """With return_onto_other too: frame 7's hesitant mask lies on object 2 (refused by that check);
    its cut is judged by the whole mask's share on object 2, so it stays refused and remembered as
    absent (on these frames the mask has cells in object 1's colour there: a cut judged by its own
    share, 0 without a reference mask, was taken)."""
    script, blocks = hidden_then_onto_still_object(return_score=0.5)
    tracker, results = tracked(model, session, monkeypatch, CUT + "+return_onto_other", script, blocks)
    assert [bool(r.visible[0]) for r in results] == [True] * 3 + [False] * 4 + [True]
    assert torch.allclose(tracker._objects[1].recent[7].obj_ptr, absent_pointer(model))


# ---------------------------------------------------------------- colour trim


TRIM = "robust+colour_trim"  # opt-in


def test_trim_options():
    options = parse_memory_policy(TRIM)
    assert options.colour_trim and options.measures_colour and not parse_memory_policy("robust").colour_trim
    assert (options.trim_max_distance, options.trim_margin, options.cut_min_cells) == (100.0, 0.0, 4)
    tuned = parse_memory_policy(TRIM + ",trim_max_distance=130,trim_margin=0.5")
    assert (tuned.trim_max_distance, tuned.trim_margin) == (130.0, 0.5)
    for bad in ("trim_max_distance=-1", "trim_margin=-0.5"):
        with pytest.raises(MemoryPolicyError, match=bad.split("=")[0] + " -"):
            parse_memory_policy(f"{TRIM},{bad}")


def test_trim_cuts_far_cells_outside_the_expected_region_only():
    # Rows 0-3 red, 4-7 grey, 8-11 blue, 12-15 red (16 x 16 grid); every object red.
    grid = grid_of([(4, RED), (4, GREY), (4, BLUE), (4, RED)])[:, :, :1].expand(3, 16, 16)
    logits = masks([(0, 16, 0, 4)], [(0, 16, 0, 4)], [(0, 16, 0, 4)], [(0, 6, 0, 4)])
    colours = torch.tensor(np.stack([RED] * 4), dtype=torch.float32)
    region = np.array([0.0, 0.0, 4.0, 6.0])  # x 0-4, y 0-6: the red rows and two grey ones
    regions = [region, None, np.array([0.0, 0.0, 4.0, 16.0]), region]
    trimmed, rows = trim_far_cells(logits, grid, colours, regions, 100.0, 4, NO_OBJECT_LOGIT)
    assert rows == [0]
    kept = trimmed[0, 0] > 0
    expected = torch.zeros(16, 16, dtype=torch.bool)
    expected[0:6, 0:4] = True     # inside the region: kept whatever its colour (grey rows 4-5)
    expected[12:16, 0:4] = True   # outside but in the object's colour: kept
    assert torch.equal(kept, expected)
    # Cut cells and the other cells outside the region (columns 4-15) get the "no object" logit; the
    # grey cells inside it keep their logits.
    assert bool((trimmed[0, 0, 6:12, 0:4] == NO_OBJECT_LOGIT).all())
    assert bool((trimmed[0, 0, :, 4:] == NO_OBJECT_LOGIT).all()) and bool((trimmed[0, 0, 4:6, 0:4] == 5.0).all())
    # No region (hidden), a region holding the whole mask, nothing far outside: unchanged.
    assert torch.equal(trimmed[1:], logits[1:])
    # A trim that would keep fewer than min_cells cells is not made.
    few = masks([(4, 12, 0, 1)])  # grey and blue cells only, 2 of them inside the region
    same, rows = trim_far_cells(few, grid, colours[:1], [region], 100.0, 4, NO_OBJECT_LOGIT)
    assert rows == [] and same is few
    assert trim_far_cells(few, grid, colours[:1], [region], 100.0, 2, NO_OBJECT_LOGIT)[1] == [0]


def spreading_onto_blue():
    """Object 1 (red rows 8-22 of ``painted_frames``) moving right on frames 1-3; on frame 4 its
    mask, called visible at score 4, runs from red row 10 over the grey band onto blue row 49: its
    mean colour (138 from red) is within drift's 70 + 20 x 4, so plain robust takes it whole."""
    script = {t: [(4.0, (10, 20, 10 + t, 20 + t))] for t in (1, 2, 3)}
    script[4] = [(4.0, (10, 50, 14, 24))]
    return script, [(10, 20, 10, 20)]


def test_tracker_trims_a_mask_spreading_onto_another_colour(model, monkeypatch):
    """Frame 4 under robust+colour_trim: output and memory are those of a run whose decoder made
    only the mask's red rows (the grey and blue cells lie outside the box where object 1 is
    expected); round 22's robust (no trim, a colour check of 70) outputs and learns the whole mask."""
    script, blocks = spreading_onto_blue()
    tracker, results = colour_tracked(model, monkeypatch, TRIM, script, blocks)
    red_part = dict(script)
    red_part[4] = [(4.0, (10, 22, 14, 24))]
    reference, expected = colour_tracked(model, monkeypatch, TRIM, red_part, blocks)
    assert all(bool(r.visible[0]) for r in results)
    assert np.array_equal(results[3].masks[0], expected[3].masks[0])
    assert not results[3].masks[0][40 * 4:].any()  # nothing on the blue rows
    memory, reference_memory = tracker._objects[1].recent, reference._objects[1].recent
    assert torch.equal(memory[4].features, reference_memory[4].features)
    np.testing.assert_allclose(tracker._objects[1].robust.last_box, reference._objects[1].robust.last_box)
    _, plain = colour_tracked(model, monkeypatch, ROUND_22, script, blocks)
    assert bool(plain[3].visible[0]) and plain[3].masks[0][40 * 4:50 * 4].any()
