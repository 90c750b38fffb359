"""ImagePredictor: SAM 2 as an image model, checked against the official image predictor and the
official video predictor's frame-0 outputs."""

from pathlib import Path

import numpy as np
import pytest
import torch

from sam2_model import ImagePredictor, PromptError
from sam2_model.image_predictor import embed_image

from micro_session import model, session  # noqa: F401
from parity_sessions import MICRO_SESSION

# The official SAM2ImagePredictor with the micro session's weights on a square and a 300 x 200 image,
# every prompt kind (tools/oracle/make_session.py --image-predictor --compact; tests/data/README.md).
REFERENCE = torch.load(Path(__file__).resolve().parent / "data" / "image_predictor_micro.pt", weights_only=True)
CASES = [(i, j) for i, image in enumerate(REFERENCE["images"]) for j in range(len(image["predictions"]))]
LOGIT_TOLERANCE = 1e-3


@pytest.fixture(scope="module")
def predictor(session, model):  # noqa: F811
    predictor = ImagePredictor(model)
    predictor.set_image(session["frames"][0].numpy())
    return predictor


def _official_box_output(session):
    # Event 1 of the session: a box for object 2 on frame 0, where SAM 2 is an image model
    # (no memory), one mask chosen by the stability rule.
    event, output = session["events"][1], session["outputs"][1]
    assert event["type"] == "points" and event["frame"] == 0 and "box" in event
    row = output["obj_ids"].index(event["obj_id"])
    return event["box"], output["low_res_logits"][row, 0], float(output["object_score_logits"][row, 0])


def test_box_prompt_matches_official_frame0(session, predictor):
    box, official_logits, official_score = _official_box_output(session)
    assert official_score > 0  # present, so the official logits are the decoder's own
    prediction = predictor.predict(box=box, multimask_output=False)
    assert prediction.masks.shape == (1, 256, 256) and prediction.masks.dtype == bool
    expected = official_logits.clamp(-32, 32).numpy()
    assert np.abs(prediction.low_res_logits[0] - expected).max() < 1e-3
    assert np.array_equal(prediction.masks[0], torch.nn.functional.interpolate(
        official_logits[None, None], size=(256, 256), mode="bilinear", align_corners=False)[0, 0].numpy() > 0)


def test_the_reference_was_made_with_the_micro_sessions_weights():
    assert REFERENCE["generated_with"]["weights_from"] == MICRO_SESSION.name
    assert [image["name"] for image in REFERENCE["images"]] == ["square", "wide"]


@pytest.mark.parametrize("image_index", range(len(REFERENCE["images"])), ids=lambda i: REFERENCE["images"][i]["name"])
def test_image_features_match_official(model, image_index):  # noqa: F811
    """The encoder, its high-resolution projections and the "no memory" embedding on an image of any
    size, after the official image predictor's resize."""
    official = REFERENCE["images"][image_index]
    with torch.inference_mode():
        features, image_hw = embed_image(model, official["image"].numpy())
    assert image_hw == tuple(official["orig_hw"])
    torch.testing.assert_close(features.image_embed, official["image_embed"], atol=1e-4, rtol=1e-4)
    for ours, theirs in zip(features.high_res, official["high_res_feats"], strict=True):
        torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)


def _predictor_for(model, image_index):
    predictor = ImagePredictor(model)
    predictor.set_image(REFERENCE["images"][image_index]["image"].numpy())
    return predictor


@pytest.mark.parametrize("image_index, prediction_index", CASES,
                         ids=[f"{REFERENCE['images'][i]['name']}-{REFERENCE['images'][i]['predictions'][j]['name']}"
                              for i, j in CASES])
def test_every_prompt_matches_the_official_image_predictor(model, image_index, prediction_index):  # noqa: F811
    """Clicks, negative clicks, boxes, a box with a click, a previous mask as input; one mask or three."""
    official = REFERENCE["images"][image_index]["predictions"][prediction_index]
    mask_input = official.get("mask_input")
    prediction = _predictor_for(model, image_index).predict(
        points=official.get("point_coords"), labels=official.get("point_labels"), box=official.get("box"),
        mask_input=None if mask_input is None else mask_input[0].numpy(),
        multimask_output=official["multimask_output"])
    np.testing.assert_allclose(prediction.iou_scores, official["iou_predictions"].numpy(), atol=1e-4)
    np.testing.assert_allclose(prediction.low_res_logits, official["low_res_logits"].numpy(), atol=LOGIT_TOLERANCE)
    height, width = official["masks_shape"][1:]
    official_masks = np.unpackbits(official["masks_packed"].numpy(), axis=-1, count=width).astype(bool)
    np.testing.assert_array_equal(prediction.masks, official_masks, err_msg=official["name"])


def test_bad_prompts(predictor):
    with pytest.raises(PromptError, match="outside"):
        predictor.predict(points=[[999, 5]], labels=[1])
    with pytest.raises(PromptError, match="mask_input must be"):
        predictor.predict(points=[[5, 5]], labels=[1], mask_input=np.zeros((10, 10)))
    with pytest.raises(PromptError, match="set_image"):
        ImagePredictor(predictor.model).predict(points=[[5, 5]], labels=[1])
