"""Bad input never kills the node nor changes tracking: services say what is wrong, topics warn.

A reference StreamingTracker in the test process gets only the good inputs; after every batch
of bad ones the node's masks must still equal the reference's. An error no handler expects (the
model raising RuntimeError) is answered and counted the same way, and the node keeps serving.
"""

import math
from pathlib import Path

import numpy as np
import pytest
from sensor_msgs.msg import Image
from std_msgs.msg import Header

import sam2_model
from sam2_ros.srv import Discover
from node_harness import (assert_node_masks, make_header, model_files, one_torch_thread,  # noqa: F401
                          prompt_msg, rgb_image, start_node, stamp_of)
from parity_sessions import build_session_model
from raising_backend_node import FAULT_FILE

pytestmark = pytest.mark.ros

BOX = [128.0, 133.12, 212.48, 199.68]
NAN = math.nan

# (prompt keyword arguments, a fragment the answer must contain)
BAD_PROMPTS = [
    (dict(points=[[300, 10]], labels=[1]), "outside the 256x256 frame"),
    (dict(points=[[10, -1]], labels=[1]), "outside the 256x256 frame"),
    (dict(points=[[NAN, 10]], labels=[1]), "NaN"),
    (dict(points=[[10, 10], [20, 20]], labels=[1]), "2 points but 1 labels"),
    (dict(points=[[10, 10]], labels=[]), "1 points but 0 labels"),
    (dict(points=[[10, 10]], labels=[5]), "labels must be 1"),
    (dict(object_id=7, points=[[10, 10]], labels=[1]), "unknown object id 7"),
    (dict(object_id=-3, points=[[10, 10]], labels=[1]), "out of range"),
    (dict(object_id=70000, points=[[10, 10]], labels=[1]), "out of range"),
    (dict(mask=np.ones((100, 120), bool)), "mask is 120x100 but the frame is 256x256"),
    (dict(mask=np.ones((256, 256), bool), points=[[10, 10]], labels=[1]), "cannot be combined"),
    (dict(), "empty prompt"),
    (dict(box=[200, 10, 100, 50]), "x1 < x0"),
    (dict(box=[0, 0, 300, 50]), "outside"),
    (dict(box=[0, NAN, 30, 50]), "NaN"),
]
# Bad only where object 1 already has a prompt on the frame (frame 0, by service): on a later frame a
# box without clearing is a valid correction, so it is not sent on the topic.
BOX_AFTER_PROMPT = (dict(object_id=1, box=[0, 0, 30, 50], clear_old_points=False), "box must come first")


def _bad_mask_prompts():
    """Mask images the node must refuse before they reach the tracker."""
    rgb_mask = rgb_image(np.zeros((256, 256, 3), np.uint8), Header())
    short = Image(height=256, width=256, encoding="mono8", step=256, data=bytes(100))
    return [(prompt_msg(mask_msg=rgb_mask), "mask encoding must be mono8"),
            (prompt_msg(mask_msg=short), "needs 65536 bytes of data, got 100")]


@pytest.fixture(scope="module")
def running(model_files, tmp_path_factory):  # noqa: F811
    node = start_node(tmp_path_factory.mktemp("bad_input"), model_files.params(max_objects=2, diagnostics_period=0.2))
    yield node
    node.close()


class Reference:
    """The same tracker settings as the node, fed only the good inputs."""

    def __init__(self, session):
        options = session["predictor_options"]
        self.tracker = sam2_model.StreamingTracker(build_session_model(session),
                                                   fill_hole_area=options["fill_hole_area"], max_objects=2)


