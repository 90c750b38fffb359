"""AutomaticMaskGenerator: the official SAM2AutomaticMaskGenerator's masks, from its own outputs.

Expected values come from tests/data/amg_reference.pt (the official generator run by
tools/oracle/make_session.py --amg), from definitions written out independently here (NMS, connected
regions, point grids, boxes, stability) or from the official formulas.
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

import sam2_model
from sam2_model import (AutomaticMaskGenerator, FrameError, GeneratedMask, MaskGeneratorOptions,
                        MaskGeneratorOptionsError)
from sam2_model.amg_geometry import box_nms, crop_boxes, mask_boxes, point_grid, stability_scores
from sam2_model.holes import remove_small_regions
from sam2_model.mask_geometry import box_from_mask, mask_iou

from flood_fill import component_areas
from parity_sessions import PARITY_DIR

REFERENCE = torch.load(Path(__file__).resolve().parent / "data" / "amg_reference.pt", weights_only=True)
SCORE_TOLERANCE = 1e-3
MIN_MASK_IOU = 0.99
_MODELS = {}


def reference_model(key: str) -> sam2_model.SAM2Model:
    """The model a reference run used: its resolved official YAML and its weights."""
    if key not in _MODELS:
        if key == "micro":
            state_dict = torch.load(PARITY_DIR / "sam2.1_micro_stream.pt", weights_only=True)["state_dict"]
        else:
            state_dict = torch.load(Path(sam2_model.__file__).parent / "weights" / "default.pt",
                                    weights_only=True)["model"]
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as handle:
            handle.write(REFERENCE["model_yaml"][key])
        try:
            _MODELS[key] = sam2_model.build_model(handle.name, {"model": state_dict})
        finally:
            os.unlink(handle.name)
    return _MODELS[key]


def run_settings(run) -> dict:
    settings = dict(run["kwargs"])
    if "point_grids" in settings:
        settings["point_grids"] = [grid.numpy() for grid in settings["point_grids"]]
    return settings


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Many small ops: one thread is several times faster than two fighting other jobs for the CPU."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def default_model():
    return sam2_model.build_model("default")


@pytest.mark.parametrize("run", REFERENCE["runs"], ids=lambda r: f"{r['model']}-{r['image']}-{r['setting']}")
def test_same_masks_in_the_same_order_as_the_official_generator(run):
    image = REFERENCE["images"][run["image"]].numpy()
    height, width = image.shape[:2]
    count = run["num_masks"]
    assert count >= 2, "a reference run without masks to compare would prove nothing"
    expected = np.unpackbits(run["masks_packed"].numpy(), axis=1, count=height * width)
    expected = expected.reshape(count, height, width).astype(bool)

    masks = AutomaticMaskGenerator(reference_model(run["model"]), **run_settings(run)).generate(image)

    assert len(masks) == count
    for index, (mask, official) in enumerate(zip(masks, expected)):
        assert isinstance(mask, GeneratedMask)
        assert mask.segmentation.shape == (height, width) and mask.segmentation.dtype == bool
        assert mask_iou(mask.segmentation, official) >= MIN_MASK_IOU, index
        assert abs(mask.predicted_iou - float(run["predicted_iou"][index])) <= SCORE_TOLERANCE, index
        assert abs(mask.stability_score - float(run["stability_score"][index])) <= SCORE_TOLERANCE, index
        assert mask.area == int(run["area"][index])
        assert mask.bbox == pytest.approx(run["bbox"][index].tolist(), abs=1.0)
        assert mask.point_coords[0] == pytest.approx(run["point_coords"][index].tolist(), abs=1e-3)
        assert mask.crop_box == tuple(run["crop_box"][index].tolist())


def test_reference_covers_every_setting_the_issue_names():
    settings = [run["kwargs"] for run in REFERENCE["runs"]]
    assert any(s.get("crop_n_layers", 0) > 0 for s in settings)
    assert any(s.get("use_m2m") for s in settings)
    assert any(s.get("multimask_output") is False for s in settings)
    assert any(s.get("min_mask_region_area", 0) > 0 for s in settings)
    assert {"default", "default@128", "micro"} <= {run["model"] for run in REFERENCE["runs"]}
    assert any(image.shape[0] != image.shape[1] for image in REFERENCE["images"].values())


def test_record_has_the_official_keys_and_bbox_convention(default_model):
    image = REFERENCE["images"]["scene"].numpy()
    masks = AutomaticMaskGenerator(default_model, points_per_side=4, pred_iou_thresh=0.0,
                                   stability_score_thresh=0.0).generate(image)
    record = masks[0].as_record()
    assert set(record) == {"segmentation", "area", "bbox", "predicted_iou", "point_coords", "stability_score",
                           "crop_box"}
    for mask in masks:
        if mask.area:
            x0, y0, x1, y1 = box_from_mask(mask.segmentation)  # last pixel inclusive
            assert mask.bbox == (x0, y0, x1 - x0, y1 - y0)
        assert mask.area == int(mask.segmentation.sum())


# ---------------------------------------------------------------------------- encoder and decoder calls

class _CallCounter:
    def __init__(self, function):
        self.function, self.calls, self.batch_sizes = function, 0, []

    def __call__(self, *args, **kwargs):
        self.calls += 1
        self.batch_sizes.append(int(args[0].shape[0]))
        return self.function(*args, **kwargs)


@pytest.mark.parametrize("crop_n_layers, expected_crops", [(0, 1), (1, 5), (2, 21)])
def test_image_encoded_once_per_crop_and_clicks_batched(default_model, monkeypatch, crop_n_layers, expected_crops):
    encoder = _CallCounter(default_model.encode_image)
    decoder = _CallCounter(default_model.sam_mask_decoder.forward)
    monkeypatch.setattr(default_model, "encode_image", encoder)
    monkeypatch.setattr(default_model.sam_mask_decoder, "forward", decoder)
    image = np.zeros((60, 80, 3), dtype=np.uint8)
    image[10:40, 20:60] = (200, 40, 40)
    AutomaticMaskGenerator(default_model, points_per_side=5, points_per_batch=10, crop_n_layers=crop_n_layers,
                           crop_n_points_downscale_factor=1).generate(image)
    assert encoder.calls == len(crop_boxes((60, 80), crop_n_layers, 512 / 1500)) == expected_crops
    # 25 clicks per crop in batches of 10: 10, 10, 5.
    assert decoder.batch_sizes == [10, 10, 5] * expected_crops


def test_m2m_refines_in_batches_of_points_per_batch(default_model, monkeypatch):
    decoder = _CallCounter(default_model.sam_mask_decoder.forward)
    monkeypatch.setattr(default_model.sam_mask_decoder, "forward", decoder)
    image = REFERENCE["images"]["scene"].numpy()
    AutomaticMaskGenerator(default_model, points_per_side=3, points_per_batch=4, use_m2m=True).generate(image)
    # Per batch of clicks: one pass of 3 candidates per click, then the 3x as many masks in batches of 4.
    expected = []
    for clicks in (4, 4, 1):
        expected += [clicks] + [min(4, 3 * clicks - start) for start in range(0, 3 * clicks, 4)]
    assert decoder.batch_sizes == expected


# ---------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("image, problem", [
    (np.zeros((32, 32, 3), dtype=np.float32), "uint8"),
    (np.zeros((32, 32), dtype=np.uint8), "HxWx3"),
    (np.zeros((32, 32, 4), dtype=np.uint8), "HxWx3"),
    (np.zeros((0, 32, 3), dtype=np.uint8), "empty"),
    (np.zeros((32, 0, 3), dtype=np.uint8), "empty"),
    ([[0, 0, 0]], "numpy array"),
])
def test_bad_image_is_refused_with_the_problem_named(default_model, image, problem):
    with pytest.raises(FrameError, match=problem):
        AutomaticMaskGenerator(default_model, points_per_side=2).generate(image)


@pytest.mark.parametrize("settings, problem", [
    ({"points_per_side": 0}, "points_per_side must be a positive integer"),
    ({"points_per_side": -3}, "points_per_side must be a positive integer"),
    ({"points_per_side": 2.5}, "points_per_side must be a positive integer"),
    ({"points_per_side": 8, "point_grids": [point_grid(4)]}, "not both"),
    ({"points_per_side": None}, "give points_per_side or point_grids"),
    ({"points_per_batch": 0}, "points_per_batch"),
    ({"pred_iou_thresh": 1.5}, "pred_iou_thresh"),
    ({"box_nms_thresh": -0.1}, "box_nms_thresh"),
    ({"crop_n_layers": -1}, "crop_n_layers"),
    ({"crop_overlap_ratio": 1.0}, "crop_overlap_ratio"),
    ({"crop_n_points_downscale_factor": 0}, "crop_n_points_downscale_factor"),
    ({"points_per_side": 3, "crop_n_layers": 1, "crop_n_points_downscale_factor": 4}, "no click in crop layer 1"),
    ({"min_mask_region_area": -1}, "min_mask_region_area"),
    ({"points_per_side": None, "point_grids": [np.zeros((4, 3))]}, r"point_grids\[0\]"),
    ({"points_per_side": None, "point_grids": [np.full((4, 2), 2.0)]}, r"normalised to \[0, 1\]"),
    ({"points_per_side": None, "point_grids": [point_grid(2)], "crop_n_layers": 1}, "one grid per crop layer"),
    # Whole-number floats used to pass and break every later generate() with a TypeError.
    ({"points_per_batch": 2.0}, "points_per_batch must be an integer, got 2.0"),
    ({"crop_n_layers": 1.0}, "crop_n_layers must be an integer, got 1.0"),
    ({"points_per_side": True}, "points_per_side must be a positive integer, got True"),
    ({"mask_threshold": "x"}, "mask_threshold must be a finite number, got 'x'"),
    ({"mask_threshold": float("nan")}, "mask_threshold must be a finite number, got nan"),
    ({"pred_iou_thresh": "0.5"}, "pred_iou_thresh must be a finite number"),
    ({"use_m2m": "yes"}, "use_m2m must be true or false, got 'yes'"),
    # Sizes that would cost terabytes (or hours) to build are refused by name.
    ({"points_per_side": 10 ** 6}, "points_per_side 1000000 is above the limit of 128"),
    ({"crop_n_layers": 30}, "crop_n_layers must be an integer from 0 to 4, got 30"),
])
def test_bad_settings_are_refused_with_the_problem_named(default_model, settings, problem):
    with pytest.raises(MaskGeneratorOptionsError, match=problem):
        AutomaticMaskGenerator(default_model, **settings)


def test_the_size_limits_are_generous_and_numpy_integers_are_integers():
    biggest = MaskGeneratorOptions(points_per_side=128, crop_n_layers=4, crop_n_points_downscale_factor=2)
    # 128 per side, then 64, 32, 16, 8: each layer's grid has its side squared clicks.
    assert [len(grid) for grid in biggest.layer_grids()] == [128 ** 2, 64 ** 2, 32 ** 2, 16 ** 2, 8 ** 2]
    numpy_ints = MaskGeneratorOptions(points_per_side=np.int64(8), points_per_batch=np.int32(4))
    assert len(numpy_ints.layer_grids()[0]) == 64


def test_unknown_setting_and_options_with_settings_are_refused(default_model):
    with pytest.raises(TypeError, match="output_mode"):
        AutomaticMaskGenerator(default_model, output_mode="coco_rle")
    with pytest.raises(TypeError, match="not both"):
        AutomaticMaskGenerator(default_model, MaskGeneratorOptions(), points_per_side=4)


def test_defaults_are_the_official_ones():
    # sam2==1.1.0 SAM2AutomaticMaskGenerator.__init__ defaults.
    official = dict(points_per_side=32, points_per_batch=64, pred_iou_thresh=0.8, stability_score_thresh=0.95,
                    stability_score_offset=1.0, mask_threshold=0.0, box_nms_thresh=0.7, crop_n_layers=0,
                    crop_nms_thresh=0.7, crop_overlap_ratio=512 / 1500, crop_n_points_downscale_factor=1,
                    point_grids=None, min_mask_region_area=0, use_m2m=False, multimask_output=True)
    options = MaskGeneratorOptions()
    assert {name: getattr(options, name) for name in official} == official


# ---------------------------------------------------------------------------- geometry, by definition

def _reference_nms(boxes, scores, threshold):
    """Greedy NMS written from its definition: best score first (ties: input order), drop a box whose
    IoU with an already kept box is above the threshold."""
    order = sorted(range(len(boxes)), key=lambda i: -scores[i])  # sorted() is stable

    def iou(a, b):
        area = lambda r: (r[2] - r[0]) * (r[3] - r[1])  # noqa: E731
        w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        union = area(a) + area(b) - w * h
        return w * h / union if union > 0 else float("nan")

    kept = []
    for i in order:
        if all(not iou(boxes[i], boxes[k]) > threshold for k in kept):
            kept.append(i)
    return kept


@pytest.mark.parametrize("seed", range(6))
def test_box_nms_matches_the_greedy_definition(seed):
    rng = np.random.default_rng(seed)
    count = 60
    xy = rng.integers(0, 50, size=(count, 2))
    wh = rng.integers(0, 30, size=(count, 2))  # zero-width boxes too
    boxes = np.concatenate([xy, xy + wh], axis=1).astype(np.float64)
    scores = rng.choice([0.5, 0.6, 0.7, 0.9], size=count) if seed % 2 else rng.random(count)
    threshold = [0.3, 0.5, 0.7][seed % 3]
    expected = _reference_nms(boxes.tolist(), scores.tolist(), threshold)
    got = box_nms(torch.tensor(boxes, dtype=torch.float32), torch.tensor(scores, dtype=torch.float32), threshold)
    assert got.tolist() == expected


def test_box_nms_keeps_ties_in_input_order_and_drops_only_above_the_threshold():
    boxes = torch.tensor([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 5], [20, 20, 30, 30]], dtype=torch.float32)
    scores = torch.tensor([0.5, 0.5, 0.9, 0.5])
    # Box 2 (best) has IoU exactly 0.5 with boxes 0 and 1: not above 0.5, so they stay; 1 duplicates 0.
    assert box_nms(boxes, scores, 0.5).tolist() == [2, 0, 3]
    assert box_nms(boxes, scores, 0.49).tolist() == [2, 3]
    assert box_nms(boxes[:0], scores[:0], 0.5).tolist() == []


def test_small_region_cleanup_follows_the_official_image_predictor_definition():
    threshold, max_area = 0.5, 8
    logits = np.full((24, 24), -3.0)
    logits[2:14, 2:14] = 4.0          # a large object
    logits[4:7, 4:7] = -1.0           # an 8-pixel hole in it (a ring): filled
    logits[5, 5] = 2.0                # with a 1-pixel island in it: removed all the same (found before filling)
    logits[9:13, 9:13] = -2.0         # a 16-pixel hole: kept
    logits[10, 10] = 2.0              # a 1-pixel island inside that hole: removed
    logits[18, 18] = 3.0              # an island of 2 pixels touching diagonally (8-connected): removed
    logits[19, 19] = 3.0
    logits[16:20, 2:5] = 1.0          # an island of 12 pixels: kept
    logits[0, 20:24] = threshold      # exactly at the threshold is background (a small region at the border)
    foreground = logits > threshold
    background = ~foreground
    expected = logits.copy()
    expected[background & (component_areas(background) <= max_area)] = threshold + 10.0
    expected[foreground & (component_areas(foreground) <= max_area)] = threshold - 10.0
    assert expected[4, 4] == threshold + 10 and expected[5, 5] == expected[10, 10] == threshold - 10
    assert expected[11, 11] < threshold and expected[17, 3] > threshold and expected[18, 18] < threshold

    got = remove_small_regions(torch.tensor(logits, dtype=torch.float32)[None, None], max_area, threshold)
    np.testing.assert_array_equal(got[0, 0].numpy(), expected.astype(np.float32))
    untouched = torch.tensor(logits, dtype=torch.float32)[None, None]
    assert torch.equal(remove_small_regions(untouched, 0, threshold), untouched)


def test_point_grid_is_cell_centres_with_x_fastest():
    n = 4
    expected = [((i + 0.5) / n, (j + 0.5) / n) for j in range(n) for i in range(n)]
    np.testing.assert_allclose(point_grid(n), expected, atol=1e-12)


def test_crop_boxes_tile_the_image_with_the_official_overlap():
    height, width, ratio = 300, 500, 512 / 1500
    crops = crop_boxes((height, width), 1, ratio)
    assert crops[0] == ((0, 0, width, height), 0)
    overlap = int(ratio * min(height, width))  # layer 1: 2 x 2 crops
    crop_w, crop_h = math.ceil((overlap + width) / 2), math.ceil((overlap + height) / 2)
    x_starts, y_starts = [0, crop_w - overlap], [0, crop_h - overlap]
    assert crops[1:] == [((x, y, min(x + crop_w, width), min(y + crop_h, height)), 1)
                         for x in x_starts for y in y_starts]


def test_mask_boxes_are_the_inclusive_tight_boxes():
    rng = np.random.default_rng(1)
    masks = rng.random((8, 20, 30)) > 0.97
    masks[3] = False
    got = mask_boxes(torch.from_numpy(masks)).tolist()
    for mask, box in zip(masks, got):
        assert box == (list(box_from_mask(mask)) if mask.any() else [0, 0, 0, 0])


def test_stability_score_is_the_iou_of_the_two_cuts():
    logits = torch.tensor([[[3.0, 1.5, 0.5], [-0.5, -1.5, 2.0]]])
    # Cut at threshold 0.5 +/- 1.0: above 1.5 -> {3.0, 2.0}; above -0.5 -> {3.0, 1.5, 0.5, 2.0}.
    assert stability_scores(logits, 0.5, 1.0).tolist() == [2 / 4]


def test_benchmark_amg_mode_reports_ms_per_image_and_masks_per_second(capsys):
    from sam2_model import benchmark

    assert benchmark.main(["--amg", "--model", "default", "--points-per-side", "2", "--iterations", "1",
                           "--warmup", "0", "--no-official"]) == 0
    out = capsys.readouterr().out
    assert "ms/image" in out and "masks/s" in out and "'points_per_side': 2" in out
