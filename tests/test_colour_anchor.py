"""The robust policy's ``colour_anchor`` (issue 25, round 14) on constructed cases: a confident
frame whose mean colour lies far from the remembered one is not learned, so that a mask sliding
onto an object of another colour while called visible does not carry the remembered colour with
it (the checks then keep guarding the target's colour, not the look-alike's)."""

import numpy as np
import pytest

from sam2_model.colour_check import colour_distance
from sam2_model.robust_memory import RobustObjectState, decide
from sam2_model.robust_options import MemoryPolicyError, RobustMemoryOptions, parse_memory_policy

from test_colour_check import RED, coloured
from test_robust_memory import box_at, seen

# Round 13's robust (without the anchor, drift at 90) and today's; below, no allowance for confident
# frames, so that each distance is compared with the bare threshold.
ROUND_13 = ("robust:kalman+motion_gate+last_seen+appearance_memory+colour_check+colour_drift+reacquire"
            "+steady_size+edge_return,drift_max_distance=90")
PLAIN = f"{ROUND_13},colour_score_allowance=0"
ANCHORED = "robust,colour_score_allowance=0,drift_max_distance=90"
SLID = RED + np.array([0.0, 85.0, 0.0])  # within round 13's drift distance (90), beyond a return's (70)


def test_options():
    defaults = RobustMemoryOptions()
    assert defaults.colour_anchor and defaults.anchor_max_distance == 60.0  # since round 14, chosen over 40
    options = parse_memory_policy("robust,anchor_max_distance=25")
    assert options.colour_anchor and options.anchor_max_distance == 25.0 and options.measures_colour
    assert "colour_anchor" in options.components and "colour_anchor" not in parse_memory_policy(ROUND_13).components
    # It only changes how the colour the checks use is learnt: alone there is nothing to measure for.
    assert not parse_memory_policy("robust:colour_anchor").measures_colour
    with pytest.raises(MemoryPolicyError, match="anchor_max_distance -1.0 must be >= 0"):
        parse_memory_policy("robust,anchor_max_distance=-1")


def red_then_slid(options, slid_frames=10):
    """An object red for 6 frames, then a mask of ``SLID``'s colour (another object) for
    ``slid_frames`` confident frames, accepted as the object (within the drift distance)."""
    state = RobustObjectState()
    state.start(box_at(10, 30), options)
    for t in range(1, 7):
        assert decide(state, coloured(box_at(10 + 2 * t, 30), RED), options).accepted
    for t in range(7, 7 + slid_frames):
        assert decide(state, coloured(box_at(10 + 2 * t, 30), SLID), options).accepted
    return state


def test_a_frame_far_from_the_remembered_colour_is_not_learned():
    anchored, plain = parse_memory_policy(ANCHORED), parse_memory_policy(PLAIN)
    state = red_then_slid(anchored)
    np.testing.assert_allclose(state.colour, RED)
    # Without the anchor the moving average follows the slid mask: 1 - 0.8^10 of the way.
    followed = red_then_slid(plain).colour
    np.testing.assert_allclose(colour_distance(followed, RED), (1 - 0.8 ** 10) * 85.0, rtol=1e-6)


def test_frames_near_the_remembered_colour_are_still_learned():
    """A slow change (light, a turning object) is followed: each frame lies within the anchor."""
    options = parse_memory_policy(ANCHORED)
    state = RobustObjectState()
    state.start(box_at(10, 30), options)
    colour = RED.copy()
    for t in range(1, 30):
        colour = colour + np.array([0.0, 5.0, 0.0])
        assert decide(state, coloured(box_at(10 + t, 30), colour), options).accepted
    assert colour_distance(state.colour, RED) > 100.0  # far from where it started
    assert colour_distance(state.colour, colour) < options.anchor_max_distance
    # Exactly at the distance: learned; just beyond: not.
    for offset, learned in ((0.0, True), (0.5, False)):
        state = RobustObjectState()
        state.start(box_at(10, 30), options)
        decide(state, coloured(box_at(12, 30), RED), options)
        far = RED + np.array([options.anchor_max_distance + offset, 0.0, 0.0])
        decide(state, coloured(box_at(14, 30), far), options)
        assert (not np.allclose(state.colour, RED)) is learned


@pytest.mark.parametrize("policy, red_taken, slid_taken", [(ANCHORED, True, False), (PLAIN, False, True)])
def test_after_a_slide_the_return_check_guards_the_targets_colour(policy, red_taken, slid_taken):
    """After the slide the mask is lost (hidden 2 frames); a return in the object's red is taken
    and one in the slid-onto colour refused with the anchor; without it the other way round."""
    options = parse_memory_policy(policy)
    for colour, taken in ((RED, red_taken), (SLID, slid_taken)):
        state = red_then_slid(options)
        for _ in range(2):
            decide(state, seen(None, visible=False, score=-3.0), options)
        assert decide(state, coloured(box_at(46, 30), colour), options).accepted is taken


def test_the_default_drift_distance_refuses_a_slide_round_13_took():
    """Since round 14 colour drift refuses at 70 (plus 20 per unit of score): a hesitant frame
    (score 0.5) of the slid-onto colour 85 away is refused, as round 13's 90 did not."""
    for policy, taken in (("robust", False), (ROUND_13, True)):
        options = parse_memory_policy(policy)
        state = RobustObjectState()
        state.start(box_at(10, 30), options)
        for t in range(1, 7):
            assert decide(state, coloured(box_at(10 + 2 * t, 30), RED), options).accepted
        assert decide(state, coloured(box_at(24, 30), SLID, score=0.5), options).accepted is taken
