"""sam2_model.frame_summary against a numpy reference written from the definitions: masks are
logits > 0 of visible objects, boxes are tight, the label map gives each covered pixel to the
highest logit (the first object on ties), crops pasted back are the masks."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from sam2_model.frame_summary import paste_mask, summarize_frame


def _result(logits, scores, ids, ious=None):
    logits = torch.as_tensor(np.asarray(logits, np.float32))
    count = logits.shape[0]
    return SimpleNamespace(frame_index=2, obj_ids=ids, frame_hw=tuple(logits.shape[1:]), mask_logits=logits,
                           object_score_logits=torch.tensor(scores, dtype=torch.float32),
                           iou_scores=torch.tensor(ious or [0.5] * count, dtype=torch.float32))


def _reference(logits, scores, ids):
    """The node's summary before it moved to the device (numpy over the full frame)."""
    masks = (logits > 0) & (np.asarray(scores) > 0)[:, None, None]
    boxes, areas = [], []
    for mask in masks:
        rows, cols = np.nonzero(mask)
        boxes.append((cols.min(), rows.min(), cols.max() - cols.min() + 1, rows.max() - rows.min() + 1)
                     if rows.size else (0, 0, 0, 0))
        areas.append(int(mask.sum()))
    winner = np.where(masks, logits, -np.inf).argmax(axis=0)
    labels = np.where(masks.any(axis=0), np.asarray(ids)[winner], 0)
    return masks, boxes, areas, labels


@pytest.mark.parametrize("count", [1, 3, 5])
def test_summary_matches_the_numpy_reference(count):
    rng = np.random.default_rng(count)
    # Coarse values make exact ties between objects common; blobs give real boxes.
    logits = np.round(rng.normal(size=(count, 23, 31)) * 2) / 2 - 0.5
    logits[:, :4] = -1.0                      # empty top rows: boxes do not start at 0
    scores = [1.0] * count
    if count > 2:
        scores[1] = -2.0                      # present logits, absent object: no mask
        logits[2] = -1024.0                   # visible but empty
    ids = [int(i) for i in rng.choice(np.arange(1, 250), count, replace=False)]
    state = summarize_frame(_result(logits, scores, ids))
    masks, boxes, areas, labels = _reference(logits, scores, ids)
    np.testing.assert_array_equal(state.labels, labels)
    assert state.labels.dtype == np.uint8
    for row, obj in enumerate(state.objects):
        assert (obj.object_id, obj.visible, obj.bbox, obj.area) == (ids[row], scores[row] > 0, boxes[row], areas[row])
        assert obj.mask.shape == (boxes[row][3], boxes[row][2])
        np.testing.assert_array_equal(obj.frame_mask((23, 31)), masks[row])


def test_large_ids_give_an_int32_label_map_and_unasked_parts_are_skipped():
    logits = np.full((2, 4, 5), -3.0)
    logits[0, 1, 1] = 2.0
    logits[1, 1:3, 1:4] = 1.0
    state = summarize_frame(_result(logits, [1.0, 1.0], [70000 - 1, 300]))
    assert state.labels.dtype == np.int32 and state.labels[1, 1] == 69999 and state.labels[2, 3] == 300
    bare = summarize_frame(_result(logits, [1.0, 1.0], [1, 2]), labels=False, crops=False)
    assert bare.labels is None and all(o.mask is None for o in bare.objects)
    assert [o.bbox for o in bare.objects] == [(1, 1, 1, 1), (1, 1, 3, 2)] and [o.area for o in bare.objects] == [1, 6]


def test_summary_of_a_tracker_result_upsamples_once_to_the_frame():
    from sam2_model.tracker import TrackingResult

    low = torch.full((2, 1, 8, 8), -4.0)
    low[0, 0, 2:5, 2:5] = 6.0
    low[1, 0, 4:7, 3:8] = 3.0
    result = TrackingResult(0, [1, 2], low, torch.tensor([1.0, 1.0]), torch.tensor([0.9, 0.8]), (20, 30))
    full = torch.nn.functional.interpolate(low, size=(20, 30), mode="bilinear", align_corners=False)[:, 0].numpy()
    masks, boxes, _, labels = _reference(full, [1.0, 1.0], [1, 2])
    state = summarize_frame(result)
    np.testing.assert_array_equal(state.labels, labels)
    assert [o.bbox for o in state.objects] == boxes
    for row, obj in enumerate(state.objects):
        np.testing.assert_array_equal(obj.frame_mask((20, 30)), masks[row])


