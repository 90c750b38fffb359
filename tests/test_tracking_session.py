"""TrackingSession against its oracle: the same calls made directly on a StreamingTracker, the mask
generator and frame_summary (what the tracker node did before the session existed)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import sam2_model
from sam2_model.discovery import DISCOVERY_GENERATOR_OPTIONS, DiscoveryError, DiscoveryOptions, discover_objects
from sam2_model.frame_summary import summarize_frame
from sam2_model.session_types import MAX_OBJECT_ID, next_free_ids
from sam2_model.tracking_session import DiscoveryOutcome, Outputs, PromptSpec, TrackingSession

from session_checks import assert_same_frame, centre_click, first_target_box, model, scene  # noqa: F401

ALL = Outputs(crops=True, labels=True, tinted=True)


def _pair(model):
    """(session, oracle tracker): two trackers on one model, same options."""
    session = TrackingSession(sam2_model.StreamingTracker(model),
                              sam2_model.AutomaticMaskGenerator(model, DISCOVERY_GENERATOR_OPTIONS))
    return session, sam2_model.StreamingTracker(model)


def _oracle(result, outputs: Outputs, frame):
    labels = outputs.labels or outputs.tinted
    return summarize_frame(result, labels=labels, crops=outputs.crops,
                           picture=torch.from_numpy(frame.copy()) if outputs.tinted else None)


def test_track_prompts_remove_reset_match_the_tracker(model):
    frames, labels = scene()
    session, tracker = _pair(model)
    steps = [
        ("track", 0, Outputs()),
        ("points", 1, dict(points=centre_click(labels[0], 1), labels=[1])),
        ("box", 2, dict(box=first_target_box(labels[0], 2))),
        ("track", 1, ALL),
        ("points", 1, dict(points=centre_click(labels[1], 1), labels=[1], clear_old_points=False)),
        ("mask", 7, dict(mask=labels[1] == 2)),
        ("track", 2, Outputs(crops=False, labels=True)),
        ("remove", 2, None),
        ("track", 3, ALL),
        ("reset", None, None),
        ("track", 4, Outputs()),
        ("points", 3, dict(points=centre_click(labels[4], 1), labels=[1], box=first_target_box(labels[4], 1))),
        ("track", 5, ALL),
    ]
    last_frame = None
    for k, (kind, arg, extra) in enumerate(steps):
        where = f"step {k} ({kind})"
        if kind == "track":
            last_frame = frames[arg]
            got = session.track(frames[arg], extra)
            expected = _oracle(tracker.track(torch.from_numpy(frames[arg].copy())), extra, frames[arg])
        elif kind == "remove":
            session.remove_object(arg)
            tracker.remove_object(arg)
            got, expected = session.current(ALL), _oracle(tracker.current_result(), ALL, last_frame)
        elif kind == "reset":
            session.reset()
            tracker.reset()
            assert session.obj_ids == [] and not session.has_frame and session.frames_tracked == 0
            continue
        else:
            kwargs = dict(extra)
            clear = kwargs.pop("clear_old_points", True)
            got = session.add_prompt(arg, PromptSpec(clear_old_points=clear, **kwargs), ALL)
            expected = _oracle(tracker.add_prompt(arg, clear_old_points=clear, **kwargs), ALL, last_frame)
        assert_same_frame(got, expected, where)
        assert session.obj_ids == tracker.obj_ids, where
        assert session.memory_bytes() == tracker.memory_bytes(), where
    assert session.frames_tracked == 2 and session.frame_hw == frames.shape[1:3]


def test_refused_calls_name_the_problem_and_change_nothing(model):
    frames, labels = scene()
    session, _ = _pair(model)
    with pytest.raises(sam2_model.TrackingError, match="no image yet"):
        session.add_prompt(1, PromptSpec(points=[[1, 1]], labels=[1]))
    with pytest.raises(sam2_model.TrackingError, match="no image yet"):
        session.discover(DiscoveryOptions(), None, 0, 1)
    session.track(frames[0])
    session.add_prompt(1, PromptSpec(points=centre_click(labels[0], 1), labels=[1]))
    before = session.current(ALL)
    for object_id in (0, -3, True, 1.5, MAX_OBJECT_ID + 1):
        with pytest.raises(sam2_model.PromptError, match="positive int"):
            session.add_prompt(object_id, PromptSpec(points=[[1, 1]], labels=[1]))
    with pytest.raises(sam2_model.PromptError, match="outside"):
        session.add_prompt(1, PromptSpec(points=[[10_000, 1]], labels=[1]))
    with pytest.raises(sam2_model.PromptError, match="empty prompt"):
        session.add_prompt(2, PromptSpec())
    with pytest.raises(sam2_model.UnknownObjectError):
        session.remove_object(9)
    with pytest.raises(DiscoveryError, match="max_new"):
        session.discover(DiscoveryOptions(), None, -1, 2)
    with pytest.raises(DiscoveryError, match="region"):
        session.discover(DiscoveryOptions(), (0, 0, 10_000, 5), 0, 2)
    with pytest.raises(DiscoveryError, match="min_area"):
        session.discover(DiscoveryOptions(min_area=0.9, max_area=0.1), None, 0, 2)
    with pytest.raises(sam2_model.FrameError):
        session.track(np.zeros((4, 4), np.uint8))
    # A list or None raised AttributeError (.to), an object array a TypeError.
    for frame, message in (([[1, 2, 3]], "numpy array or torch tensor, got list"),
                           (None, "numpy array or torch tensor, got NoneType"),
                           (np.full((4, 4, 3), None), "uint8 RGB, got dtype object")):
        with pytest.raises(sam2_model.FrameError, match=message):
            session.track(frame)
    assert session.frames_tracked == 1
    # add_prompt's id check: True and 1.0 equal 1, and removed object 1.
    for object_id in (True, 1.0, 0):
        with pytest.raises(sam2_model.PromptError, match="positive int"):
            session.remove_object(object_id)
    assert session.obj_ids == [1]
    assert_same_frame(session.current(ALL), before, "after refusals")
    without = TrackingSession(sam2_model.StreamingTracker(model))
    without.track(frames[0])
    with pytest.raises(DiscoveryError, match="no mask generator"):
        without.discover(DiscoveryOptions(), None, 0, 1)


def test_discovery_matches_generator_selection_and_prompts(model):
    frames, labels = scene()
    session, tracker = _pair(model)
    generator = sam2_model.AutomaticMaskGenerator(model, DISCOVERY_GENERATOR_OPTIONS)
    options = DiscoveryOptions()
    session.track(frames[0])
    tracker.track(torch.from_numpy(frames[0].copy()))
    # Object 4 tracked already: new ids start above it even though first_id is 2.
    click = dict(points=centre_click(labels[0], 1), labels=[1])
    session.add_prompt(4, PromptSpec(**click))
    tracker.add_prompt(4, **click)

    outcome = session.discover(options, None, 0, 2, outputs=ALL)

    generated = generator.generate(torch.from_numpy(frames[0].copy()))
    picked = discover_objects(tracker.current_result().masks.cpu().numpy(), generated, options,
                              limit=tracker.options.max_objects)
    assert picked, "the scene should have something new for the generator to find"
    expected_ids = list(range(5, 5 + len(picked)))
    for object_id, mask in zip(expected_ids, picked):
        tracker.add_prompt(object_id, mask=mask.segmentation)
    assert isinstance(outcome, DiscoveryOutcome)
    assert outcome.object_ids == expected_ids and outcome.generated == len(generated) and not outcome.full
    assert outcome.duration_ms > 0 and expected_ids[0] in [int(i) for i in session.obj_ids]
    assert_same_frame(outcome.frame, _oracle(tracker.current_result(), ALL, frames[0]), "after discovery")
    # Next frame: the discovered objects are tracked like prompted ones.
    expected = _oracle(tracker.track(torch.from_numpy(frames[1].copy())), ALL, frames[1])
    assert_same_frame(session.track(frames[1], ALL), expected, "frame after discovery")
    # max_new limits, and without outputs no frame is summarized.
    session.reset()
    session.track(frames[0])
    limited = session.discover(options, None, 1, 1)
    assert limited.object_ids == [1] and limited.frame is None


def test_discovery_stops_at_max_objects(model):
    frames, _ = scene()
    session = TrackingSession(sam2_model.StreamingTracker(model, max_objects=1),
                              sam2_model.AutomaticMaskGenerator(model, DISCOVERY_GENERATOR_OPTIONS))
    session.track(frames[0])
    outcome = session.discover(DiscoveryOptions(), None, 0, 1)
    assert outcome.object_ids == [1] and outcome.full
    with pytest.raises(DiscoveryError, match="maximum of 1"):
        session.discover(DiscoveryOptions(), None, 0, 2)


def test_new_ids_count_up_skip_ids_in_use_and_wrap():
    assert next_free_ids(1, [], 3) == [1, 2, 3]
    assert next_free_ids(3, [5], 2) == [6, 7]
    assert next_free_ids(9, [2], 1) == [9]
    assert next_free_ids(MAX_OBJECT_ID, [1], 3) == [MAX_OBJECT_ID, 2, 3]


def test_encode_then_track_encoded_is_track_and_batches_match(model):
    """The server's split: one frame through encode + track_encoded is track bit for bit; frames of
    two trackers encoded in one batch agree with one at a time to float32 rounding."""
    frames, labels = scene()
    direct, split = sam2_model.StreamingTracker(model), sam2_model.StreamingTracker(model)
    other = sam2_model.StreamingTracker(model)
    for t in range(3):
        frame = torch.from_numpy(frames[t].copy())
        expected = direct.track(frame)
        prepared = split.prepare_frame(frame)
        got = split.track_encoded(prepared, split.encode([prepared])[0])
        if t == 0:
            click = dict(points=centre_click(labels[0], 1), labels=[1])
            expected, got = direct.add_prompt(1, **click), split.add_prompt(1, **click)
        assert torch.equal(got.low_res_logits, expected.low_res_logits)
        assert torch.equal(got.object_score_logits, expected.object_score_logits)
    assert split.encode_key == other.encode_key
    mine = split.prepare_frame(torch.from_numpy(frames[3].copy()))
    theirs = other.prepare_frame(torch.from_numpy(frames[4].copy()))
    batched = split.encode([mine, theirs])
    for prepared, features in zip((mine, theirs), batched):
        single = split.encode([prepared])[0]
        assert features.image_embed.shape == single.image_embed.shape
        torch.testing.assert_close(features.image_embed, single.image_embed, atol=1e-5, rtol=1e-5)
        for a, b in zip(features.high_res, single.high_res):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    result = split.track_encoded(mine, batched[0])
    assert result.obj_ids == [1] and result.frame_index == 3


@pytest.mark.parametrize("policies", [("official",) * 3, ("robust", "official", "robust")])
def test_trackers_tracked_together_match_each_alone(model, policies):
    """Several trackers' objects through memory attention, the decoder and the memory encoder in one
    batch (the server's round): the same results as each tracker alone, to float rounding, frame after
    frame, whatever each tracker's memory policy (the robust one decides on its own rows inside the
    batch). The third tracker's object arrives later: its memories then have another length than the
    others' and attend in a pass of their own, until its window fills like theirs."""
    from sam2_model.tracker import track_encoded_together

    frames, labels = scene()
    other_frames, other_labels = scene(seed=4)
    together = [sam2_model.StreamingTracker(model, memory_policy=policy) for policy in policies]
    alone = [sam2_model.StreamingTracker(model, memory_policy=policy) for policy in policies]
    videos = [frames, other_frames, frames]
    for group in (together, alone):
        for tracker, video in zip(group, videos):
            tracker.track(torch.from_numpy(video[0].copy()))
        # Different object counts: two, one, none.
        group[0].add_prompt(1, points=centre_click(labels[0], 1), labels=[1])
        group[0].add_prompt(2, box=first_target_box(labels[0], 2))
        group[1].add_prompt(5, points=centre_click(other_labels[0], 1), labels=[1])
    layouts = []
    for t in range(1, 6):
        prepared = [tracker.prepare_frame(torch.from_numpy(video[t].copy()))
                    for tracker, video in zip(together, videos)]
        features = together[0].encode(prepared)
        layouts.append(len({tracker._memory_batch(list(tracker._objects.values()), t).layout
                            for tracker in together if tracker._objects}))
        results = track_encoded_together(list(zip(together, prepared, features)))
        for tracker, ready, feature, result in zip(alone, prepared, features, results):
            expected = tracker.track_encoded(ready, feature)
            assert result.obj_ids == expected.obj_ids and result.frame_index == expected.frame_index == t
            torch.testing.assert_close(result.low_res_logits, expected.low_res_logits, atol=1e-3, rtol=1e-4)
            torch.testing.assert_close(result.object_score_logits, expected.object_score_logits, atol=1e-3,
                                       rtol=1e-4)
            assert (result.predicted_boxes is None) == (expected.predicted_boxes is None)
            for got, want in zip(result.predicted_boxes or [], expected.predicted_boxes or []):
                assert (got is None) == (want is None)
                if got is not None:
                    np.testing.assert_allclose(got, want, atol=1e-2)
        if t == 2:
            for group in (together, alone):
                group[2].add_prompt(7, points=centre_click(labels[2], 1), labels=[1])
    # Shared layouts (one pass for all), then two layouts once the late object is in.
    assert layouts[0] == 1 and 2 in layouts[2:]
    with pytest.raises(sam2_model.TrackingError, match="share their model"):
        other_model = sam2_model.StreamingTracker(sam2_model.build_model("default"))
        track_encoded_together([(together[0], prepared[0], features[0]), (other_model, prepared[1], features[1])])
