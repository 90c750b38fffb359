"""The robust policy's ``redetect`` (issue 25, round 15) on constructed cases: where the policy
leaves an object not visible, one click at the best match of its remembered colour where it can be,
decoded on its memory-conditioned features; the mask is taken only if it passes reacquire's tests
and every gate. The click search, the decisions, the options, and the tracker with a scripted
decoder."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sam2_model.colour_check import colour_distance
from sam2_model.redetect import ClickSearch, click_cells, nearest_in_colour, others_masks
from sam2_model.robust_memory import (Observation, Verdict, advance, click_search, decide, judge, judge_redetection,
                                     settle)
from sam2_model.robust_options import MemoryPolicyError, RobustMemoryOptions, parse_memory_policy
from sam2_model.sam2 import NO_OBJECT_LOGIT, MaskPrediction

from micro_session import model, session  # noqa: F401
from test_colour_check import BLUE, GREY, RED, colour_tracked, coloured, red_then_hidden
from test_return_checks import absent_pointer, scripted_objects
from test_robust_memory import box_at, seen

REDETECT = "robust+redetect"


def test_redetect_options():
    options = parse_memory_policy(REDETECT)
    assert options.redetect and options.measures_colour and options.components[-5:] == [
        "redetect", "exposure", "colour_cut", "reacquire_cut", "reacquire_close"]
    assert not RobustMemoryOptions().redetect and not parse_memory_policy("robust").redetect  # opt-in
    assert options.redetect_min_score == RobustMemoryOptions().appearance_min_score == 1.0  # the appearance bar
    assert parse_memory_policy(REDETECT + ",redetect_min_score=0").redetect_min_score == 0.0
    alone = parse_memory_policy("robust:redetect")
    assert alone.components == ["kalman", "redetect"] and alone.measures_colour  # brings its filter
    problem = RobustMemoryOptions(kalman=False, motion_gate=False, reacquire=False, redetect=True).problems()
    assert len(problem) == 1 and "redetect" in problem[0] and "need kalman" in problem[0]
    with pytest.raises(MemoryPolicyError, match="unknown component"):
        parse_memory_policy("robust+redetection")


# ---------------------------------------------------------------- the click search


def grid_with(patches, side=32, background=GREY):
    """A [3, side, side] colour grid: ``background`` with (colour, y0, y1, x0, x1) patches."""
    grid = np.empty((3, side, side), np.float32)
    grid[:] = np.asarray(background, np.float32)[:, None, None]
    for colour, y0, y1, x0, x1 in patches:
        grid[:, y0:y1, x0:x1] = np.asarray(colour, np.float32)[:, None, None]
    return torch.from_numpy(grid)


def test_the_click_goes_to_the_objects_colour_within_reach_and_not_elsewhere():
    # A red patch near (x 20-24, y 10-14) and an exactly red one far away (x 2-6, y 26-30); the near
    # one is a little off red (another light): within reach it is the only choice.
    near_red = RED + np.array([0.0, 15.0, 0.0])
    grid = grid_with([(near_red, 10, 15, 20, 25), (RED, 26, 31, 2, 7)])
    free = torch.zeros(1, 32, 32, dtype=torch.bool)
    search = ClickSearch(RED, [(22.0, 12.0)], reach=6.0)
    (cell,) = click_cells(grid, [search], free, max_distance=40.0)
    assert cell is not None and 20 <= cell[0] <= 25 and 10 <= cell[1] <= 15
    x, y = int(cell[0]), int(cell[1])
    # Inside the patch (the 3 x 3 neighbourhood all near-red), not on its border.
    assert 21 <= x <= 23 and 11 <= y <= 13
    # From the far patch's side both are within reach: the exact colour wins.
    (cell,) = click_cells(grid, [ClickSearch(RED, [(22.0, 12.0), (4.0, 28.0)], reach=6.0)], free, 40.0)
    assert 3 <= cell[0] <= 6 and 27 <= cell[1] <= 30
    # Nothing of its colour within reach, or not within the distance: no click.
    assert click_cells(grid, [ClickSearch(RED, [(12.0, 24.0)], reach=4.0)], free, 40.0) == [None]
    assert click_cells(grid, [search], free, max_distance=10.0) == [None]
    assert click_cells(grid, [], free[:0], 40.0) == []


def test_cells_under_another_objects_mask_are_not_clicked_and_each_object_has_its_search():
    grid = grid_with([(RED, 10, 15, 20, 25), (BLUE, 2, 7, 2, 7)])
    logits = torch.full((3, 1, 32, 32), NO_OBJECT_LOGIT)
    logits[1, 0, 8:16, 18:26] = 8.0  # object 2's mask covers the red patch
    occupied = others_masks(logits, [0, 1])
    assert occupied[0, 12, 22] and not occupied[1, 12, 22]  # an object's own mask is not another's
    searches = [ClickSearch(RED, [(22.0, 12.0)], 6.0), ClickSearch(RED, [(22.0, 12.0)], 6.0)]
    found = click_cells(grid, searches, occupied, 40.0)
    assert found[0] is None and found[1] is not None
    blue = click_cells(grid, [ClickSearch(BLUE, [(4.0, 4.0)], 3.0)], torch.zeros(1, 32, 32, dtype=torch.bool), 40.0)
    assert blue[0] is not None and blue[0][0] < 7 and blue[0][1] < 7


def test_of_the_clicks_candidates_the_one_nearest_the_objects_colour_is_kept():
    grid = grid_with([(RED, 10, 15, 20, 25), (BLUE, 2, 7, 2, 7)])
    candidates = torch.full((2, 3, 32, 32), NO_OBJECT_LOGIT)
    candidates[:, 0, 8:17, 18:27] = 8.0   # the red patch and grey around it (widest)
    candidates[:, 1, 10:15, 20:25] = 8.0  # the red patch
    candidates[1, 2, 2:7, 2:7] = 8.0      # object 2's third: the blue patch; object 1's third is empty
    chosen = nearest_in_colour(candidates, grid, [RED, BLUE])
    assert chosen.tolist() == [1, 2]
    assert nearest_in_colour(torch.full((1, 3, 32, 32), NO_OBJECT_LOGIT), grid, [RED]).tolist() == [0]


# ---------------------------------------------------------------- decisions


def lost_verdict(options, hidden=2):
    """An object red_then_hidden (last at x 22, moving 2 cells a frame), then a frame the model
    scores absent: its state, predicted box and verdict (not visible)."""
    state = red_then_hidden(options, hidden)
    predicted = advance(state, options)
    verdict = judge(state, seen(None, visible=False, score=-3.0), predicted, options)
    assert not verdict.visible and not verdict.rejected
    return state, predicted, verdict


def clicked(box, colour, score=2.0):
    observed = coloured(box, colour, score=score)
    observed.visible = score > 0
    return observed


def test_the_search_is_around_the_predicted_and_the_last_seen_centre_within_reacquires_reach():
    options = parse_memory_policy(REDETECT)
    state, predicted, _ = lost_verdict(options)
    search = click_search(state, predicted, options)
    np.testing.assert_allclose(search.colour, RED)
    assert search.reach == pytest.approx(options.reacquire_gate * state.steady_size) and state.steady_size == 10.0
    (px, py), (lx, ly) = search.centres
    assert (lx, ly) == (22.0, 30.0) and px > lx + 4 and py == pytest.approx(30.0, abs=0.5)  # it moved on
    alone = click_search(state, predicted, parse_memory_policy(REDETECT.replace("robust+", "robust:")))
    assert len(alone.centres) == 1  # without last_seen, the prediction only


def test_a_clicked_mask_in_the_objects_colour_where_it_can_be_is_taken_and_its_colour_not_learnt():
    options = parse_memory_policy(REDETECT)
    state, predicted, verdict = lost_verdict(options)
    near_red = RED + np.array([30.0, 0.0, 0.0])
    found = judge_redetection(state, verdict, clicked(box_at(30, 30), near_red), predicted, options)
    assert found.visible and found.redetected and not found.rejected and not found.reacquired
    decision = settle(state, found, predicted, options)
    assert decision.accepted and decision.redetected and decision.admitted and not decision.confident
    assert state.frames_hidden == 0 and decision.predicted_box is None
    np.testing.assert_allclose(state.colour, RED)  # a guess is not learnt, however sure the decoder is


@pytest.mark.parametrize("case", ["another colour", "beyond reach", "scored absent", "hesitant", "too large", "empty"])
def test_otherwise_the_object_stays_not_visible(case):
    options = parse_memory_policy(REDETECT)
    state, predicted, verdict = lost_verdict(options)
    too_wide = (options.reacquire_max_growth + 1) * state.steady_size
    candidate = {"another colour": clicked(box_at(30, 30), BLUE),
                 "beyond reach": clicked(box_at(70, 30), RED),  # 3 sizes (30 cells) from x 22 / 28
                 "scored absent": clicked(box_at(30, 30), RED, score=-0.5),
                 "hesitant": clicked(box_at(30, 30), RED, score=0.9),  # below redetect_min_score (1)
                 "too large": clicked(box_at(30, 30, w=too_wide), RED),  # past reacquire_max_growth
                 "empty": Observation(True, None, 0.9, 2.0)}[case]
    assert judge_redetection(state, verdict, candidate, predicted, options) is verdict
    decision = settle(state, verdict, predicted, options)
    assert not decision.redetected and state.frames_hidden == 3


def test_a_frame_already_taken_or_withheld_is_not_redetected():
    options = parse_memory_policy(REDETECT)
    state = red_then_hidden(options, hidden=0)
    predicted = advance(state, options)
    taken = judge(state, coloured(box_at(24, 30), RED), predicted, options)
    assert taken.visible
    assert judge_redetection(state, taken, clicked(box_at(24, 30), RED), predicted, options) is taken
    withheld = Verdict(taken.seen, visible=False, rejected=True, withheld=True)
    assert judge_redetection(state, withheld, clicked(box_at(24, 30), RED), predicted, options) is withheld
    assert judge_redetection(state, taken, None, predicted, options) is taken


def test_decide_is_judge_then_settle():
    """The split leaves the policy as it was: the same decisions and state as one call."""
    options = parse_memory_policy("robust")
    one, two = red_then_hidden(options), red_then_hidden(options)
    frame = coloured(box_at(28, 30), RED)
    first = decide(one, frame, options)
    predicted = advance(two, options)
    second = settle(two, judge(two, frame, predicted, options), predicted, options)
    assert first == second
    assert one.frames_hidden == two.frames_hidden and np.allclose(one.kalman.state, two.kalman.state)


# ---------------------------------------------------------------- the tracker


def click_tracked(model, monkeypatch, policy, script, blocks, answers):  # noqa: F811
    """``colour_tracked``, with a one-click call made while tracking (the redetect click) answered
    by ``answers[t](x, y)`` -> (object-score logit, block (y0, y1, x0, x1) in grid cells) on
    tracked frame t (its pointer all 2.0). Returns the tracker, the results, the clicks (t, x, y)
    and the number of objects in each click decoder call."""
    side = model.image_size // 4
    frame = {"t": 0}
    clicks, batches = [], []
    scripted = scripted_objects(model, script)

    def predict_masks(image_embed, high_res, coords=None, labels=None, mask_input=None, multimask=False,
                      choose=None):
        if coords is None or mask_input is not None:
            if coords is None:
                frame["t"] += 1
            return scripted(image_embed, high_res, coords, labels, mask_input, multimask)
        rows = []
        batches.append(len(coords))
        for x, y in (coords[:, 0] * side / model.image_size).tolist():
            clicks.append((frame["t"], x, y))
            rows.append(answers[frame["t"]](x, y))
        low = torch.full((len(rows), 1, side, side), NO_OBJECT_LOGIT)
        for n, (score, (y0, y1, x0, x1)) in enumerate(rows):
            if score > 0:
                low[n, 0, y0:y1, x0:x1] = 8.0
        high = F.interpolate(low, size=(model.image_size,) * 2, mode="bilinear", align_corners=False)
        scores = torch.tensor([[score] for score, _ in rows])
        return MaskPrediction(low, high, torch.full((len(rows),), 0.8), torch.full((len(rows), model.hidden_dim), 2.0),
                              scores)

    tracker, results = colour_tracked(model, monkeypatch, policy, script, blocks, decoder=predict_masks)
    return tracker, results, clicks, batches


def test_tracker_outputs_and_remembers_a_redetected_object(model, monkeypatch):  # noqa: F811
    """Object 1 (on the red band, rows 8-22) moves on frames 1-3; on frame 4 the model's mask for it
    lies on object 2 (blue) and colour drift refuses it. Under redetect one click lands on red near
    where object 1 can be, and the clicked mask (rows 10-20 around the click) is the output, with
    the click decoder's score, and its pointer in memory. On frame 5 the model scores object 1
    absent and the click's answer lies on blue: refused, the object stays absent. Plain robust
    reports frame 4 absent."""
    still = (4.0, (40, 50, 10, 20))
    script = {t: [(4.0, (10, 20, 10 + t, 20 + t)), still] for t in (1, 2, 3)}
    script[4] = [(4.0, (40, 50, 10, 20)), still]
    script[5] = [(-4.0, None), still]
    blocks = [(10, 20, 10, 20), (40, 50, 10, 20)]
    answers = {4: lambda x, y: (2.0, (10, 20, int(x) - 5, int(x) + 5)), 5: lambda x, y: (2.0, (40, 50, 10, 20))}
    tracker, results, clicks, _ = click_tracked(model, monkeypatch, REDETECT, script, blocks, answers)
    assert [bool(r.visible[0]) for r in results] == [True] * 4 + [False]
    assert [t for t, _, _ in clicks] == [4, 5]  # one click per frame the object was lost, none otherwise
    _, x, y = clicks[0]
    assert 8 <= y <= 22 and abs(x - 19) <= 2  # on red, at the cell nearest the predicted centre
    rows = results[3].masks[0].nonzero()[:, 0]
    assert len(rows) and rows.min() >= 10 * 4 - 4 and rows.max() < 20 * 4 + 4  # the clicked block
    assert float(results[3].object_score_logits[0]) == pytest.approx(2.0)
    memory = tracker._objects[1].recent
    assert torch.allclose(memory[4].obj_ptr, torch.full_like(memory[4].obj_ptr, 2.0))
    assert torch.allclose(memory[5].obj_ptr, absent_pointer(model))
    assert colour_distance(tracker._objects[1].robust.colour, RED) < 5
    assert not results[4].masks[0].any() and results[4].predicted_boxes[0] is not None
    assert all(bool(r.visible[1]) for r in results)  # object 2 untouched
    _, plain = colour_tracked(model, monkeypatch, "robust", script, blocks)
    assert [bool(r.visible[0]) for r in plain] == [True] * 3 + [False] * 2


def test_objects_lost_on_the_same_frame_are_clicked_in_one_decoder_pass(model, monkeypatch):  # noqa: F811
    """Object 1 (red band) and object 2 (blue band) both slide onto the other's colour on frame 4
    (colour drift refuses both); each is clicked on its own colour, away from the other's mask, in one
    decoder call of two rows, and each is output on its own band."""
    script = {t: [(4.0, (10, 20, 10 + t, 20 + t)), (4.0, (40, 50, 10, 20))] for t in (1, 2, 3)}
    script[4] = [(4.0, (40, 50, 10, 20)), (4.0, (10, 20, 14, 24))]
    blocks = [(10, 20, 10, 20), (40, 50, 10, 20)]

    def on_band(x, y):  # the band under the click, 10 cells around it
        rows = (10, 20) if y < 30 else (40, 50)
        return 2.0, (*rows, max(int(x) - 5, 0), int(x) + 5)

    _, results, clicks, batches = click_tracked(model, monkeypatch, REDETECT, script, blocks, {4: on_band})
    assert batches == [2] and [bool(v) for v in results[3].visible] == [True, True]
    (_, x1, y1), (_, x2, y2) = clicks
    assert 8 <= y1 <= 22 and 38 <= y2 <= 52  # each on its own colour
    assert not (10 <= x2 <= 20 and 40 <= y2 <= 50)  # not under object 1's (slid) mask
    rows1, rows2 = results[3].masks[0].nonzero()[:, 0], results[3].masks[1].nonzero()[:, 0]
    assert rows1.max() < 22 * 4 and rows2.min() >= 38 * 4