def test_paste_mask_refuses_mismatched_crops():
    with pytest.raises(ValueError, match="does not match its box"):
        paste_mask(np.ones((2, 3), bool), (0, 0, 2, 2), (5, 5))
    with pytest.raises(ValueError, match="does not fit"):
        paste_mask(np.ones((2, 3), bool), (4, 0, 3, 2), (5, 5))
    empty = summarize_frame(SimpleNamespace(frame_index=0, obj_ids=[], frame_hw=(3, 4)))
    assert empty.labels.shape == (3, 4) and not empty.labels.any()


@pytest.mark.parametrize("frame_hw", [(540, 960), (61, 47), (256, 256), (720, 1280)])
def test_summary_inside_regions_equals_the_full_frame_reference(frame_hw):
    """Blobs of low-resolution logits, overlapping, some touching the border, one absent object:
    working inside each object's region gives the full-frame answer exactly."""
    from sam2_model.tracker import TrackingResult

    rng = np.random.default_rng(frame_hw[0])
    count = 6
    yy, xx = np.mgrid[0:64, 0:64]
    low = np.full((count, 1, 64, 64), -8.0, np.float32)
    for row in range(count):
        cy, cx, radius = rng.uniform(-5, 69), rng.uniform(-5, 69), rng.uniform(1, 20)
        low[row, 0] = np.round((radius - np.hypot(yy - cy, xx - cx)) * 4) / 4  # coarse: ties between objects
    scores = [1.0] * count
    scores[3] = -1.0
    result = TrackingResult(0, [5, 2, 9, 4, 7, 1], torch.from_numpy(low), torch.tensor(scores),
                            torch.full((count,), 0.5), frame_hw)
    full = result.mask_logits.numpy()
    masks, boxes, areas, labels = _reference(full, scores, result.obj_ids)
    state = summarize_frame(result)
    np.testing.assert_array_equal(state.labels, labels)
    assert [o.bbox for o in state.objects] == boxes and [o.area for o in state.objects] == areas
    for row, obj in enumerate(state.objects):
        np.testing.assert_array_equal(obj.frame_mask(frame_hw), masks[row])


@pytest.mark.parametrize("count", [1, 4])
def test_the_overlay_is_tinted_where_the_labels_are_as_the_numpy_drawing_does(count):
    """The node's overlay: the picture tinted with the label map on the device gives the bytes of the
    numpy drawing from the host label map (visualization.tint_labels); boxes and ids then the same."""
    from sam2_model.visualization import MASK_ALPHA, colour_of, draw_tracked

    rng = np.random.default_rng(10 + count)
    logits = np.round(rng.normal(size=(count, 23, 31)) * 2) / 2 - 0.5
    scores = [1.0] * count
    if count > 2:
        scores[1] = -2.0
    ids = [int(i) for i in rng.choice(np.arange(1, 400), count, replace=False)]  # ids past 255: int32 labels
    picture = rng.integers(0, 256, (23, 31, 3), dtype=np.uint8)
    state = summarize_frame(_result(logits, scores, ids), picture=torch.from_numpy(picture))
    labels = _reference(logits, scores, ids)[3]
    # The blend written out: each labelled pixel becomes (p * (256 - a) + c * a + 128) >> 8, a = alpha * 256.
    expected = picture.astype(np.int64)
    weight = round(MASK_ALPHA * 256)
    for object_id in {int(v) for v in np.unique(labels)} - {0}:
        where = labels == object_id
        colour = np.asarray(colour_of(object_id), np.int64)
        expected[where] = (expected[where] * (256 - weight) + colour * weight + 128) >> 8
    np.testing.assert_array_equal(state.tinted, expected.astype(np.uint8))
    drawn = {obj.object_id: obj.bbox for obj in state.objects if obj.visible and obj.area}
    boxes = {i: (x, y, x + w - 1, y + h - 1) for i, (x, y, w, h) in drawn.items()}
    np.testing.assert_array_equal(draw_tracked(state.tinted, None, boxes), draw_tracked(picture, state.labels, boxes))
    with pytest.raises(ValueError, match="needs the label map"):
        summarize_frame(_result(logits, scores, ids), labels=False, picture=torch.from_numpy(picture))