@pytest.mark.usefixtures("one_torch_thread")
def test_bad_input_is_refused_and_changes_nothing(running, model_files):  # noqa: F811
    client, process = running.client, running.process
    frames = model_files.frames()
    reference = Reference(model_files.session)

    # Prompts before any image.
    before = client.add_object(prompt_msg(box=BOX))
    assert not before.success and "no image yet" in before.message
    client.click(10, 10)
    client.prompt_pub.publish(prompt_msg(box=BOX))
    # Topics do not keep order with the image topic: wait until both are refused, or a late one
    # would land on the first frame and add an object.
    client.wait_diagnostic("rejected prompts (total)", 3)

    out = client.track(frames[0], 0)
    reference.tracker.track(frames[0])
    assert client.add_object(prompt_msg(box=BOX)).success
    reference.tracker.add_prompt(1, box=BOX)

    # Every bad prompt, by service: a clear answer.
    for kwargs, fragment in BAD_PROMPTS + [BOX_AFTER_PROMPT]:
        response = client.add_object(prompt_msg(**kwargs))
        assert not response.success, kwargs
        assert fragment in response.message, (kwargs, response.message)
    for prompt, fragment in _bad_mask_prompts():
        response = client.add_object(prompt)
        assert not response.success and fragment in response.message, response.message

    # Too many objects (max_objects 2): the third is refused.
    assert client.add_object(prompt_msg(points=[[40, 40]], labels=[1])).success
    reference.tracker.add_prompt(2, points=[[40, 40]], labels=[1])
    third = client.add_object(prompt_msg(points=[[60, 60]], labels=[1]))
    assert not third.success and "maximum of 2 objects" in third.message

    # Unknown ids for removal.
    for object_id, fragment in [(9, "unknown object id 9"), (0, "out of range"), (-1, "out of range")]:
        response = client.remove_object(object_id)
        assert not response.success and fragment in response.message

    out = client.track(frames[1], 1)
    assert_node_masks(out, reference.tracker.track(frames[1]))
    assert out.objects.frame_index == 1

    # The same bad prompts on the fire-and-forget topic and as clicks: warnings, nothing else.
    for kwargs, _ in BAD_PROMPTS:
        client.prompt_pub.publish(prompt_msg(**kwargs))
    for prompt, _ in _bad_mask_prompts():
        client.prompt_pub.publish(prompt)
    for x, y in [(1000, 10), (10, -5), (NAN, 3)]:
        client.click(x, y)
    client.click(60, 60)  # a good click, but the tracker is full

    # Bad images: unsupported encoding, short data, a step shorter than a row, an empty image.
    header = make_header(50)
    bad_images = [Image(header=header, height=256, width=256, encoding="yuv422", step=512, data=bytes(256 * 512)),
                  Image(header=header, height=256, width=256, encoding="rgb8", step=768, data=bytes(1000)),
                  Image(header=header, height=256, width=256, encoding="rgb8", step=10, data=bytes(2560)),
                  Image(header=header, height=0, width=0, encoding="rgb8", step=0)]
    for number, image in enumerate(bad_images, start=1):
        client.image_pub.publish(image)
        # Wait for the rejection before the next frame, which would otherwise replace this one.
        client.wait_diagnostic("rejected frames (total)", number)
        out = client.track(frames[2], 51)
        client.objects.by_stamp.pop(stamp_of(out.objects.header))
        client.labels.by_stamp.pop(stamp_of(out.objects.header))
        reference.tracker.track(frames[2])

    client.wait_until(lambda: "image on" in process.log() and "prompt on ~/prompt ignored" in process.log()
                      and "click ignored" in process.log(), 10, "the warnings in the node's log")
    assert "encoding 'yuv422' is not supported" in process.log()  # (later warnings may be throttled)
    assert stamp_of(header) not in client.objects.by_stamp

    out = client.track(frames[3], 60)
    assert_node_masks(out, reference.tracker.track(frames[3]))
    assert out.ids() == [1, 2] and out.objects.frame_index == 2 + len(bad_images)
    assert process.alive()

    # Diagnostics count the rejections: by service (bad prompts, bad masks, the third object, the
    # one before any image), on the topic (the same plus the one before any image) and clicks.
    by_service = len(BAD_PROMPTS) + 1 + 2 + 1 + 1
    on_topics = len(BAD_PROMPTS) + 2 + 1 + 4 + 1
    client.wait_diagnostic("rejected prompts (total)", by_service + on_topics)
    assert client.latest_diagnostics()["rejected frames (total)"] == str(len(bad_images))


def test_an_unexpected_error_in_the_model_is_answered_and_the_node_keeps_serving(model_files, tmp_path,  # noqa: F811
                                                                                 monkeypatch):
    """Every prompt and service path with a backend that raises RuntimeError (as a CUDA
    out-of-memory would): success false naming the error, prompts counted as refused, and once the
    model works again the same node tracks and answers (the executor was not ended)."""
    switch = tmp_path / "faults_on"
    monkeypatch.setenv(FAULT_FILE, str(switch))
    script = Path(__file__).with_name("raising_backend_node.py")
    running = start_node(tmp_path, model_files.params(diagnostics_period=0.2), program=(str(script),))
    client, process = running.client, running.process
    try:
        frames = model_files.frames()
        client.track(frames[0], 0)
        switch.touch()
        answers = {
            "add_object": client.add_object(prompt_msg(box=BOX)),
            "remove_object": client.remove_object(1),
            "reset": client.reset(),
            "discover": client.call(Discover, f"{process.fqn}/discover", Discover.Request()),
        }
        for name, answer in answers.items():
            assert not answer.success, name
            assert answer.message.startswith(f"{name} failed, unexpected error: RuntimeError: CUDA out of memory"), \
                answer.message
        client.prompt_pub.publish(prompt_msg(box=BOX))
        client.click(10, 10)
        # The service's refusal and the topic's two, counted as every refused prompt is.
        client.wait_diagnostic("rejected prompts (total)", 3)
        assert "RuntimeError: CUDA out of memory" in process.log() and process.alive()

        switch.unlink()
        added = client.add_object(prompt_msg(box=BOX))
        assert added.success and added.object_id == 1, added.message
        assert client.track(frames[1], 1).ids() == [1]
        assert client.reset().success
    finally:
        running.close()
