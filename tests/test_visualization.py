"""One drawing module, one palette: the node's overlay, the demo and sam2-eval's report draw an object
in the colour its id has; ids are drawn as text with Pillow. Also the one IoU and the one box helper."""

import colorsys
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from sam2_model import demo, mask_geometry, visualization
from sam2_model.frame_summary import summarize_frame
from sam2_model.mask_geometry import box_from_mask, box_from_roi, mask_iou, roi_from_box, roi_from_mask
from sam2_model.visualization import colour_of, draw_boxes, text_colour_on
from sam2_ros import result_conversion
from sam2_ros.evaluation import metrics, prompts as eval_prompts
from sam2_ros.evaluation.report import worst_frame_panels
from sam2_ros.evaluation.scoring import WorstFrame


def expected_colour(object_id: int) -> tuple:
    """The palette's definition, written out: HSV with the hue stepping by 1 / golden ratio."""
    hue = (object_id * 2 / (1 + math.sqrt(5))) % 1.0
    return tuple(round(255 * c) for c in colorsys.hsv_to_rgb(hue, 0.75, 0.95))


def rectangle(shape, y0, y1, x0, x1):
    mask = np.zeros(shape, bool)
    mask[y0:y1, x0:x1] = True
    return mask


# ------------------------------------------------------------------------------- one palette
def test_palette_is_golden_ratio_hsv_and_nearby_ids_differ():
    assert [colour_of(i) for i in range(0, 300)] == [expected_colour(i) for i in range(0, 300)]
    colours = np.array([colour_of(i) for i in range(1, 21)], dtype=int)
    distances = np.abs(colours[:, None] - colours[None]).sum(-1)
    assert distances[~np.eye(20, dtype=bool)].min() > 30


@pytest.mark.parametrize("object_id", [1, 7, 300])
def test_node_demo_and_report_paint_an_object_in_the_colour_of_its_id(object_id):
    colour = expected_colour(object_id)
    rgb = np.full((48, 64, 3), 90, np.uint8)
    mask = rectangle((48, 64), 20, 36, 10, 30)   # rows 20..35, columns 10..29

    # The node: a tracker result holding the mask, summarized and tinted (as its backend does), then
    # draw_overlay; its box outline.
    logits = torch.where(torch.from_numpy(mask), 8.0, -8.0)[None]
    result = SimpleNamespace(frame_index=0, obj_ids=[object_id], frame_hw=(48, 64), mask_logits=logits,
                             object_score_logits=torch.tensor([5.0]), iou_scores=torch.tensor([0.9]))
    node = result_conversion.draw_overlay(summarize_frame(result, picture=torch.from_numpy(rgb)))
    assert tuple(node[35, 20]) == colour            # the box's bottom edge
    assert tuple(node[28, 29]) == colour            # its right edge

    # The demo: the ground-truth panel's mask outline and the legend's filled square.
    picture = np.asarray(demo.render_frame(rgb, {object_id: mask}, {object_id: mask}, {object_id: True},
                                           index=0, total=1, scale=1, title="t"))
    panel = picture[demo.HEADER_PX:demo.HEADER_PX + 48, :64]
    assert tuple(panel[35, 20]) == colour           # the mask's bottom edge
    legend_top = demo.HEADER_PX + 48 + 4
    assert tuple(picture[legend_top + 6, 7]) == colour

    # The report: the worst-frame panels of truth and prediction, their mask outlines.
    item = WorstFrame(frame_index=3, obj_id=object_id, j=0.5, f=0.5, image=rgb, gt_mask=mask, pred_mask=mask)
    for shown in worst_frame_panels(item):
        assert tuple(shown[35, 20]) == colour and tuple(shown[20, 10]) == colour


def test_tints_blend_half_of_the_colour_and_leave_the_rest():
    rgb = np.full((10, 12, 3), 200, np.uint8)
    labels = np.zeros((10, 12), np.int32)
    labels[2:5, 3:6] = 4
    tinted = visualization.tint_labels(rgb, labels, [4])
    np.testing.assert_allclose(tinted[3, 4], 100 + np.array(expected_colour(4)) / 2, atol=0.5)
    np.testing.assert_array_equal(tinted[labels == 0], rgb[labels == 0])
    labels[7:9, 0:2], labels[0, 11] = 99, 3          # labels not asked for, above and below the largest id
    np.testing.assert_array_equal(visualization.tint_labels(rgb, labels, [4])[labels != 4], 200)
    outlined = visualization.tint_masks(rgb, {4: labels == 4}, outline_px=1)
    assert tuple(outlined[2, 3]) == expected_colour(4)          # the edge: full colour
    np.testing.assert_array_equal(outlined[3, 4], tinted[3, 4])  # the inside: tinted


