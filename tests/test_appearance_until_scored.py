"""The robust policy's ``appearance_until_scored`` (issue 25, round 27) on constructed cases: after
reacquire takes an object back (the model still scoring it absent), its appearance memory stays lent
until a frame the model itself scores present is accepted; the options, and the tracker with a
scripted decoder on painted frames."""

import numpy as np
import pytest

from sam2_model.robust_options import MemoryPolicyError, RobustMemoryOptions, parse_memory_policy

from micro_session import model, session  # noqa: F401
from test_colour_check import colour_tracked
from test_reacquire_close import lost_at

UNTIL = "robust+appearance_until_scored"
ON_RED = (10, 20, 13, 23)  # wholly on the red rows: reacquire takes it at -0.5 (its own bar is -1)


def test_appearance_until_scored_options():
    options = parse_memory_policy(UNTIL)
    assert options.appearance_until_scored and "appearance_until_scored" in options.components
    assert not RobustMemoryOptions().appearance_until_scored
    assert not parse_memory_policy("robust").appearance_until_scored
    alone = parse_memory_policy("robust:appearance_until_scored")
    assert alone.components == ["kalman", "appearance_memory", "reacquire", "appearance_until_scored"]
    with pytest.raises(MemoryPolicyError, match="unknown component"):
        parse_memory_policy("robust+appearance_until_scored+appearance_until")


def lent(tracker):
    """Object 1's appearance memories the tracker attends to on the next frame."""
    return tracker._attended_appearance(tracker._objects[1])


def test_appearance_stays_lent_after_a_reacquired_frame(model, monkeypatch):  # noqa: F811
    """Frames 1-3 confidently visible (their looks kept), frame 4 scored -0.5 on red: reacquired. Plain
    robust attends to no appearance memory on frame 5 (the object was accepted); with the component it
    attends to the same ones it would if the object were hidden."""
    script, blocks = lost_at(-0.5, ON_RED)
    tracker, results = colour_tracked(model, monkeypatch, UNTIL, script, blocks)
    plain, plain_results = colour_tracked(model, monkeypatch, "robust", script, blocks)
    assert [bool(r.visible[0]) for r in results] == [True] * 4 == [bool(r.visible[0]) for r in plain_results]
    assert tracker._objects[1].robust.taken_back and not tracker._objects[1].robust.hidden
    assert lent(plain) == []
    kept = tracker._objects[1].robust.appearance.newest_first()
    assert lent(tracker) and [m.frame_index for m in lent(tracker)] == [m.frame_index for m in kept][:len(lent(tracker))]
    assert np.array_equal(results[3].masks[0], plain_results[3].masks[0])  # the frame itself as plain robust's


def test_lending_ends_when_the_model_scores_the_object_present(model, monkeypatch):  # noqa: F811
    script, blocks = lost_at(-0.5, ON_RED)
    script[5] = [(4.0, (10, 20, 14, 24))]
    tracker, results = colour_tracked(model, monkeypatch, UNTIL, script, blocks)
    assert bool(results[4].visible[0])
    assert not tracker._objects[1].robust.taken_back and lent(tracker) == []


def test_lending_goes_on_over_reacquired_frames_and_a_prompt_ends_it(model, monkeypatch):  # noqa: F811
    script, blocks = lost_at(-0.5, ON_RED)
    script[5] = [(-0.5, (10, 20, 14, 24))]
    tracker, _ = colour_tracked(model, monkeypatch, UNTIL, script, blocks)
    assert tracker._objects[1].robust.taken_back and lent(tracker)
    prompt = np.zeros((model.image_size, model.image_size), bool)
    prompt[40:80, 56:96] = True
    tracker.add_prompt(1, mask=prompt)
    assert not tracker._objects[1].robust.taken_back and lent(tracker) == []
