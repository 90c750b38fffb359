"""Full-size model on a real photo, and bfloat16 autocast against float32."""

import json

import numpy as np
import torch

import sam2_model

from generated_tracking import track_prompted_by_first_masks
from parity_sessions import PARITY_DIR
from sam2_model.mask_geometry import mask_iou
from sam2_model.train.procedural import generate_with_events

MEDIA_DIR = PARITY_DIR.parent / "media"


# In the default suite (about 12 s on one thread, within pytest.ini's timeout): the only forward
# pass at a released model size.
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


def test_bfloat16_autocast_masks_agree_with_float32():
    """bf16 autocast (CPU autocast here; the same code path runs on CUDA) keeps the masks and the
    visibility decisions of float32.

    With the bundled trained model, not a random parity model: a random model's object scores sit
    near 0, so one bf16 rounding flips an object's visibility, the two trackers' memories part, and
    every later frame differs for a reason that is not precision (seen on a CPU with native bf16
    kernels). Trained weights decide with margins, as real checkpoints do. (The issue's IoU >= 0.98
    bar is for a GPU run.)"""
    model = sam2_model.build_model("default")
    ious, agree, decisions = [], 0, 0
    for seed in (2000, 2001):
        video = generate_with_events(seed)
        full = track_prompted_by_first_masks(sam2_model.StreamingTracker(model), video)
        half = track_prompted_by_first_masks(
            sam2_model.StreamingTracker(model, autocast_dtype=torch.bfloat16), video)
        for a, b in zip(full, half):
            assert a.obj_ids == b.obj_ids
            for row in range(len(a.obj_ids)):
                decisions += 1
                agree += bool(a.visible[row]) == bool(b.visible[row])
                if a.visible[row] and b.visible[row] and a.masks[row].any():
                    ious.append(mask_iou(a.masks[row].cpu().numpy(), b.masks[row].cpu().numpy()))
    assert len(ious) > 50, "too few frames with a visible object"
    assert agree >= 0.95 * decisions, (agree, decisions)
    assert sum(ious) / len(ious) >= 0.98, sorted(ious)[:5]
