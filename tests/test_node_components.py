"""The tracker node's parts without a ROS graph: frame slot, result/prompt conversion, parameters,
statistics."""

import math
import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from diagnostic_msgs.msg import DiagnosticStatus
from geometry_msgs.msg import Point, PointStamped
from rclpy.lifecycle import TransitionCallbackReturn
from std_msgs.msg import Header

from sam2_ros.diagnostics import EventWindow, Snapshot, TrackerStatistics, assess, diagnostic_array, diagnostic_values
from sam2_ros.frame_slot import LatestFrameSlot
from sam2_ros.image_conversion import image_to_labels, image_to_mask, mask_to_image, paste_object_mask
from sam2_ros.msg import Prompt
from sam2_ros.node_parameters import (ParameterError, TrackerParameters, parameters_from_values, resolve_autocast,
                                      resolve_device)
from sam2_ros.prompt_conversion import PromptConversionError, check_object_id, prompt_from_click, prompt_from_msg
from sam2_model.frame_summary import summarize_frame
from sam2_model.visualization import colour_of
from sam2_ros.result_conversion import draw_overlay, label_image_msg, tracked_objects_msg
from sam2_ros.tracker_node import TrackerNode


# ------------------------------------------------------------------------------- frame slot
def test_slot_keeps_only_the_newest_frame_and_counts_drops():
    slot = LatestFrameSlot()
    assert slot.take(timeout=0.01) is None
    assert not slot.put("a", 1.0)
    assert slot.put("b", 2.0) and slot.put("c", 3.0)
    pending = slot.take(timeout=0)
    assert (pending.item, pending.received_at) == ("c", 3.0)
    counts = slot.counts()
    assert (counts.received, counts.taken, counts.dropped) == (3, 1, 2)
    assert slot.take(timeout=0.01) is None


def test_slot_close_wakes_a_waiting_worker():
    slot = LatestFrameSlot()
    got = []
    worker = threading.Thread(target=lambda: got.append(slot.take(timeout=5)))
    worker.start()
    time.sleep(0.05)
    slot.close()
    worker.join(1)
    assert not worker.is_alive() and got == [None]
    slot.put("late")
    assert slot.take(timeout=0) is None


def test_slot_accounts_for_every_frame_under_contention():
    slot = LatestFrameSlot()
    taken = []

    def consume():
        while True:
            pending = slot.take(timeout=0.2)
            if pending is None:
                return
            taken.append(pending.item)
            time.sleep(0.001)

    consumer = threading.Thread(target=consume)
    consumer.start()
    for index in range(2000):
        slot.put(index)
    consumer.join(5)
    counts = slot.counts()
    assert counts.received == 2000 and counts.taken == len(taken)
    assert counts.taken + counts.dropped == 2000
    assert taken == sorted(taken) and taken[-1] == 1999  # in order, and the newest always gets through


# ------------------------------------------------------------------------------- results
def _result(logits, scores, ious=None, ids=None):
    """A stand-in for sam2_model.TrackingResult with full-resolution logits."""
    logits = torch.as_tensor(np.asarray(logits, np.float32))
    count = logits.shape[0]
    return SimpleNamespace(frame_index=4, obj_ids=ids or list(range(1, count + 1)), frame_hw=logits.shape[1:],
                           mask_logits=logits, object_score_logits=torch.tensor(scores, dtype=torch.float32),
                           iou_scores=torch.tensor(ious or [0.9] * count, dtype=torch.float32))


def test_colours_of_nearby_ids_differ():
    colours = np.array([colour_of(i) for i in range(1, 21)], dtype=int)
    distances = np.abs(colours[:, None] - colours[None]).sum(-1)
    assert distances[~np.eye(20, dtype=bool)].min() > 30
    np.testing.assert_array_equal(colour_of(7), colour_of(7))


def test_summarize_gives_overlaps_to_the_highest_logit():
    logits = np.full((2, 3, 3), -5.0)
    logits[0, :, :2] = 2.0
    logits[1, :, 1:] = 1.0
    logits[1, 0, 1] = 3.0
    state = summarize_frame(_result(logits, [1.0, 1.0], ids=[4, 9]))
    np.testing.assert_array_equal(state.labels, [[4, 9, 9], [4, 4, 9], [4, 4, 9]])


