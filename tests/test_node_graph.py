"""The tracker node in a real ROS 2 graph: outputs, prompts by service / topic / click, encodings."""

import time
from pathlib import Path

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticStatus

from sam2_model.config import DEFAULT_CHECKPOINT_PATH
from sam2_model.mask_geometry import mask_iou
from sam2_model.train.procedural import ProceduralConfig, generate_with_events
from sam2_ros.image_conversion import image_to_mask, image_to_rgb, paste_object_mask

from node_harness import (check_frame_consistency, model_files, prompt_msg,  # noqa: F401 - fixture
                          start_node, stamp_of)

pytestmark = pytest.mark.ros

POINT = [76.8, 89.6]                    # on the first object of the parity session
BOX = [128.0, 133.12, 212.48, 199.68]   # the second one
DEFAULT_WEIGHTS = Path(DEFAULT_CHECKPOINT_PATH)


@pytest.fixture(scope="module")
def running(model_files, tmp_path_factory):  # noqa: F811
    node = start_node(tmp_path_factory.mktemp("graph"), model_files.params(), overlay=True)
    yield node
    node.close()


@pytest.fixture
def client(running):
    running.client.reset()
    return running.client


def _wait_for_object(client, frames, start_index, object_id, max_frames=20):
    """Publish frames until an output holds object_id (topic prompts are asynchronous)."""
    for offset in range(max_frames):
        index = start_index + offset
        out = client.track(frames[index % len(frames)], index)
        if object_id in out.ids():
            return index, out
    pytest.fail(f"object {object_id} never appeared in the outputs")


def test_prompts_by_service_topic_and_click(client, model_files):  # noqa: F811
    frames = model_files.frames()
    first = client.track(frames[0], 0, overlay=True)
    check_frame_consistency(first, (1000, 123), 256, 256)
    assert first.ids() == [] and not first.labels().any()
    np.testing.assert_array_equal(image_to_rgb(first.overlay), frames[0])  # nothing drawn yet

    # Service: a box. The answer carries the id the node assigned and the mask on frame 0.
    response = client.add_object(prompt_msg(box=BOX))
    assert response.success, response.message
    assert response.object_id == 1 and response.object.id == 1
    assert "added object 1 with a box" in response.message
    assert stamp_of(response.object.mask.header) == stamp_of(first.objects.header)
    box = response.object.bbox
    assert (response.object.mask.width, response.object.mask.height) == (box.width, box.height)
    assert response.object.visible and response.object.area == image_to_mask(response.object.mask).sum() > 0

    # Topic: a click with a label, fire and forget.
    client.prompt_pub.publish(prompt_msg(points=[POINT], labels=[1]))
    index, out = _wait_for_object(client, frames, 1, 2)
    # Click: rqt_image_view's PointStamped.
    client.click(200, 60)
    index, out = _wait_for_object(client, frames, index + 1, 3)
    assert out.ids() == [1, 2, 3]

    for index in range(index + 1, index + 4):  # noqa: B020 - the frame numbering goes on
        picture = frames[9 + index % 3]   # the session's objects are visible on frames 8..19
        stamp = client.publish_frame(picture, index)
        out = client.outputs(stamp, overlay=True)
        check_frame_consistency(out, stamp, 256, 256)
        assert out.ids() == [1, 2, 3]
        assert out.objects.frame_index == index
        overlay = image_to_rgb(out.overlay)
        assert overlay.shape == (256, 256, 3)
        tinted = out.labels() > 0
        assert tinted.any() and np.any(overlay[tinted] != picture[tinted])

    # A correction of object 1 (a background click) by service.
    response = client.add_object(prompt_msg(object_id=1, points=[[153.6, 51.2]], labels=[0], clear_old_points=False))
    assert response.success and response.object_id == 1 and "corrected object 1" in response.message

    assert client.remove_object(2).success
    out = client.track(frames[(index + 1) % 20], index + 1)
    assert out.ids() == [1, 3]
    gone = client.remove_object(2)
    assert not gone.success and "unknown object id 2" in gone.message

    reset = client.reset()
    assert reset.success and "2 object(s)" in reset.message
    out = client.track(frames[0], index + 2)
    assert out.ids() == [] and out.objects.frame_index == 0
    again = client.add_object(prompt_msg(points=[POINT], labels=[1]))
    assert again.success and again.object_id == 1


def _masks_after_prompts(client, pictures, encoding, index0):
    """Reset, then: picture 0, a box and a click, pictures 1 and 2 -> every mask on the way."""
    client.reset()
    client.track(pictures[0], index0, encoding)
    masks = []
    for prompt in (prompt_msg(box=BOX), prompt_msg(points=[POINT], labels=[1])):
        response = client.add_object(prompt)
        assert response.success, response.message
        masks.append(paste_object_mask(response.object, (256, 256)))
    for offset in (1, 2):
        out = client.track(pictures[offset], index0 + offset, encoding)
        check_frame_consistency(out, stamp_of(out.objects.header), 256, 256)
        masks += [out.masks()[i] for i in (1, 2)]
    return masks


def test_colour_encodings_give_the_same_masks_as_rgb8(client, model_files):  # noqa: F811
    pictures = model_files.frames()[:3]
    reference = _masks_after_prompts(client, pictures, "rgb8", 100)
    assert reference[0].any()  # the box prompt's mask: something to compare
    for offset, encoding in enumerate(["bgr8", "rgba8", "bgra8"], start=1):
        masks = _masks_after_prompts(client, pictures, encoding, 100 + 10 * offset)
        for ours, expected in zip(masks, reference, strict=True):
            np.testing.assert_array_equal(ours, expected, err_msg=encoding)


