"""The robust policy's component gate (issue 25, round 8) on constructed masks and a scripted
decoder: a mask's part far from where the object is expected is cut from the output and from the
memory; a mask of one part, or none of whose parts is near, stays as it is."""

import numpy as np
import pytest
import torch

from sam2_model.component_gate import connected_to, keep_components_near, region_masks
from sam2_model.robust_memory import BoxKalman, RobustObjectState
from sam2_model.robust_options import MemoryPolicyError, RobustMemoryOptions, parse_memory_policy
from sam2_model.sam2 import NO_OBJECT_LOGIT

from micro_session import model, session  # noqa: F401
from test_robust_memory import box_prompted_tracker, scripted_decoder

SIDE = 32
DROP = -99.0


def logits_of(*blocks, side=SIDE):
    """``[1, 1, side, side]`` logits: 5 inside each (y0, y1, x0, x1) block, -5 elsewhere."""
    out = torch.full((1, 1, side, side), -5.0)
    for y0, y1, x0, x1 in blocks:
        out[0, 0, y0:y1, x0:x1] = 5.0
    return out


TARGET = (4, 10, 4, 10)
FAR = (20, 26, 22, 28)
REGION = np.array([3.0, 3.0, 11.0, 11.0])  # x0, y0, x1, y1 around TARGET


def test_a_far_part_is_cut_and_the_target_part_kept():
    logits = logits_of(TARGET, FAR)
    trimmed, rows = keep_components_near(logits, [REGION], DROP)
    expected = logits_of(TARGET)
    expected[0, 0, 20:26, 22:28] = DROP  # the look-alike's cells, and only those
    assert rows == [0]
    assert torch.equal(trimmed, expected)
    assert torch.equal(logits, logits_of(TARGET, FAR))  # the input is not changed in place


def test_one_part_is_left_as_it_is():
    logits = logits_of(TARGET)
    trimmed, rows = keep_components_near(logits, [REGION], DROP)
    assert rows == [] and trimmed is logits


def test_a_mask_with_no_part_in_the_region_stays_whole():
    """A mask that jumped wholly away is the motion and jump gates' question."""
    logits = logits_of(FAR)
    trimmed, rows = keep_components_near(logits, [REGION], DROP)
    assert rows == [] and torch.equal(trimmed, logits)


def test_parts_that_reach_the_region_are_all_kept():
    """An object cut in two by a bar in front of it: both halves reach the expected region."""
    logits = logits_of((4, 10, 2, 6), (4, 10, 8, 12), FAR)
    trimmed, rows = keep_components_near(logits, [REGION], DROP)
    assert rows == [0]
    assert torch.equal(trimmed > 0, logits_of((4, 10, 2, 6), (4, 10, 8, 12)) > 0)


def test_a_part_joined_to_the_target_is_kept_even_far_away():
    """A look-alike the mask reaches through a connected bridge is the same part: kept (the gate
    cannot tell them apart, and says so in its docs); diagonal neighbours count as joined."""
    # down from the target along column 8, across row 20 to the look-alike; one more cell of it
    # touches it only diagonally, at (26, 28)
    bridge = logits_of(TARGET, (9, 21, 8, 9), (20, 21, 8, 22), FAR, (26, 27, 28, 29))
    trimmed, rows = keep_components_near(bridge, [REGION], DROP)
    assert rows == [] and trimmed is bridge


def test_rows_without_a_region_are_untouched():
    logits = torch.cat([logits_of(TARGET, FAR), logits_of(TARGET, FAR)])
    trimmed, rows = keep_components_near(logits, [None, REGION], DROP)
    assert rows == [1]
    assert torch.equal(trimmed[0], logits[0])
    assert not (trimmed[1, 0, 20:26, 22:28] > 0).any()


def test_region_cells_are_those_whose_centres_lie_inside():
    cells = region_masks([np.array([1.0, 2.0, 3.0, 3.4]), None], 5, 6, torch.device("cpu"))
    expected = torch.zeros(2, 1, 5, 6, dtype=torch.bool)
    expected[0, 0, 2:3, 1:3] = True  # row centre 2.5 (3.5 lies past 3.4); column centres 1.5, 2.5
    assert torch.equal(cells, expected)


def test_connected_to_grows_through_the_mask_only():
    mask = torch.zeros(1, 1, 8, 8, dtype=torch.bool)
    mask[0, 0, 1, 1:7] = True  # a long thin part
    mask[0, 0, 5, 5] = True    # an isolated cell
    seeds = torch.zeros_like(mask)
    seeds[0, 0, 1, 1] = True
    reached = connected_to(seeds, mask)
    expected = torch.zeros_like(mask)
    expected[0, 0, 1, 1:7] = True
    assert torch.equal(reached, expected)


# ---------------------------------------------------------------- the object's expected region


def test_peek_is_predict_without_advancing():
    kalman = BoxKalman(np.array([10.0, 10.0, 20.0, 16.0]), 0.05, 0.1)
    kalman.predict()
    kalman.update(np.array([12.0, 10.0, 22.0, 16.0]))
    state, covariance = kalman.state.copy(), kalman.covariance.copy()
    peeked = kalman.peek()
    assert np.array_equal(kalman.state, state) and np.array_equal(kalman.covariance, covariance)
    assert np.allclose(peeked, kalman.predict())


