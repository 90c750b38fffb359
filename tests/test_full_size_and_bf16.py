"""Full-size model on a real photo (slow), and bfloat16 autocast against float32."""

import json

import numpy as np
import pytest
import torch

import sam2_model

from parity_sessions import PARITY_DIR, STREAM_FILES, apply_event, build_session_model, load_session

MEDIA_DIR = PARITY_DIR.parent / "media"


def _iou(a: torch.Tensor, b: torch.Tensor) -> float:
    union = (a | b).sum().item()
    return 1.0 if union == 0 else (a & b).sum().item() / union


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_full_size_tiny_from_official_layout_runs_one_image(tmp_path):
    from PIL import Image

    layout = json.loads((PARITY_DIR / "checkpoint_layouts.json").read_text())["sam2.1_hiera_tiny"]
    generator = torch.Generator().manual_seed(0)
    state = {k: torch.randn(s["shape"], generator=generator) * 0.02 for k, s in layout["state_dict"].items()}
    path = tmp_path / "sam2.1_hiera_tiny.pt"
    torch.save({"model": state}, path)
    model = sam2_model.build_model("sam2.1_hiera_tiny", path)
    image = np.asarray(Image.open(MEDIA_DIR / "truck.jpg").convert("RGB"))
    predictor = sam2_model.ImagePredictor(model)
    predictor.set_image(image)
    prediction = predictor.predict(points=[[500.0, 375.0]], labels=[1])
    assert prediction.masks.shape == (3,) + image.shape[:2]
    assert prediction.low_res_logits.shape == (3, 256, 256)
    assert np.isfinite(prediction.low_res_logits).all() and np.isfinite(prediction.iou_scores).all()


@pytest.mark.parametrize("path", [p for p in STREAM_FILES if p.name == "sam2.1_micro_stream.pt"], ids=lambda p: p.stem)
def test_bfloat16_autocast_masks_agree_with_float32(path):
    """bf16 autocast (CPU autocast here; the same code path runs on CUDA) keeps masks close to
    float32 on frames where both precisions see the object.

    The random micro model's object scores hover near 0 late in the session, so bf16 rounding
    compounded through 20 frames of memory moves single frames by a few percent: the mean must
    stay >= 0.98 and no frame below 0.95. (The issue's IoU >= 0.98 bar is for a GPU run.)"""
    session = load_session(path)
    model = build_session_model(session)
    options = dict(fill_hole_area=session["predictor_options"]["fill_hole_area"],
                   corrections_as_cond=session["predictor_options"]["add_all_frames_to_correct_as_cond"])
    full = sam2_model.StreamingTracker(model, **options)
    half = sam2_model.StreamingTracker(model, autocast_dtype=torch.bfloat16, **options)
    ious = []
    for event in session["events"]:
        a = apply_event(full, session["frames"], event)
        b = apply_event(half, session["frames"], event)
        assert a.obj_ids == b.obj_ids
        for row in range(len(a.obj_ids)):
            if a.visible[row] and b.visible[row] and a.masks[row].any():
                ious.append(_iou(a.masks[row], b.masks[row]))
    assert ious, "no frame with a visible object"
    assert sum(ious) / len(ious) >= 0.98, ious
    assert min(ious) >= 0.95, sorted(ious)[:5]
