"""ImagePredictor: SAM 2 as an image model, checked against the official frame-0 outputs."""

import numpy as np
import pytest
import torch

from sam2_model import ImagePredictor, PromptError

from micro_session import model, session  # noqa: F401


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


def test_multimask_gives_three_candidates_and_mask_input_round_trips(predictor):
    first = predictor.predict(points=[[76.8, 89.6]], labels=[1], multimask_output=True)
    assert first.masks.shape == (3, 256, 256) and first.iou_scores.shape == (3,)
    best = int(np.argmax(first.iou_scores))
    refined = predictor.predict(points=[[76.8, 89.6], [150.0, 40.0]], labels=[1, 0],
                                mask_input=first.low_res_logits[best], multimask_output=False)
    assert refined.masks.shape == (1, 256, 256)
    assert np.abs(refined.low_res_logits).max() <= 32


def test_non_square_image_resolution(session, model):  # noqa: F811
    predictor = ImagePredictor(model)
    image = np.ascontiguousarray(session["frames"][0].numpy()[:200, :])  # 256 wide, 200 high
    predictor.set_image(image)
    prediction = predictor.predict(box=[100, 100, 200, 180], multimask_output=False)
    assert prediction.masks.shape == (1, 200, 256)


def test_bad_prompts(predictor):
    with pytest.raises(PromptError, match="outside"):
        predictor.predict(points=[[999, 5]], labels=[1])
    with pytest.raises(PromptError, match="mask_input must be"):
        predictor.predict(points=[[5, 5]], labels=[1], mask_input=np.zeros((10, 10)))
    with pytest.raises(PromptError, match="set_image"):
        ImagePredictor(predictor.model).predict(points=[[5, 5]], labels=[1])
