"""TrackerOptions: one source of the tracker's defaults; the model YAML's video-predictor keys take
effect (official meaning), explicit values win over them; compile_image_encoder compiles."""

from __future__ import annotations

import pytest
import torch
import yaml

import sam2_model
from sam2_model import TrackerOptions, TrackerOptionsError
from sam2_model.config import ConfigError, config_from_yaml_document
from sam2_model.tracker_options import model_option_names, option_help, option_names

from micro_session import session  # noqa: F401
from parity_sessions import (EXTRA_SESSION_FILES, LOGIT_TOLERANCE, build_session_model, load_session, make_tracker,
                             replay)

# Each tracker option the model YAML carries, with the YAML key of the official video predictor.
YAML_KEYS = {"fill_hole_area": "fill_hole_area", "non_overlap_masks": "non_overlap_masks",
             "corrections_as_cond": "add_all_frames_to_correct_as_cond",
             "clear_non_cond_mem_around_input": "clear_non_cond_mem_around_input"}


def _document(session):
    return yaml.safe_load(session["resolved_config_yaml"])


def _model(session, **model_keys):
    document = _document(session)
    document["model"].update(model_keys)
    return sam2_model.build_model(config_from_yaml_document(document), {"model": session["state_dict"]})


def test_model_yaml_keys_are_the_tracker_defaults_and_explicit_values_win(session):
    assert set(YAML_KEYS) == set(model_option_names())
    chosen = {"fill_hole_area": 5, "non_overlap_masks": True, "add_all_frames_to_correct_as_cond": True,
              "clear_non_cond_mem_around_input": True}
    model = _model(session, **chosen)
    tracker = sam2_model.StreamingTracker(model)
    for option, key in YAML_KEYS.items():
        assert getattr(tracker.options, option) == chosen[key], option
    # An options object (e.g. from a params file) sits above the YAML; an explicit argument above both.
    tracker = sam2_model.StreamingTracker(model, TrackerOptions(fill_hole_area=3, non_overlap_masks=False),
                                          fill_hole_area=1)
    assert tracker.options.fill_hole_area == 1 and tracker.options.non_overlap_masks is False
    assert tracker.options.corrections_as_cond is True  # still the YAML's
    # Options the YAML does not carry keep the class defaults.
    assert tracker.options.max_cond_frames == TrackerOptions().max_cond_frames == 8


def test_fill_hole_area_from_the_yaml_is_the_area_filled(session, monkeypatch):
    import sam2_model.tracker as tracker_module

    areas = []

    def recording_fill_holes(logits, max_area):
        areas.append(max_area)
        return logits

    monkeypatch.setattr(tracker_module, "fill_holes", recording_fill_holes)
    frames = [f.numpy() for f in session["frames"][:2]]
    for yaml_area, explicit, expected in ((400, None, 400), (0, None, None), (0, 5, 5)):
        areas.clear()
        tracker = sam2_model.StreamingTracker(_model(session, fill_hole_area=yaml_area), fill_hole_area=explicit)
        tracker.track(frames[0])
        tracker.add_prompt(1, points=[[76.8, 89.6]], labels=[1])
        tracker.track(frames[1])
        assert areas == ([] if expected is None else [expected, expected]), (yaml_area, explicit)


def test_non_overlap_masks_from_the_yaml(session):
    frames = [f.numpy() for f in session["frames"][:2]]

    def second_frame(tracker):
        tracker.track(frames[0])
        tracker.add_prompt(1, box=[60.0, 60.0, 200.0, 200.0])
        tracker.add_prompt(2, box=[100.0, 100.0, 240.0, 240.0])  # overlaps the first box
        return tracker.track(frames[1])

    from_yaml = second_frame(sam2_model.StreamingTracker(_model(session, non_overlap_masks=True)))
    explicit = second_frame(sam2_model.StreamingTracker(_model(session), non_overlap_masks=True))
    overlapping = second_frame(sam2_model.StreamingTracker(_model(session)))
    assert from_yaml.non_overlap and not overlapping.non_overlap
    assert torch.equal(from_yaml.masks, explicit.masks)
    assert not (from_yaml.masks[0] & from_yaml.masks[1]).any()