def test_summarize_visibility_boxes_and_absent_objects():
    logits = np.full((3, 6, 8), -1024.0)
    logits[0, 1:3, 2:5] = 4.0
    logits[1, 0, 0] = 1.0          # a pixel above 0, but the object score says absent
    logits[2, 5, 7] = 0.5
    state = summarize_frame(_result(logits, [2.0, -1.0, 0.1], ids=[3, 7, 300]))
    first, absent, third = state.objects
    assert (first.object_id, first.visible, first.area, first.bbox) == (3, True, 6, (2, 1, 3, 2))
    assert first.visibility == pytest.approx(1 / (1 + math.exp(-2.0)))
    assert first.occlusion == pytest.approx(1 - first.visibility)
    assert (absent.visible, absent.area, absent.bbox) == (False, 0, (0, 0, 0, 0)) and not absent.mask.any()
    assert third.bbox == (7, 5, 1, 1)
    assert state.labels[1, 2] == 3 and state.labels[5, 7] == 300 and state.labels[0, 0] == 0
    header = Header(frame_id="cam")
    msg = tracked_objects_msg(state, header, 12.5)
    assert [o.id for o in msg.objects] == [3, 7, 300] and msg.frame_index == 4 and msg.latency_ms == 12.5
    # The message's mask covers the box only; pasted back it is the thresholded logits.
    assert (msg.objects[0].mask.width, msg.objects[0].mask.height) == (3, 2)
    np.testing.assert_array_equal(image_to_mask(msg.objects[0].mask), first.mask)
    np.testing.assert_array_equal(paste_object_mask(msg.objects[0], (6, 8)), logits[0] > 0)
    assert (msg.objects[1].mask.width, msg.objects[1].mask.height) == (0, 0)
    assert not paste_object_mask(msg.objects[1], (6, 8)).any()
    label = label_image_msg(state, header)
    assert label.encoding == "mono16"  # id 300 does not fit a byte
    np.testing.assert_array_equal(image_to_labels(label), state.labels)


def test_summarize_without_objects():
    state = summarize_frame(SimpleNamespace(frame_index=0, obj_ids=[], frame_hw=(4, 5)))
    assert state.objects == [] and state.labels.shape == (4, 5) and not state.labels.any()
    assert label_image_msg(state, Header()).encoding == "mono8"


def test_overlay_tints_masks_draws_boxes_and_leaves_the_rest():
    rgb = np.full((60, 80, 3), 100, np.uint8)
    logits = np.full((2, 60, 80), -10.0)
    logits[0, 20:40, 30:50] = 5.0
    logits[1, 0:6, 70:80] = 5.0  # at the top-right corner: the id label must be clipped, not crash
    result = _result(logits, [3.0, 3.0], ids=[1, 12])
    with pytest.raises(ValueError, match="without its tinted picture"):
        draw_overlay(summarize_frame(result))
    out = draw_overlay(summarize_frame(result, picture=torch.from_numpy(rgb)))  # tinted as the backend does
    assert out.shape == rgb.shape and out.dtype == np.uint8
    expected = rgb[30, 40] * 0.5 + np.array(colour_of(1)) * 0.5
    np.testing.assert_allclose(out[30, 40], expected, atol=0.5)  # inside object 1, away from its box edge
    np.testing.assert_array_equal(out[20, 35], colour_of(1))  # its box outline
    np.testing.assert_array_equal(out[55, 5], rgb[55, 5])  # far from everything
    np.testing.assert_array_equal(rgb, 100)  # the input is not modified


# ------------------------------------------------------------------------------- prompts
def test_prompt_from_msg():
    msg = Prompt(object_id=0, points=[Point(x=1.0, y=2.0), Point(x=3.0, y=4.0, z=9.0)], labels=[1, 0],
                 clear_old_points=False)
    request = prompt_from_msg(msg)
    prompt = request.prompt
    assert prompt.points == [[1.0, 2.0], [3.0, 4.0]] and prompt.labels == [1, 0] and prompt.box is None
    assert prompt.mask is None and prompt.clear_old_points is False
    assert request.describe() == "2 point(s)"

    msg = Prompt(object_id=5, use_box=True, box=[1.0, 2.0, 3.0, 4.0])
    mask = np.zeros((4, 6), bool)
    mask[1, 2] = True
    msg.mask = mask_to_image(mask, Header())
    request = prompt_from_msg(msg)
    assert request.object_id == 5 and request.prompt.box == [1.0, 2.0, 3.0, 4.0]
    np.testing.assert_array_equal(request.prompt.mask, mask)
    assert request.describe() == "a box + a 6x4 mask"
    assert set(request.prompt.tracker_kwargs()) == {"points", "labels", "box", "mask", "clear_old_points"}


