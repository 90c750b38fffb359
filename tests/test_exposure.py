"""The robust policy's ``exposure`` component (issue 25, round 18): colours measured in the units of
the stream's first exposure, so that a camera's exposure change does not make the colour checks
refuse the object itself. The brightness measure, the reference, and the tracker on painted frames
that darken after the prompt (scripted decoder)."""

import dataclasses
import math

import numpy as np
import pytest
import torch

from sam2_model.colour_check import (EXPOSURE_FLOOR, MAX_EXPOSURE_GAIN, ExposureReference, as_shown,
                                     frame_brightness, mask_colours, unclipped)
from sam2_model.robust_memory import RobustObjectState, decide, observations
from sam2_model.robust_options import RobustMemoryOptions, parse_memory_policy

from micro_session import model, session  # noqa: F401
from test_colour_check import RED, colour_tracked, coloured, painted_frames
from test_robust_memory import box_at

# Plain robust before round 18: every component of today's but the exposure.
ROUND_14 = ("robust:kalman+motion_gate+last_seen+appearance_memory+colour_check+colour_drift+reacquire"
            "+steady_size+edge_return+colour_anchor")


def grid_of(rgb_rows):
    """A ``[3, h, w]`` grid, one colour per row band: ``[(rows, (r, g, b)), ...]``."""
    rows = []
    for count, colour in rgb_rows:
        rows += [colour] * count
    column = torch.from_numpy(np.array(rows, dtype=np.float32))  # [h, 3]
    return column.T[:, :, None].expand(3, len(rows), 8).clone()  # [3, h, 8]


def test_brightness_is_the_median_cell_and_scales_with_a_global_gain():
    grid = grid_of([(18, (100.0, 110.0, 120.0)), (2, (250.0, 10.0, 10.0))])
    assert float(frame_brightness(grid)) == pytest.approx(110.0)  # the object's tenth moves no median
    assert float(grid.mean(dim=0).mean()) != pytest.approx(110.0)  # (it would move the mean)
    for gain in (0.3, 0.5, 1.7):
        assert float(frame_brightness(grid * gain)) == pytest.approx(110.0 * gain)


def test_reference_is_the_first_measurable_frame_and_cancels_a_gain():
    first = grid_of([(16, (90.0, 100.0, 110.0)), (4, (220.0, 30.0, 40.0))])
    reference = ExposureReference()
    grid, ceiling = reference.normalise(first)
    assert torch.equal(grid, first) and float(ceiling) == 255.0  # the first frame is the reference: unchanged
    for gain in (0.4, 0.7, 1.0, 2.5):
        grid, ceiling = reference.normalise(first * gain)
        torch.testing.assert_close(grid, first)
        assert float(ceiling) == pytest.approx(255.0 / gain)  # a brighter frame clips lower, in the first's units
    # Beyond the largest factor the scene changed, not the exposure: scaled by the factor only.
    torch.testing.assert_close(reference.normalise(first / 10)[0], first / 10 * MAX_EXPOSURE_GAIN)
    torch.testing.assert_close(reference.normalise(first * 10)[0], first * 10 / MAX_EXPOSURE_GAIN)


def test_a_dark_start_sets_no_reference():
    """Black frames (a camera starting up) pass unscaled and leave the reference to the first frame
    bright enough to measure."""
    reference = ExposureReference()
    black = torch.full((3, 6, 6), EXPOSURE_FLOOR / 2)
    assert torch.equal(reference.normalise(black)[0], black)
    scene = grid_of([(6, (80.0, 90.0, 100.0))])
    assert torch.equal(reference.normalise(scene)[0], scene)
    assert float(reference.level) == pytest.approx(90.0)
    torch.testing.assert_close(reference.normalise(scene * 0.5)[0], scene)


def test_mask_colours_of_a_darkened_frame_come_back_to_the_first():
    side = 16
    first = torch.full((3, side, side), 120.0)
    first[:, 2:6, 2:6] = torch.tensor(RED, dtype=torch.float32)[:, None, None]
    logits = torch.full((1, 1, side, side), -5.0)
    logits[0, 0, 2:6, 2:6] = 5.0
    reference = ExposureReference()
    reference.normalise(first)
    dark, _ = reference.normalise(first * 0.35)
    np.testing.assert_allclose(mask_colours(logits, dark)[0].numpy(), RED, rtol=1e-5)


def test_a_clipped_colour_is_compared_and_learnt_as_the_frame_shows_it():
    """Through an exposure 1.7 times the first's, red (230, 30, 40) clips at 255: brought back to the
    first exposure it reads (150, 30, 40). Compared with the remembered red as such a frame shows it
    (its red channel capped at 150) it is the same colour; and it teaches no duller red."""
    remembered, ceiling = np.array([230.0, 30.0, 40.0]), 255.0 / 1.7
    measured = np.array([ceiling, 30.0, 40.0])
    assert np.linalg.norm(measured - remembered) > 70  # as plain numbers: refused by every colour check
    np.testing.assert_allclose(as_shown(remembered, ceiling), measured)
    np.testing.assert_allclose(unclipped(measured, remembered, ceiling), remembered)
    # An unclipped channel is what it is, however it compares with the remembered one.
    np.testing.assert_allclose(unclipped(np.array([100.0, 60.0, 40.0]), remembered, ceiling), [100.0, 60.0, 40.0])
    np.testing.assert_allclose(as_shown(remembered, 255.0), remembered)  # no clipping at the first exposure