def test_mono8_gives_the_same_masks_as_rgb8_of_the_grey_picture(client, model_files):  # noqa: F811
    grey = [np.repeat(f[:, :, :1], 3, axis=2) for f in model_files.frames()[:3]]
    reference = _masks_after_prompts(client, grey, "rgb8", 200)
    masks = _masks_after_prompts(client, grey, "mono8", 210)
    assert any(m.any() for m in reference)
    for ours, expected in zip(masks, reference, strict=True):
        np.testing.assert_array_equal(ours, expected)


def test_diagnostics_report_rates_latency_and_memory(client, model_files):  # noqa: F811
    frames = model_files.frames()
    client.track(frames[0], 300)
    assert client.add_object(prompt_msg(box=BOX)).success
    for index in range(1, 6):
        client.track(frames[index], 300 + index)
    count = len(client.diagnostics)
    client.wait_until(lambda: len(client.diagnostics) > count, 5, "a diagnostics message")
    status = client.diagnostics[-1].status[0]
    values = client.latest_diagnostics()
    assert status.name == "tracker_node: SAM 2 tracker" and status.hardware_id == "cpu"
    assert status.level == DiagnosticStatus.OK, status.message
    assert values["state"] == "active" and values["device"] == "cpu"
    assert values["objects"] == "1"
    assert float(values["processed rate (Hz)"]) > 0 and float(values["input rate (Hz)"]) > 0
    p50, p99 = float(values["latency p50 (ms)"]), float(values["latency p99 (ms)"])
    assert 0 < p50 <= p99
    assert float(values["tracker memory (MiB)"]) > 0 and float(values["process memory (MiB)"]) > 0
    assert values["input topic"].endswith("/image_in")


def test_every_large_best_effort_frame_is_received_or_counted_lost(client):
    """960x540 rgb8 frames over the default best-effort subscription: whatever DDS does with them
    (Fast DDS's default shared memory loses most), each is processed, dropped or counted lost."""
    before = len(client.diagnostics)
    client.wait_until(lambda: len(client.diagnostics) > before, 5, "diagnostics")
    start = {k: int(client.latest_diagnostics()[k]) for k in ("received frames (total)", "lost in transport (total)")}
    picture = np.random.default_rng(1).integers(0, 255, size=(540, 960, 3), dtype=np.uint8)
    for index in range(20):
        client.publish_frame(picture, 400 + index)
        time.sleep(0.05)
    # DDS notices a lost sample when a later one arrives: small frames (which always get through)
    # make the last big ones count.
    for index in range(3):
        client.track(np.zeros((64, 64, 3), np.uint8), 420 + index)

    def accounted():
        values = client.latest_diagnostics()
        return sum(int(values[k]) - start[k] for k in start) >= 23

    client.wait_until(accounted, 10, f"every frame to be received or counted as lost: {start} -> "
                      f"{client.latest_diagnostics()}")


def test_without_model_parameters_the_node_tracks_with_the_bundled_model(tmp_path):
    """No model, no checkpoint, no device: the node loads the bundled "default" model and its
    weights (no random-weights warning) and tracks a generated video's target."""
    video = generate_with_events(3, ProceduralConfig(num_frames=24))
    size = video.frames.shape[1]
    node = start_node(tmp_path, {})
    try:
        client = node.client
        log = node.process.log()
        assert "RANDOM" not in log
        assert f"configured: model default with weights {DEFAULT_WEIGHTS}" in log
        first = client.track(video.frames[0], 0)
        truth = video.labels[0] == 1
        response = client.add_object(prompt_msg(mask=truth))
        assert response.success and response.object_id == 1, response.message
        assert mask_iou(paste_object_mask(response.object, truth.shape), truth) > 0.8
        assert stamp_of(response.object.mask.header) == stamp_of(first.objects.header)
        for index in (1, 2):
            stamp = client.publish_frame(video.frames[index], index)
            out = client.outputs(stamp)
            check_frame_consistency(out, stamp, size, size)
            assert out.ids() == [1] and out.objects.frame_index == index
    finally:
        node.close()


def test_publish_masks_false_sends_boxes_and_scores_only(model_files, tmp_path):  # noqa: F811
    node = start_node(tmp_path, model_files.params(publish_masks=False))
    try:
        client = node.client
        frames = model_files.frames()
        client.track(frames[8], 8)  # the session's objects are visible on frames 8..19 (random weights)
        assert client.add_object(prompt_msg(box=BOX)).success
        checked = 0
        for index in range(9, 14):
            out = client.track(frames[index], index)
            (obj,) = out.objects.objects
            assert (obj.mask.width, obj.mask.height, len(obj.mask.data)) == (0, 0, 0)
            # One object: the label image (still full) holds its mask, so box and area must match it.
            mine = out.labels() == obj.id
            assert obj.area == mine.sum()
            if not obj.area:
                continue
            rows, cols = np.nonzero(mine)
            assert (obj.bbox.x_offset, obj.bbox.y_offset, obj.bbox.width, obj.bbox.height) == (
                cols.min(), rows.min(), np.ptp(cols) + 1, np.ptp(rows) + 1)
            with pytest.raises(ValueError, match="publish_masks"):
                paste_object_mask(obj, (256, 256))
            checked += 1
        assert checked, "the object was never visible: nothing checked"
    finally:
        node.close()
