"""The robust policy's return checks (issue 25, round 9) on constructed cases: ``confirmed_return``
(a hesitant re-appearance waits for a second frame that agrees, and the withheld frame is learnt
neither as the object nor as absent) and ``return_onto_other`` (a hesitant re-appearance on
another tracked object's mask is refused, one in open space is not); in decisions, in the batched
coverage measure, and in the tracker with a scripted decoder."""

import numpy as np
import pytest
import torch

import sam2_model
from sam2_model.return_evidence import box_iou, covered_shares
from sam2_model.robust_memory import RobustObjectState, decide
from sam2_model.robust_options import MemoryPolicyError, RobustMemoryOptions, parse_memory_policy
from sam2_model.sam2 import NO_OBJECT_LOGIT

from micro_session import model, session  # noqa: F401
from test_robust_memory import box_at, scripted_decoder, seen, tracked_then_hidden

CONFIRM = "robust+confirmed_return"
ONTO = "robust+return_onto_other"


# ---------------------------------------------------------------- options


def test_policy_strings_and_thresholds():
    options = parse_memory_policy("robust+confirmed_return,confirm_min_score=2,confirm_min_iou=0.5")
    assert options.components == ["kalman", "motion_gate", "last_seen", "appearance_memory", "confirmed_return",
                                  "colour_check", "colour_drift", "reacquire", "steady_size", "edge_return", "colour_anchor",
                                  "exposure", "colour_cut", "reacquire_cut", "reacquire_close"]
    assert (options.confirm_min_score, options.confirm_min_iou) == (2.0, 0.5)
    options = parse_memory_policy("robust:return_onto_other,onto_other_min_share=0.7,onto_other_min_score=3")
    assert options.components == ["return_onto_other"]  # needs no filter
    assert (options.onto_other_min_share, options.onto_other_min_score) == (0.7, 3.0)
    assert not RobustMemoryOptions().confirmed_return and not RobustMemoryOptions().return_onto_other
    with pytest.raises(MemoryPolicyError, match="confirm_min_iou 1.5 must be within"):
        parse_memory_policy("robust+confirmed_return,confirm_min_iou=1.5")
    with pytest.raises(MemoryPolicyError, match="onto_other_min_share -0.1 must be within"):
        parse_memory_policy("robust+return_onto_other,onto_other_min_share=-0.1")


# ---------------------------------------------------------------- evidence


def test_box_iou_is_the_area_formula():
    a, b = np.array([0.0, 0.0, 4.0, 2.0]), np.array([2.0, 0.0, 6.0, 2.0])  # areas 8 and 8, overlap 4
    assert box_iou(a, b) == pytest.approx(4 / 12)
    assert box_iou(a, a) == 1.0
    assert box_iou(a, np.array([10.0, 10.0, 12.0, 12.0])) == 0.0
    assert box_iou(np.zeros(4), np.zeros(4)) == 0.0


def masks(*rows, side=16):
    """``[N, 1, side, side]`` logits, +5 on each row's blocks (y0, y1, x0, x1), -5 elsewhere."""
    out = torch.full((len(rows), 1, side, side), -5.0)
    for n, blocks in enumerate(rows):
        for y0, y1, x0, x1 in blocks:
            out[n, 0, y0:y1, x0:x1] = 5.0
    return out


def test_covered_share_counts_only_established_visible_others():
    # Object 0 (established) on a 4 x 4 block; object 1 (returning) covers 8 cells, 4 of them on 0;
    # object 2 (returning too) lies wholly on object 1: no reference for it, since 1 is returning.
    logits = masks([(0, 4, 0, 4)], [(0, 4, 2, 4), (4, 8, 2, 4)], [(4, 6, 2, 4)], [])
    scores = torch.tensor([3.0, 3.0, 3.0, -2.0])
    shares = covered_shares(logits, scores, [True, False, False, True])
    assert shares.tolist() == pytest.approx([0.0, 0.5, 0.0, 0.0])  # the empty mask: 0
    # An established object called absent now is no reference either.
    assert covered_shares(logits, torch.tensor([-1.0, 3.0, 3.0, -2.0]), [True, False, False, True])[1] == 0.0
    # Its own mask never counts: two established objects on one place cover each other wholly.
    same = masks([(0, 4, 0, 4)], [(0, 4, 0, 4)])
    assert covered_shares(same, torch.tensor([1.0, 1.0]), [True, True]).tolist() == [1.0, 1.0]


# ---------------------------------------------------------------- decisions


def tracked_visible(options):
    """An object moving 2 cells right per frame, visible on every frame so far (at x 22)."""
    state = RobustObjectState()
    state.start(box_at(10, 30), options)
    for t in range(1, 7):
        assert decide(state, seen(box_at(10 + 2 * t, 30)), options).accepted
    return state