def test_corrections_as_cond_from_the_yaml_reproduces_official():
    path = next(p for p in EXTRA_SESSION_FILES if "masks_cond" in p.name)
    recorded = load_session(path)
    assert recorded["predictor_options"]["add_all_frames_to_correct_as_cond"]
    model = build_session_model(recorded)
    assert all(c.max_logit_diff <= LOGIT_TOLERANCE for c in replay(recorded, make_tracker(recorded, model)))
    # The explicit opposite departs from official: the YAML key is what made the replay match.
    worst = max(c.max_logit_diff for c in replay(recorded, make_tracker(recorded, model, corrections_as_cond=False)))
    assert worst > LOGIT_TOLERANCE


def test_clear_non_cond_mem_around_input_reproduces_official():
    """The oracle session has clear_non_cond_mem_around_input: true in its YAML (official 1.1.0 with
    the per-object clearing method it lacks, defined in tools/oracle/make_session.py)."""
    path = next(p for p in EXTRA_SESSION_FILES if "masks_clear" in p.name)
    recorded = load_session(path)
    assert recorded["predictor_options"]["clear_non_cond_mem_around_input"]
    model = build_session_model(recorded)
    comparisons = replay(recorded, make_tracker(recorded, model))
    assert all(c.same_presence and c.max_logit_diff <= LOGIT_TOLERANCE for c in comparisons)
    without = replay(recorded, make_tracker(recorded, model, clear_non_cond_mem_around_input=False))
    assert max(c.max_logit_diff for c in without) > LOGIT_TOLERANCE, "the session does not exercise the option"


def test_compile_image_encoder_compiles_the_encoder(session):
    assert sam2_model.build_model(_model(session).config).image_encoder._compiled_call_impl is None
    compiled = _model(session, compile_image_encoder=True)
    assert compiled.image_encoder._compiled_call_impl is not None


@pytest.mark.slow
def test_compiled_image_encoder_matches_eager(session):
    eager, compiled = _model(session), _model(session, compile_image_encoder=True)
    image = torch.randn(1, 3, 256, 256, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        expected, got = eager.image_encoder(image), compiled.image_encoder(image)
    for a, b in zip(expected.feature_maps, got.feature_maps):
        torch.testing.assert_close(b, a, atol=1e-4, rtol=1e-4)


def test_a_bad_value_in_the_yaml_is_a_config_error(session):
    document = _document(session)
    document["model"]["fill_hole_area"] = -3
    with pytest.raises(ConfigError, match="fill_hole_area -3"):
        config_from_yaml_document(document)


def test_bad_options_are_named(session):
    model = _model(session)
    with pytest.raises(TrackerOptionsError) as error:
        sam2_model.StreamingTracker(model, fill_hole_area=-1, max_cond_frames=0, max_objects=0, autocast="int8")
    for fragment in ("fill_hole_area -1", "max_cond_frames 0", "max_objects 0", "autocast 'int8'"):
        assert fragment in str(error.value)
    with pytest.raises(TrackerOptionsError, match="unknown tracker option.*fill_holes"):
        sam2_model.StreamingTracker(model, fill_holes=3)
    with pytest.raises(TrackerOptionsError, match="non_overlap_masks must be true or false"):
        sam2_model.StreamingTracker(model, non_overlap_masks="yes")


def test_frame_resize_names_are_the_transforms_ones(session):
    from sam2_model.tracker_options import FRAME_RESIZE_METHODS
    from sam2_model.transforms import DEFAULT_FRAME_RESIZE, FrameResize

    assert FRAME_RESIZE_METHODS == tuple(method.value for method in FrameResize)
    assert TrackerOptions().frame_resize == DEFAULT_FRAME_RESIZE.value
    with pytest.raises(TrackerOptionsError, match="frame_resize 'nearest' must be one of"):
        sam2_model.StreamingTracker(_model(session), frame_resize="nearest")


def test_frames_go_where_the_resize_runs(session):
    model = _model(session)
    assert sam2_model.StreamingTracker(model).frame_device == torch.device("cpu")  # Pillow
    assert sam2_model.StreamingTracker(model, frame_resize="pillow_port").frame_device == model.device


def test_every_option_has_a_help_text():
    assert set(option_help()) == set(option_names()) and all(option_help().values())


def test_memory_policy_help_lists_the_default_robust_components():
    """The help text reads the default components off RobustMemoryOptions (it listed round 7's
    three long after colour_check, reacquire, exposure and the rest joined)."""
    from sam2_model.robust_options import RobustMemoryOptions
    from sam2_model.tracker_options import option_help

    text = option_help()["memory_policy"]
    defaults = RobustMemoryOptions().components
    assert f"robust (components {', '.join(defaults)});" in text
    assert {"colour_check", "reacquire", "exposure"} <= set(defaults)