# ------------------------------------------------------------------------------- text with ImageDraw
def _tag_and_ink(region: np.ndarray, object_id: int):
    """The bounding box of the pixels of the id's colour in ``region`` (the tag) and, inside it, the
    pixels drawn in another colour (the text, antialiased towards text_colour_on)."""
    ys, xs = np.nonzero(np.all(region == colour_of(object_id), axis=-1))
    if ys.size == 0:
        return None, 0
    tag = region[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    text = text_colour_on(colour_of(object_id))
    closer_to_text = (np.abs(tag.astype(int) - text).sum(-1) < np.abs(tag.astype(int) - colour_of(object_id)).sum(-1))
    return (int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())), int(closer_to_text.sum())


def test_ids_are_drawn_as_text_on_a_tag_of_the_object_colour():
    background = np.full((80, 120, 3), 128, np.uint8)
    box = (40, 40, 90, 70)
    one = draw_boxes(background, {1: box}, line_px=1, font_px=16)
    eighty_eight = draw_boxes(background, {88: box}, line_px=1, font_px=16)
    # The tag sits above the box's top-left corner, and carries text: "88" has more ink than "1".
    tag_one, ink_one = _tag_and_ink(one[:40], 1)
    tag_88, ink_88 = _tag_and_ink(eighty_eight[:40], 88)
    assert tag_one[0] == tag_88[0] == 40 and tag_one[3] == tag_88[3] == 39
    assert tag_88[2] > tag_one[2]          # two digits make a wider tag
    assert ink_88 > ink_one > 5
    np.testing.assert_array_equal(one[:40, :40], background[:40, :40])  # nothing left of the tag


def test_node_overlay_writes_the_id_of_each_object():
    rgb = np.full((60, 80, 3), 128, np.uint8)
    logits = torch.full((1, 60, 80), -8.0)
    logits[0, 30:50, 20:60] = 8.0
    result = SimpleNamespace(frame_index=0, obj_ids=[5], frame_hw=(60, 80), mask_logits=logits,
                             object_score_logits=torch.tensor([5.0]), iou_scores=torch.tensor([0.9]))
    out = result_conversion.draw_overlay(summarize_frame(result, picture=torch.from_numpy(rgb)))
    tag, ink = _tag_and_ink(out[:30], 5)   # above the box (rows 30..49)
    assert tag[0] == 20 and tag[3] == 29 and ink > 5


# ------------------------------------------------------------------------------- one IoU, one box
def test_mask_iou_of_constructed_rectangles():
    a = rectangle((20, 30), 2, 10, 4, 14)    # 8 x 10 = 80 pixels
    b = rectangle((20, 30), 6, 16, 9, 19)    # 10 x 10 = 100 pixels; overlap rows 6..9, cols 9..13: 4 x 5
    assert mask_iou(a, b) == pytest.approx(20 / (80 + 100 - 20))
    assert mask_iou(a, np.zeros_like(a)) == 0.0
    assert mask_iou(np.zeros_like(a), np.zeros_like(a)) == 1.0   # DAVIS: nothing to find, nothing found
    with pytest.raises(ValueError, match="shapes"):
        mask_iou(a, a[:10])


def test_every_numpy_iou_and_box_is_the_mask_geometry_one():
    # The demo's score and sam2-eval's J are one function; the prompts' boxes one helper (the node's
    # boxes come from sam2_model.frame_summary, on the model's device: tests/test_frame_summary.py).
    assert demo.mask_iou is mask_geometry.mask_iou
    assert metrics.mask_iou is mask_geometry.mask_iou
    a, b = rectangle((20, 30), 2, 10, 4, 14), rectangle((20, 30), 6, 16, 9, 19)
    assert metrics.region_similarity(a, b) == mask_iou(a, b)
    assert eval_prompts.box_from_mask is demo.box_from_mask is mask_geometry.box_from_mask


def test_box_formats_of_a_constructed_mask():
    mask = rectangle((10, 12), 2, 7, 1, 10)  # rows 2..6, columns 1..9
    mask[8, 11] = True                       # one stray pixel widens the box to row 8, column 11
    assert box_from_mask(mask) == (1, 2, 11, 8)          # inclusive corners
    assert roi_from_mask(mask) == (1, 2, 11, 7)          # x, y, width, height
    assert roi_from_box(box_from_mask(mask)) == roi_from_mask(mask)
    assert box_from_roi(roi_from_mask(mask)) == box_from_mask(mask)
    empty = np.zeros((4, 4), bool)
    assert roi_from_mask(empty) == (0, 0, 0, 0)
    with pytest.raises(ValueError, match="empty"):
        box_from_mask(empty)
    with pytest.raises(ValueError, match="no pixels"):
        box_from_roi((3, 3, 0, 2))
