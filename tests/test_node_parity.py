"""The node's outputs for a parity session equal what StreamingTracker gives for the same frames
and prompts: the ROS layer converts, it does not change the tracking."""

import numpy as np
import pytest

from sam2_ros.image_conversion import paste_object_mask

from node_harness import (check_frame_consistency, expected_labels, expected_objects, model_files,  # noqa: F401
                          one_torch_thread, session_prompt, stamp_of, start_node)
from parity_sessions import apply_event, make_tracker

pytestmark = pytest.mark.ros


@pytest.fixture(scope="module")
def running(model_files, tmp_path_factory):  # noqa: F811
    node = start_node(tmp_path_factory.mktemp("parity"), model_files.params())
    yield node
    node.close()


def _assert_same_object(node_object, expected_state, where):
    assert node_object.id == expected_state.object_id, where
    assert node_object.visible == expected_state.visible, where
    # The message's mask covers the box; pasted back it is the tracker's mask, bit for bit.
    np.testing.assert_array_equal(paste_object_mask(node_object, (256, 256)), expected_state.mask, err_msg=where)
    assert node_object.area == expected_state.area, where
    box = node_object.bbox
    assert (box.x_offset, box.y_offset, box.width, box.height) == expected_state.bbox, where
    assert node_object.visibility == pytest.approx(expected_state.visibility, abs=1e-5), where
    assert node_object.iou_score == pytest.approx(expected_state.iou_score, abs=1e-5), where


@pytest.mark.usefixtures("one_torch_thread")
def test_node_replays_the_parity_session_like_the_tracker(running, model_files):  # noqa: F811
    client = running.client
    session = model_files.session
    frames = session["frames"]
    reference = make_tracker(session)
    node_frame, known_ids, compared = -1, set(), 0
    for number, event in enumerate(session["events"]):
        expected = apply_event(reference, frames, event)
        where = f"event {number}: {event['type']}"
        if event["type"] == "track":
            node_frame = event["frame"]
            out = client.track(frames[node_frame].numpy(), node_frame)
            check_frame_consistency(out, stamp_of(out.objects.header), 256, 256)
            assert out.objects.frame_index == expected.frame_index
            assert out.ids() == list(expected.obj_ids), where
            for node_object, expected_state in zip(out.objects.objects, expected_objects(expected), strict=True):
                _assert_same_object(node_object, expected_state, where)
            np.testing.assert_array_equal(out.labels(), expected_labels(expected), err_msg=where)
            compared += 1
        elif event["type"] == "remove":
            assert client.remove_object(event["obj_id"]).success
            known_ids.discard(event["obj_id"])
        else:
            while node_frame < event["frame"]:  # the frame the prompt is on arrives first
                node_frame += 1
                client.track(frames[node_frame].numpy(), node_frame)
            is_new = event["obj_id"] not in known_ids
            response = client.add_object(session_prompt(event, is_new))
            assert response.success, f"{where}: {response.message}"
            assert response.object_id == event["obj_id"], where
            known_ids.add(event["obj_id"])
            expected_state = next(o for o in expected_objects(expected) if o.object_id == event["obj_id"])
            _assert_same_object(response.object, expected_state, where)
            compared += 1
    assert compared == len(session["events"])
