"""The predicted box of a hidden object (memory_policy robust) in the outputs: the host summary
(ObjectState) and the TrackedObject message; and the node under memory_policy robust."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from std_msgs.msg import Header

from sam2_model.frame_state import ObjectState
from sam2_model.frame_summary import summarize_frame
from sam2_ros.result_conversion import tracked_object_msg

from node_harness import model_files, prompt_msg, start_node  # noqa: F401 - fixture


def result_with(predicted_boxes, visible):
    """Two objects on a 40 x 60 frame; object 1's mask covers rows 4-9, columns 8-19."""
    logits = torch.full((2, 1, 40, 60), -5.0)
    if visible[0]:
        logits[0, 0, 4:10, 8:20] = 5.0
    scores = torch.tensor([2.0 if v else -2.0 for v in visible])
    return SimpleNamespace(frame_index=3, obj_ids=[1, 2], frame_hw=(40, 60), low_res_logits=logits,
                           mask_logits=logits[:, 0], object_score_logits=scores, iou_scores=torch.tensor([0.8, 0.7]),
                           predicted_boxes=predicted_boxes)


def test_summary_carries_the_predicted_box_in_whole_pixels():
    frame = summarize_frame(result_with([None, (10.4, 5.6, 30.2, 20.7)], visible=(True, False)),
                            labels=False, crops=True)
    first, second = frame.objects
    assert first.visible and not first.box_predicted and first.predicted_bbox is None
    assert not second.visible and second.box_predicted
    # x0, y0 truncated; x1, y1 rounded: 10..30 x 5..21 -> (10, 5, 20, 16).
    assert second.predicted_bbox == (10, 5, 20, 16)


def test_a_box_reaching_outside_is_clipped_and_official_results_have_none():
    frame = summarize_frame(result_with([None, (-8.0, 30.0, 70.0, 55.0)], visible=(True, False)), labels=False)
    assert frame.objects[1].predicted_bbox == (0, 30, 60, 10)
    official = summarize_frame(result_with(None, visible=(True, False)), labels=False)
    assert [o.predicted_bbox for o in official.objects] == [None, None]


def test_message_fields():
    hidden = ObjectState(2, False, 0.1, 0.5, (0, 0, 0, 0), 0, np.zeros((0, 0), bool), predicted_bbox=(10, 5, 20, 16))
    msg = tracked_object_msg(hidden, Header())
    assert msg.box_predicted and not msg.visible
    roi = msg.predicted_bbox
    assert (roi.x_offset, roi.y_offset, roi.width, roi.height) == (10, 5, 20, 16)
    seen = ObjectState(1, True, 0.9, 0.8, (8, 4, 12, 6), 72, np.ones((6, 12), bool))
    msg = tracked_object_msg(seen, Header())
    assert not msg.box_predicted and (msg.predicted_bbox.width, msg.predicted_bbox.height) == (0, 0)


@pytest.mark.ros
def test_node_tracks_under_the_robust_policy(tmp_path, model_files):  # noqa: F811
    node = start_node(tmp_path, {"model": str(model_files.config), "checkpoint": str(model_files.checkpoint),
                                 "device": "cpu", "memory_policy": "robust"})
    try:
        assert "memory_policy='robust'" in node.process.log()
        client = node.client
        frames = model_files.frames()
        client.track(frames[0], 0)
        added = client.add_object(prompt_msg(object_id=0, points=[[76.8, 89.6]], labels=[1]))
        assert added.success, added.message
        for t in (1, 2, 3):
            out = client.track(frames[t], t)
            assert added.object_id in out.ids()
            for obj in out.objects.objects:
                # A box is predicted exactly for objects not visible (and only once a filter runs).
                assert not (obj.visible and obj.box_predicted)
    finally:
        node.close()
