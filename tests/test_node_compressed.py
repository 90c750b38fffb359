"""Compressed input (compressed:=true): <image>/compressed, JPEG and PNG, garbage refused."""

import io

import numpy as np
import pytest
from PIL import Image as PILImage

import sam2_model
from node_harness import (assert_node_masks, check_frame_consistency, model_files,  # noqa: F401
                          one_torch_thread, prompt_msg, start_node)
from parity_sessions import build_session_model

pytestmark = pytest.mark.ros

BOX = [128.0, 133.12, 212.48, 199.68]


@pytest.fixture(scope="module")
def running(model_files, tmp_path_factory):  # noqa: F811
    node = start_node(tmp_path_factory.mktemp("compressed"), model_files.params(compressed=True,
                                                                                 diagnostics_period=0.2))
    yield node
    node.close()


def _encode(rgb, fmt):
    buffer = io.BytesIO()
    PILImage.fromarray(rgb).save(buffer, format=fmt, quality=90)
    return buffer.getvalue()


def _decoded(data):
    return np.array(PILImage.open(io.BytesIO(data)).convert("RGB"))


@pytest.mark.usefixtures("one_torch_thread")
def test_jpeg_and_png_input_and_garbage(running, model_files):  # noqa: F811
    client, process = running.client, running.process
    frames = model_files.frames()
    session = model_files.session
    reference = sam2_model.StreamingTracker(build_session_model(session),
                                           fill_hole_area=session["predictor_options"]["fill_hole_area"])
    client.wait_until(lambda: client.latest_diagnostics() is not None, 5, "diagnostics")
    assert client.latest_diagnostics()["input topic"] == f"{process.namespace}/image_in/compressed"

    # PNG is lossless: exactly the masks of the raw frames.
    data = _encode(frames[0], "PNG")
    out = client.outputs(client.publish_compressed(data, 0, "png"))
    reference.track(frames[0])
    assert client.add_object(prompt_msg(box=BOX)).success
    reference.add_prompt(1, box=BOX)
    for index in range(1, 4):
        stamp = client.publish_compressed(_encode(frames[index], "PNG"), index, "rgb8; png compressed rgb8")
        out = client.outputs(stamp)
        check_frame_consistency(out, stamp, 256, 256)
        assert_node_masks(out, reference.track(frames[index]))

    # JPEG: the masks of the decoded pictures.
    for index in range(4, 7):
        data = _encode(frames[index], "JPEG")
        stamp = client.publish_compressed(data, index, "bgr8; jpeg compressed bgr8")
        out = client.outputs(stamp)
        check_frame_consistency(out, stamp, 256, 256)
        assert_node_masks(out, reference.track(_decoded(data)))

    # Garbage: refused one by one (each waits for its rejection so none is replaced unseen).
    garbage = [b"", bytes(range(256)) * 8, _encode(frames[7], "JPEG")[:300], _encode(frames[7], "BMP"),
               b"\x89PNG\r\n\x1a\n" + bytes(100)]
    for number, data in enumerate(garbage, start=1):
        client.publish_compressed(data, 100 + number, "jpeg")
        client.wait_diagnostic("rejected frames (total)", number)
    assert "compressed image has no data" in process.log()  # the first; later warnings are throttled
    stamp = client.publish_compressed(_encode(frames[7], "PNG"), 7, "png")
    out = client.outputs(stamp)
    assert_node_masks(out, reference.track(frames[7]))
    assert out.objects.frame_index == 7 and process.alive()