def test_confirmed_return_waits_for_a_second_frame_that_agrees():
    options = parse_memory_policy(CONFIRM)
    state, _ = tracked_then_hidden(options, hidden=2)
    first = decide(state, seen(box_at(28, 30), score=0.4), options)
    assert not first.accepted and not first.admitted  # withheld: no output, no memory at all
    assert state.frames_hidden == 3 and first.predicted_box is not None
    # The next frame shows it again where it was (box IoU 0.67 >= 0.3): taken, score notwithstanding.
    second = decide(state, seen(box_at(30, 30), score=0.4), options)
    assert second.accepted and second.admitted and state.frames_hidden == 0
    assert state.pending_box is None


def test_confirmed_return_never_takes_a_flicker():
    options = parse_memory_policy(CONFIRM)
    state, _ = tracked_then_hidden(options, hidden=2)
    assert not decide(state, seen(box_at(28, 30), score=0.4), options).accepted
    hidden = decide(state, seen(None, visible=False, score=-3.0), options)  # gone again
    assert hidden.accepted and hidden.admitted and state.pending_box is None  # absence is learnt
    # Elsewhere on the next frame (no overlap with the withheld box): withheld anew.
    assert not decide(state, seen(box_at(28, 30), score=0.4), options).accepted
    elsewhere = decide(state, seen(box_at(28, 44), score=0.4), options)
    assert not elsewhere.accepted and not elsewhere.admitted
    np.testing.assert_allclose(state.pending_box, box_at(28, 44))


@pytest.mark.parametrize(("score", "accepted"), [(0.99, False), (1.0, True), (4.0, True)])
def test_confirmed_return_takes_a_confident_return_at_once(score, accepted):
    options = parse_memory_policy(CONFIRM)
    state, _ = tracked_then_hidden(options, hidden=2)
    assert decide(state, seen(box_at(28, 30), score=score), options).accepted is accepted
    # Not a return: a hesitant frame after a visible one is taken.
    state = tracked_visible(options)
    assert decide(state, seen(box_at(24, 30), score=0.2), options).accepted


@pytest.mark.parametrize(("covered", "score", "accepted"),
                         [(0.8, 0.5, False), (0.5, 0.99, False), (0.49, 0.5, True), (0.0, 0.1, True), (0.9, 1.0, True)])
def test_return_onto_other_refuses_a_hesitant_return_on_another_object(covered, score, accepted):
    """Refused (and remembered as absent) only when the returning mask lies mostly on other tracked
    objects (share >= 0.5) and its object score is below 1; a return in open space is taken at
    any score, a confident one anywhere."""
    options = parse_memory_policy(ONTO)
    state, _ = tracked_then_hidden(options, hidden=2)
    observed = seen(box_at(28, 30), score=score)
    observed.covered = covered
    decision = decide(state, observed, options)
    assert decision.accepted is accepted and decision.admitted
    # Plain robust takes it in every case, and a visible-after-visible frame is never asked.
    plain = RobustMemoryOptions()
    state, _ = tracked_then_hidden(plain, hidden=2)
    assert decide(state, observed, plain).accepted
    state = tracked_visible(options)
    assert decide(state, observed, options).accepted


def test_a_prompt_forgets_a_withheld_return():
    options = parse_memory_policy(CONFIRM)
    state, _ = tracked_then_hidden(options, hidden=2)
    decide(state, seen(box_at(28, 30), score=0.4), options)
    state.restart_from_prompt()
    assert state.pending_box is None


# ---------------------------------------------------------------- the tracker


def scripted_objects(model, script):
    """The model with its tracking decoder replaced: ``script[t]`` = per object (tracker order) a
    (object-score logit, block (y0, y1, x0, x1) or None) on tracked frame t (1-based)."""
    side = model.image_size // 4

    def masks_on(t):
        rows = script[t]
        low = torch.full((len(rows), 1, side, side), NO_OBJECT_LOGIT)
        for n, (_, block) in enumerate(rows):
            if block is not None:
                y0, y1, x0, x1 = block
                low[n, 0, y0:y1, x0:x1] = 8.0
        return low, torch.tensor([[score] for score, _ in rows])

    return scripted_decoder(model, masks_on)


def hidden_then_onto_still_object(return_score):
    """Two objects' script and first blocks: 2 sits still at rows 40-49; 1 moves on frames 1-3, is
    hidden on 4-6, appears on object 2's place on frame 7 and back in open space on frame 8, both
    with ``return_score``."""
    still = (4.0, (40, 50, 10, 20))
    script = {t: [(4.0, (10, 20, 10 + t, 20 + t)), still] for t in (1, 2, 3)}
    script.update({t: [(-4.0, None), still] for t in (4, 5, 6)})
    script[7] = [(return_score, (40, 50, 10, 20)), still]
    script[8] = [(return_score, (10, 20, 18, 28)), still]
    return script, [(10, 20, 10, 20), (40, 50, 10, 20)]