def test_expected_region_holds_the_prediction_and_the_last_box_grown():
    options = RobustMemoryOptions(component_gate=True, component_margin=0.5)
    state = RobustObjectState()
    state.start(np.array([10.0, 10.0, 20.0, 16.0]), options)
    state.kalman.state[4] = 4.0  # moving right 4 cells per frame
    region = state.expected_region(0.5)
    # prediction: x 14-24; last box: x 10-20; grown by half the larger side (10 cells) = 5
    assert np.allclose(region, [10 - 5, 10 - 5, 24 + 5, 16 + 5])
    state.frames_hidden = 1
    assert state.expected_region(0.5) is None  # a hidden object's return is the motion gate's


def test_policy_strings_and_thresholds():
    options = parse_memory_policy("robust:component_gate")
    assert options.component_gate and options.kalman and not options.motion_gate
    options = parse_memory_policy("robust+component_gate,component_margin=1")
    assert options.component_gate and options.appearance_memory and options.component_margin == 1.0
    assert not RobustMemoryOptions().component_gate  # opt-in
    with pytest.raises(MemoryPolicyError, match="component_margin -1.0 must be >= 0"):
        parse_memory_policy("robust+component_gate,component_margin=-1")
    assert "component_gate" in RobustMemoryOptions(kalman=False, motion_gate=False, component_gate=True).problems()[0]


# ---------------------------------------------------------------- in the tracker


def scripted(model, script):
    """The model with its tracking decoder replaced: ``script[t]`` = blocks (y0, y1, x0, x1) of
    object 1's mask on tracked frame t (1-based), in the low-resolution grid."""
    side = model.image_size // 4

    def masks_on(t):
        # +8 on the blocks, the "no object" logit elsewhere: what the gate writes on the cells it
        # cuts, so that a mask cut to the object's part equals the object's part alone.
        return torch.where(logits_of(*script[t], side=side) > 0, 8.0, NO_OBJECT_LOGIT), torch.tensor([[4.0]])

    return scripted_decoder(model, masks_on)


def tracked(model, session, monkeypatch, policy, script, frames_count):
    frames = [f.numpy() for f in session["frames"]]
    tracker = box_prompted_tracker(model, frames, policy, script, monkeypatch, decoder=scripted)
    results = [tracker.track(frames[t % len(frames)]) for t in range(1, frames_count + 1)]
    monkeypatch.undo()
    return tracker, results


def test_the_tracker_cuts_a_far_look_alike_from_output_and_memory(model, session, monkeypatch):
    """Frames 1-3: the object's box (cells 10-19) moving one cell right per frame; on frame 3 the
    mask also holds a look-alike far below. Under the gate, frame 3's output and stored memory
    are those of the object alone (an oracle run whose script never shows the look-alike);
    without it, the look-alike is output and learnt."""
    side = model.image_size // 4
    far = (side - 8, side - 2, side - 8, side - 2)
    with_look_alike = {t: [(10, 20, 10 + t, 20 + t)] for t in (1, 2, 3)}
    with_look_alike[3] = with_look_alike[3] + [far]
    alone = {t: [(10, 20, 10 + t, 20 + t)] for t in (1, 2, 3)}
    gated, gated_results = tracked(model, session, monkeypatch, "robust:component_gate", with_look_alike, 3)
    oracle, oracle_results = tracked(model, session, monkeypatch, "robust:component_gate", alone, 3)
    plain, plain_results = tracked(model, session, monkeypatch, "robust:kalman", with_look_alike, 3)
    assert torch.equal(gated_results[2].low_res_logits > 0, oracle_results[2].low_res_logits > 0)
    assert torch.equal(gated._objects[1].recent[3].features, oracle._objects[1].recent[3].features)
    assert (plain_results[2].low_res_logits[0, 0, far[0]:far[1], far[2]:far[3]] > 0).all()
    assert not torch.equal(plain._objects[1].recent[3].features, oracle._objects[1].recent[3].features)
    # The filter follows the object, not the look-alike: its last box is the object's.
    assert np.allclose(gated._objects[1].robust.last_box, [13, 10, 23, 20])


def test_the_tracker_keeps_a_one_part_mask_exactly(model, session, monkeypatch):
    """A mask of one part near the object: the gate changes nothing (logits and memory)."""
    script = {t: [(10, 20, 10 + t, 20 + t)] for t in (1, 2, 3)}
    gated, gated_results = tracked(model, session, monkeypatch, "robust:component_gate", script, 3)
    plain, plain_results = tracked(model, session, monkeypatch, "robust:kalman", script, 3)
    for a, b in zip(gated_results, plain_results):
        assert torch.equal(a.low_res_logits, b.low_res_logits)
    assert torch.equal(gated._objects[1].recent[3].features, plain._objects[1].recent[3].features)


def test_cut_cells_read_as_absent(model, session, monkeypatch):
    side = model.image_size // 4
    far = (side - 8, side - 2, side - 8, side - 2)
    script = {1: [(10, 20, 11, 21)], 2: [(10, 20, 12, 22), far]}
    _, results = tracked(model, session, monkeypatch, "robust:component_gate", script, 2)
    assert (results[1].low_res_logits[0, 0, far[0]:far[1], far[2]:far[3]] == NO_OBJECT_LOGIT).all()