def test_decisions_use_the_frame_ceiling():
    """Colour drift on a visible frame whose red clipped (ceiling 150): kept, and the remembered red
    stays 230; the same numbers from an unclipped frame (no ceiling) are refused."""
    options = parse_memory_policy("robust:kalman+colour_drift+colour_anchor+exposure,colour_score_allowance=0")
    red = np.array([230.0, 30.0, 40.0])
    clipped_red = np.array([150.0, 30.0, 40.0])
    for ceiling, kept in ((150.0, True), (math.inf, False)):
        state = RobustObjectState()
        state.start(box_at(10, 30), options)
        assert decide(state, coloured(box_at(10, 30), red), options).accepted
        np.testing.assert_allclose(state.colour, red)
        frame = dataclasses.replace(coloured(box_at(11, 31), clipped_red), colour_ceiling=ceiling)
        assert decide(state, frame, options).accepted is kept
        np.testing.assert_allclose(state.colour, red)


def test_policy_string():
    assert "exposure" in parse_memory_policy("robust").components
    assert parse_memory_policy(ROUND_14).components[-1] == "colour_anchor"
    assert parse_memory_policy("robust:colour_drift+exposure").components == ["colour_drift", "exposure"]
    assert dataclasses.replace(RobustMemoryOptions(), exposure=True).measures_colour


def darkened(model, count, gain, from_frame):
    """``painted_frames`` whose frames from ``from_frame`` on are scaled by ``gain`` (an exposure change)."""
    frames = painted_frames(model, count)
    for t in range(from_frame, count):
        frames[t] = np.clip(np.rint(frames[t] * gain), 0, 255).astype(np.uint8)
    return frames


def test_tracker_keeps_a_red_object_through_a_darkening(model, monkeypatch):
    """Object 1 on the red band, moving, its mask always on it (score 4: colour drift allows 70 + 4 x
    20 RGB units). From frame 3 the camera darkens to 0.3: red (220, 30, 40) reads (66, 9, 12), 158
    from the remembered red. Round 14's ``robust`` (colour drift, then the colour check on the returns
    it makes) refuses it from then on; with ``exposure`` (plain ``robust`` since round 18) it is
    measured as red and kept, and its remembered colour stays red."""
    script = {t: [(4.0, (10, 20, 10 + t, 20 + t))] for t in range(1, 7)}
    blocks = [(10, 20, 10, 20)]
    frames = darkened(model, len(script) + 1, 0.3, from_frame=3)
    tracker, results = colour_tracked(model, monkeypatch, "robust", script, blocks, frames=frames)
    assert all(bool(r.visible[0]) for r in results)
    assert np.linalg.norm(tracker._objects[1].robust.colour - RED) < 5
    _, plain = colour_tracked(model, monkeypatch, ROUND_14, script, blocks, frames=frames)
    assert [bool(r.visible[0]) for r in plain] == [True, True, False, False, False, False]


def test_reset_forgets_the_reference(model, monkeypatch):
    script = {1: [(4.0, (10, 20, 11, 21))]}
    tracker, _ = colour_tracked(model, monkeypatch, "robust:kalman+colour_drift+exposure", script,
                                [(10, 20, 10, 20)])
    assert tracker._exposure.level is not None and float(tracker._exposure.level) > 0
    tracker.reset()
    assert tracker._exposure.level is None


def test_observations_carry_the_ceiling_beside_every_other_column():
    """The ceiling rides as the host copy's last column: with the unblanked masks' columns too, each
    observation keeps its own numbers and the frame's ceiling; without a ceiling it is unbounded."""
    side = 8
    logits = torch.full((2, 1, side, side), -5.0)
    logits[0, 0, 1:3, 2:5] = 5.0
    unblanked = torch.full((2, 1, side, side), -5.0)
    unblanked[1, 0, 4:7, 0:2] = 5.0
    scores, ious = torch.tensor([[3.0], [-0.5]]), torch.tensor([[0.9], [0.4]])
    colours = torch.tensor([[200.0, 20.0, 30.0], [float("nan")] * 3])
    unblanked_colours = torch.tensor([[float("nan")] * 3, [10.0, 200.0, 40.0]])
    with_ceiling = observations(logits, scores, ious, colours=colours, unblanked_logits=unblanked,
                                unblanked_colours=unblanked_colours, colour_ceiling=torch.tensor(150.0))
    plain = observations(logits, scores, ious, colours=colours, unblanked_logits=unblanked,
                         unblanked_colours=unblanked_colours)
    for seen, bare in zip(with_ceiling, plain):
        assert seen.colour_ceiling == pytest.approx(150.0) and bare.colour_ceiling == math.inf
        # Nothing else moved.
        assert (seen.visible, seen.iou, seen.object_score, seen.area, seen.on_edge) == \
            (bare.visible, bare.iou, bare.object_score, bare.area, bare.on_edge)
        np.testing.assert_array_equal(seen.box, bare.box)
        np.testing.assert_array_equal(seen.colour, bare.colour)
        np.testing.assert_array_equal(seen.unblanked.box, bare.unblanked.box)
        np.testing.assert_array_equal(seen.unblanked.colour, bare.unblanked.colour)
    np.testing.assert_array_equal(with_ceiling[0].box, [2, 1, 5, 3])
    np.testing.assert_array_equal(with_ceiling[1].unblanked.box, [0, 4, 2, 7])
    np.testing.assert_allclose(with_ceiling[1].unblanked.colour, [10.0, 200.0, 40.0])