@pytest.mark.parametrize("fields, message", [
    (dict(), "empty prompt"),
    (dict(points=[Point()]), "1 points but 0 labels"),
    (dict(labels=[1]), "0 points but 1 labels"),
    (dict(object_id=-1, use_box=True), "out of range"),
    (dict(object_id=65536, use_box=True), "out of range"),
])
def test_prompt_from_msg_refuses(fields, message):
    with pytest.raises(PromptConversionError, match=message):
        prompt_from_msg(Prompt(**fields))


def test_click_on_the_far_edge_lands_on_the_last_pixel():
    click = PointStamped()
    click.point.x, click.point.y = 640.0, 480.0
    assert prompt_from_click(click, (480, 640)).prompt.points == [[639.0, 479.0]]
    click.point.x = 700.0
    assert prompt_from_click(click, (480, 640)).prompt.points == [[700.0, 479.0]]  # the tracker says "outside"
    request = prompt_from_click(click, None)
    assert request.object_id == 0 and request.prompt.labels == [1]
    assert check_object_id(0) == 0
    with pytest.raises(PromptConversionError):
        check_object_id(0, allow_new=False)


# ------------------------------------------------------------------------------- parameters
def test_parameters_defaults_and_type_checks():
    assert parameters_from_values({}) == TrackerParameters()
    params = parameters_from_values({"max_objects": 3, "diagnostics_period": 2, "compressed": True})
    assert params.tracking.max_objects == 3 and params.diagnostics_period == 2.0 and params.compressed
    with pytest.raises(ParameterError) as error:
        parameters_from_values({"max_objects": 2.5, "compressed": "yes", "device": 3})
    text = str(error.value)
    assert "max_objects must be an integer" in text and "compressed must be true or false" in text
    assert "device must be a string" in text


def test_optional_tracking_parameters_are_typed_by_their_base_type():
    # fill_hole_area is Optional[int]: unset (None) keeps the model's value, an int is taken, and
    # anything else is named (type annotations are resolved, not compared as text).
    assert parameters_from_values({"fill_hole_area": None}).tracking.fill_hole_area is None
    assert parameters_from_values({"fill_hole_area": 3}).tracking.fill_hole_area == 3
    assert parameters_from_values({"non_overlap_masks": True}).tracking.non_overlap_masks is True
    with pytest.raises(ParameterError, match="fill_hole_area must be an integer, got 'x'"):
        parameters_from_values({"fill_hole_area": "x"})
    with pytest.raises(ParameterError, match="clear_non_cond_mem_around_input must be true or false"):
        parameters_from_values({"clear_non_cond_mem_around_input": 1})
    with pytest.raises(ParameterError, match="max_objects 70000 must be at most 65535"):
        parameters_from_values({"max_objects": 70000})


def test_parameter_value_checks_list_every_problem():
    with pytest.raises(ParameterError) as error:
        parameters_from_values({"device": "gpu", "fill_hole_area": -1, "max_cond_frames": 0, "autocast": "int8"})
    text = str(error.value)
    for fragment in ("device 'gpu'", "fill_hole_area -1", "max_cond_frames 0", "autocast 'int8'"):
        assert fragment in text
    assert parameters_from_values({"device": "cuda:1"}).device == "cuda:1"


def test_device_resolution():
    assert resolve_device("cpu") == "cpu"
    if torch.cuda.is_available():
        assert resolve_device("auto") == "cuda"
        assert resolve_autocast("auto", "cuda") == "bfloat16"
    else:
        assert resolve_device("auto") == "cpu"
        with pytest.raises(ParameterError, match="no CUDA GPU"):
            resolve_device("cuda")
    assert resolve_autocast("auto", "cpu") is None and resolve_autocast("none", "cuda") is None
    assert resolve_autocast("float16", "cpu") == "float16"


# ------------------------------------------------------------------------------- statistics
def test_event_window_rates_and_percentiles():
    window = EventWindow(window_s=2.0)
    for t in range(10):
        window.add(value=float(t), now=100.0 + t * 0.5)  # 2 Hz for 5 s
    now = 104.5
    assert window.count(now) == 5 and window.rate(now) == pytest.approx(2.5)
    p50, p99 = window.percentiles((50, 99), now)
    assert p50 == pytest.approx(7.0) and 8.9 < p99 <= 9.0
    assert EventWindow(1.0).percentiles((50,)) is None