def tracked(model, session, monkeypatch, policy, script, blocks):
    """A tracker under ``policy`` whose objects 1, 2, ... are prompted on frame 0 with the masks
    of ``blocks`` (low-resolution cells), then track the frames ``script`` scripts."""
    frames = [f.numpy() for f in session["frames"]]
    side = model.image_size // 4
    scale = frames[0].shape[0] / side
    tracker = sam2_model.StreamingTracker(model, fill_hole_area=0, memory_policy=policy)
    tracker.track(frames[0])
    for obj_id, (y0, y1, x0, x1) in enumerate(blocks, start=1):
        prompt = np.zeros(frames[0].shape[:2], bool)
        prompt[int(y0 * scale):int(y1 * scale), int(x0 * scale):int(x1 * scale)] = True
        tracker.add_prompt(obj_id, mask=prompt)
    monkeypatch.setattr(model, "predict_masks", scripted_objects(model, script))
    results = [tracker.track(frames[t % len(frames)]) for t in range(1, len(script) + 1)]
    monkeypatch.undo()
    return tracker, results


def absent_pointer(model):
    return model.absent_pointer(torch.ones(1, model.hidden_dim))[0]


def test_tracker_takes_a_true_return_on_its_second_frame(model, session, monkeypatch):
    """One object: visible on frames 1-3, hidden 4-6, back with a low score (0.5) on 7 and 8. Under
    confirmed_return frame 7 is not output and stored nowhere; frame 8 is output and stored as
    visible. Plain robust outputs frame 7 already."""
    script = {t: [(4.0, (10, 20, 10 + t, 20 + t))] for t in (1, 2, 3)}
    script.update({t: [(-4.0, None)] for t in (4, 5, 6)})
    script.update({t: [(0.5, (10, 20, 10 + t, 20 + t))] for t in (7, 8)})
    tracker, results = tracked(model, session, monkeypatch, CONFIRM, script, [(10, 20, 10, 20)])
    assert [bool(r.visible[0]) for r in results] == [True] * 3 + [False] * 4 + [True]
    assert not results[6].masks.any() and results[6].predicted_boxes[0] is not None
    memory = tracker._objects[1].recent
    assert 7 not in memory and 8 in memory  # a gap, not an absent frame
    assert not torch.allclose(memory[8].obj_ptr, absent_pointer(model))
    _, plain = tracked(model, session, monkeypatch, "robust", script, [(10, 20, 10, 20)])
    assert [bool(r.visible[0]) for r in plain] == [True] * 3 + [False] * 3 + [True] * 2


def test_tracker_never_outputs_a_one_frame_look_alike(model, session, monkeypatch):
    script = {t: [(4.0, (10, 20, 10 + t, 20 + t))] for t in (1, 2, 3)}
    script.update({t: [(-4.0, None)] for t in (4, 5, 6, 8)})
    script[7] = [(0.5, (10, 20, 17, 27))]
    tracker, results = tracked(model, session, monkeypatch, CONFIRM, script, [(10, 20, 10, 20)])
    assert [bool(r.visible[0]) for r in results] == [True] * 3 + [False] * 5
    assert 7 not in tracker._objects[1].recent
    assert torch.allclose(tracker._objects[1].recent[8].obj_ptr, absent_pointer(model))


def test_tracker_refuses_a_look_alike_on_another_tracked_object(model, session, monkeypatch):
    """Two objects: 2 sits still at rows 40-49; 1 is visible on frames 1-3, hidden 4-6, and on
    frame 7 a hesitant mask (score 0.5) appears on object 2's place: refused under
    return_onto_other (output absent, remembered as absent), taken by plain robust. On frame 8
    object 1 returns hesitantly in open space: taken."""
    script, blocks = hidden_then_onto_still_object(return_score=0.5)
    tracker, results = tracked(model, session, monkeypatch, ONTO, script, blocks)
    assert [bool(r.visible[0]) for r in results] == [True] * 3 + [False] * 4 + [True]
    assert all(bool(r.visible[1]) for r in results)  # object 2 untouched
    assert not results[6].masks[0].any()
    assert torch.allclose(tracker._objects[1].recent[7].obj_ptr, absent_pointer(model))
    _, plain = tracked(model, session, monkeypatch, "robust", script, blocks)
    assert bool(plain[6].visible[0])  # the look-alike is taken without the check