def _snapshot(**changes):
    values = dict(state="active", device="cpu", input_topic="/cam", input_hz=30.0, processed_hz=30.0,
                  dropped_in_window=0, received_total=100, processed_total=100, dropped_total=0, lost_in_window=0,
                  lost_total=0, rejected_frames_total=0, rejected_prompts_total=0, latency_p50_ms=20.0,
                  latency_p99_ms=30.0, num_objects=2, tracker_memory_bytes=2**20, process_rss_bytes=2**28,
                  cuda_allocated_bytes=None, seconds_since_input=0.1)
    values.update(changes)
    return Snapshot(**values)


def test_assessment_warns_when_behind_lossy_or_without_input():
    assert assess(_snapshot(), 5.0)[0] == DiagnosticStatus.OK
    level, message = assess(_snapshot(processed_hz=10.0, dropped_in_window=100), 5.0)
    assert level == DiagnosticStatus.WARN and "falling behind" in message
    level, message = assess(_snapshot(lost_in_window=3), 5.0)
    assert level == DiagnosticStatus.WARN and "lost in transport" in message
    # Both at once are both named (a loaded node loses images in transport and drops frames).
    level, message = assess(_snapshot(processed_hz=10.0, dropped_in_window=100, lost_in_window=3), 5.0)
    assert level == DiagnosticStatus.WARN and "falling behind" in message and "lost in transport" in message
    level, message = assess(_snapshot(seconds_since_input=None), 5.0)
    assert level == DiagnosticStatus.WARN and "no images on /cam" in message
    assert assess(_snapshot(state="inactive", seconds_since_input=None), 5.0)[0] == DiagnosticStatus.OK
    array = diagnostic_array(_snapshot(), "tracker_node: SAM 2 tracker", Header().stamp, 5.0)
    values = diagnostic_values(array)
    assert values["latency p99 (ms)"] == "30.0" and values["tracker memory (MiB)"] == "1.0"
    assert values["cuda allocated (MiB)"] == "n/a"


def test_statistics_count_drops_and_losses():
    stats = TrackerStatistics(window_s=5.0)
    for replaced in (False, True, True):
        stats.on_received(replaced)
    stats.on_processed(12.0)
    stats.on_lost(4)
    assert (stats.received_total, stats.dropped_total, stats.processed_total, stats.lost_total) == (3, 2, 1, 4)
    assert stats.dropped.count() == 2 and stats.lost.count() == 4


# ------------------------------------------------------------------------------- node callbacks
class _NodeProbe:
    """Stands in for a TrackerNode in calls of its unbound methods: records what they touch."""

    def __init__(self):
        self._tracker_lock = threading.Lock()
        self.lock_held_on_read = []
        self.prompts, self.releases = [], 0
        quiet = SimpleNamespace(info=lambda *a, **k: None, warning=lambda *a, **k: None,
                                error=lambda *a, **k: None)
        self.get_logger = lambda: quiet
        self._stats = SimpleNamespace(on_rejected_prompt=lambda: None)

    @property
    def _last_frame(self):
        self.lock_held_on_read.append(self._tracker_lock.locked())
        return SimpleNamespace(height=10, width=20)

    def _apply_prompt(self, request):
        assert not self._tracker_lock.locked(), "_apply_prompt takes the tracker lock itself"
        self.prompts.append(request)
        return 1, None, None

    def _release_everything(self):
        self.releases += 1
        return TransitionCallbackReturn.SUCCESS


def test_click_reads_the_last_frame_under_the_tracker_lock():
    probe = _NodeProbe()
    TrackerNode._on_click(probe, PointStamped(point=Point(x=20.0, y=3.0)))
    assert probe.lock_held_on_read == [True]           # the worker replaces _last_frame under the lock
    assert probe.prompts[0].prompt.points == [[19.0, 3.0]]    # the frame's size was used: pulled onto the last column


def test_shutdown_and_error_release_everything_the_same_way():
    probe = _NodeProbe()
    assert TrackerNode.on_shutdown(probe, None) == TransitionCallbackReturn.SUCCESS
    assert TrackerNode.on_error(probe, None) == TransitionCallbackReturn.SUCCESS
    assert probe.releases == 2
