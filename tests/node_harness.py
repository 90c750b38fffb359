"""Test harness for the tracker node in a real ROS 2 graph.

- ``NodeProcess``: ``python -m sam2_ros.tracker_node --ros-args ...`` in a subprocess (the real
  executable, its own process and DDS participant), output captured to a log file.
- ``GraphClient``: the test's side of the graph, an rclpy node in its own Context spun by a
  background executor: publishes images, prompts and clicks, records every output by stamp,
  calls services, drives lifecycle transitions and sets parameters.
- ``model_files``: the parity micro model (../shared/parity) written as the YAML config +
  checkpoint the node's ``model``/``checkpoint`` parameters take.

ROS isolation (a random ROS_DOMAIN_ID, localhost discovery) comes from conftest.py; node
subprocesses inherit it.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import pytest
import rclpy
import torch
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import Point, PointStamped
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rcl_interfaces.srv import SetParameters
from rclpy.executors import MultiThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header
from std_srvs.srv import Trigger

from sam2_ros.diagnostics import diagnostic_values
from sam2_ros.image_conversion import image_to_labels, mask_to_image, paste_object_mask
from sam2_ros.msg import Prompt, TrackedObjects
from sam2_ros.spin_teardown import SpinThread, stop_spinning
from sam2_ros.srv import AddObject, RemoveObject

from child_process import FAULT_HANDLER, stop_process
from parity_sessions import MICRO_SESSION, PARITY_DIR, load_session

REPO = Path(__file__).resolve().parents[1]
# Next to the parity sessions (../shared): SAM2_PARITY_DIR moves both, e.g. for a git worktree.
MEDIA_DIR = PARITY_DIR.parent / "media"
NODE_START_TIMEOUT_S = 60.0
_names = itertools.count()

Stamp = Tuple[int, int]


# ------------------------------------------------------------------------------------ model files
@dataclass
class ModelFiles:
    config: Path
    checkpoint: Path
    session: Dict[str, Any]

    def params(self, **extra) -> Dict[str, Any]:
        """Node parameters for this model, with the parity session's predictor options."""
        options = self.session["predictor_options"]
        params = {"model": str(self.config), "checkpoint": str(self.checkpoint), "device": "cpu",
                  "fill_hole_area": int(options["fill_hole_area"]),
                  "corrections_as_cond": bool(options["add_all_frames_to_correct_as_cond"])}
        params.update(extra)
        return params

    def frames(self) -> List[np.ndarray]:
        return [f.numpy() for f in self.session["frames"]]


def write_model_files(session: Dict[str, Any], directory: Path) -> ModelFiles:
    config = directory / "micro.yaml"
    config.write_text(session["resolved_config_yaml"])
    checkpoint = directory / "micro.pt"
    torch.save({"model": session["state_dict"]}, checkpoint)
    return ModelFiles(config, checkpoint, session)


@pytest.fixture(scope="session")
def model_files(tmp_path_factory) -> ModelFiles:
    return write_model_files(load_session(MICRO_SESSION), tmp_path_factory.mktemp("micro_model"))


@contextlib.contextmanager
def single_thread():
    """PyTorch on one thread in this process for the duration (as the node under test runs)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@pytest.fixture
def one_torch_thread():
    """For tests that compare the node with a reference tracker computed in this process."""
    with single_thread():
        yield


# ------------------------------------------------------------------------------------ the node
def _param_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class NodeProcess:
    """The tracker node executable in a subprocess."""

    def __init__(self, params: Dict[str, Any], log_path: Path, namespace: str = "/sam2_test",
                 image_topic: str = "image_in", extra_args: Tuple[str, ...] = (),
                 program: Tuple[str, ...] = ("-m", "sam2_ros.tracker_node")):
        """``program``: what Python runs (the node's module, or a script wrapping its ``main``)."""
        self.namespace = namespace
        self.name = "tracker_node"
        self.fqn = f"{namespace}/{self.name}"
        self.image_topic = image_topic if image_topic.startswith("/") else f"{namespace}/{image_topic}"
        self.log_path = log_path
        args = [sys.executable, *program, "--ros-args", "-r", f"__ns:={namespace}",
                "-r", f"image:={self.image_topic}"]
        for name, value in params.items():
            args += ["-p", f"{name}:={_param_text(value)}"]
        self.args = args + list(extra_args)
        self._log = open(log_path, "w")
        # One intra-op thread: the node and the test process share two cores, and oversubscribed
        # OpenMP threads make PyTorch several times slower. Reference trackers in the test process
        # run under `single_thread()` too, so both compute in the same order.
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", **FAULT_HANDLER}
        self.process = subprocess.Popen(self.args, stdout=self._log, stderr=subprocess.STDOUT, cwd=REPO, env=env)

    def alive(self) -> bool:
        return self.process.poll() is None

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout_s: float = 15.0, interrupt: int = signal.SIGINT) -> int:
        """SIGINT (as Ctrl-C would; or ``interrupt``); then, if need be, SIGABRT and kill
        (``stop_process``); returns the exit code."""
        stop_process(self.process, interrupt, timeout_s)
        self._log.close()
        return self.process.returncode


# ------------------------------------------------------------------------------------ the tester
def stamp_of(header: Header) -> Stamp:
    return (header.stamp.sec, header.stamp.nanosec)


def make_header(index: int, frame_id: str = "camera") -> Header:
    """Distinct, increasing stamps: 1000 s + index * 10 ms (+ a little so nanosec is never 0)."""
    header = Header(frame_id=frame_id)
    nanoseconds = 1000 * 10**9 + index * 10**7 + 123
    header.stamp.sec, header.stamp.nanosec = divmod(nanoseconds, 10**9)
    return header


def rgb_image(rgb: np.ndarray, header: Header, encoding: str = "rgb8") -> Image:
    """An RGB frame as a raw Image in any supported encoding."""
    channels = {"rgb8": rgb, "bgr8": rgb[:, :, ::-1],
                "rgba8": np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)]),
                "bgra8": np.dstack([rgb[:, :, ::-1], np.full(rgb.shape[:2], 255, np.uint8)]),
                "mono8": rgb[:, :, 0]}[encoding]
    pixels = np.ascontiguousarray(channels)
    height, width = pixels.shape[:2]
    msg = Image(header=header, height=height, width=width, encoding=encoding, is_bigendian=0,
                step=pixels.strides[0])
    msg.data = _bytes_array(pixels)
    return msg


def _bytes_array(pixels: np.ndarray):
    import array

    out = array.array("B")
    out.frombytes(np.ascontiguousarray(pixels).tobytes())
    return out


def prompt_msg(object_id: int = 0, points=None, labels=None, box=None, mask: Optional[np.ndarray] = None,
               clear_old_points: bool = True, mask_msg: Optional[Image] = None) -> Prompt:
    msg = Prompt(object_id=object_id, clear_old_points=clear_old_points)
    msg.points = [Point(x=float(x), y=float(y)) for x, y in (points or [])]
    msg.labels = [int(v) for v in (labels or [])]
    if box is not None:
        msg.use_box = True
        msg.box = [float(v) for v in box]
    if mask_msg is not None:
        msg.mask = mask_msg
    elif mask is not None:
        msg.mask = mask_to_image(np.asarray(mask, bool), Header())
    return msg


class _Recorder:
    """Messages of one topic by stamp (bounded), with waiting."""

    def __init__(self, keep: int = 400):
        self.by_stamp: "OrderedDict[Stamp, Any]" = OrderedDict()
        self.arrivals: List[Tuple[float, Stamp]] = []
        self.count = 0
        self._keep = keep
        self._condition = threading.Condition()

    def __call__(self, msg) -> None:
        with self._condition:
            key = stamp_of(msg.header)
            self.by_stamp[key] = msg
            self.by_stamp.move_to_end(key)
            while len(self.by_stamp) > self._keep:
                self.by_stamp.popitem(last=False)
            self.arrivals.append((time.monotonic(), key))
            self.count += 1
            self._condition.notify_all()

    def wait(self, stamp: Stamp, timeout_s: float = 10.0):
        with self._condition:
            if not self._condition.wait_for(lambda: stamp in self.by_stamp, timeout_s):
                return None
            return self.by_stamp[stamp]

    def wait_count(self, count: int, timeout_s: float = 10.0) -> bool:
        with self._condition:
            return self._condition.wait_for(lambda: self.count >= count, timeout_s)

    def latest(self):
        with self._condition:
            return next(reversed(self.by_stamp.values())) if self.by_stamp else None

    def clear(self) -> None:
        with self._condition:
            self.by_stamp.clear()
            self.arrivals.clear()
            self.count = 0


@dataclass
class FrameOutputs:
    """What the node published for one input frame."""

    objects: TrackedObjects
    label_image: Optional[Image]
    overlay: Optional[Image] = None

    def ids(self) -> List[int]:
        return [o.id for o in self.objects.objects]

    def frame_hw(self) -> Tuple[int, int]:
        return int(self.label_image.height), int(self.label_image.width)

    def masks(self) -> Dict[int, np.ndarray]:
        """Full-frame masks (each message's mask covers its box only: pasted back)."""
        return {o.id: paste_object_mask(o, self.frame_hw()) for o in self.objects.objects}

    def labels(self) -> np.ndarray:
        return image_to_labels(self.label_image)


class GraphClient:
    """The test's rclpy node, talking to one tracker node."""

    def __init__(self, node: NodeProcess, overlay: bool = False, compressed: bool = False,
                 image_reliability: ReliabilityPolicy = ReliabilityPolicy.RELIABLE):
        self.target = node
        self.context = rclpy.Context()
        rclpy.init(context=self.context, args=[])
        self.node = rclpy.create_node(f"sam2_tester_{next(_names)}_{uuid.uuid4().hex[:6]}", context=self.context)
        self.executor = MultiThreadedExecutor(num_threads=2, context=self.context)
        self.executor.add_node(self.node)
        fqn = node.fqn
        image_qos = QoSProfile(depth=10, reliability=image_reliability)
        self.image_pub = self.node.create_publisher(Image, node.image_topic, image_qos)
        self.compressed_pub = self.node.create_publisher(CompressedImage, node.image_topic + "/compressed", image_qos)
        self.prompt_pub = self.node.create_publisher(Prompt, f"{fqn}/prompt", 50)
        self.click_pub = self.node.create_publisher(PointStamped, f"{fqn}/click", 50)
        self.objects = _Recorder()
        self.labels = _Recorder()
        self.overlays = _Recorder()
        self.diagnostics: List[DiagnosticArray] = []
        self._subs = [
            self.node.create_subscription(TrackedObjects, f"{fqn}/objects", self.objects, 50),
            self.node.create_subscription(Image, f"{fqn}/label_image", self.labels, 50),
            self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 50),
        ]
        if overlay:
            self._subs.append(self.node.create_subscription(Image, f"{fqn}/overlay", self.overlays, 50))
        self._clients: Dict[Tuple[type, str], Any] = {}
        self._compressed = compressed
        self._overlay = overlay
        self._spinner = SpinThread(self.executor)

    # ------------------------------------------------------------------ plumbing
    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        if msg.status and msg.status[0].name.startswith(f"{self.target.name}:"):
            self.diagnostics.append(msg)
            del self.diagnostics[:-200]

    def close(self) -> None:
        stop_spinning(self.executor, self._spinner, [self.node], self.context)

    def wait_until(self, condition: Callable[[], bool], timeout_s: float = 10.0, what: str = "condition") -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            if not self.target.alive():
                pytest.fail(f"tracker node died while waiting for {what}:\n{self.target.log()[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}\n"
                            f"node log tail:\n{self.target.log()[-3000:]}")
            time.sleep(0.02)

    def wait_active(self, timeout_s: float = NODE_START_TIMEOUT_S) -> None:
        """Until the node is active and every topic between us is matched both ways.

        Discovery is not symmetric: our side may see the node's subscription before the node's
        side accepts our samples (and best-effort images are never resent), so probe frames are
        published until one comes back on every output; then the node is reset, forgetting them.
        """
        image_pub = self.compressed_pub if self._compressed else self.image_pub
        self.wait_until(lambda: image_pub.get_subscription_count() > 0 and self._subs[0].get_publisher_count() > 0
                        and self._subs[1].get_publisher_count() > 0, timeout_s, "the node to become active")
        self.wait_until(lambda: self.prompt_pub.get_subscription_count() > 0
                        and self.click_pub.get_subscription_count() > 0, timeout_s, "the prompt subscriptions")
        probe = np.zeros((8, 8, 3), np.uint8)
        deadline = time.monotonic() + timeout_s
        for number in itertools.count(1):
            stamp = self._publish_probe(probe, -number)
            if self.try_outputs(stamp, 1.0, self._overlay) is not None:
                break
            if time.monotonic() > deadline:
                pytest.fail(f"probe frames got no outputs within {timeout_s:.0f} s\n{self.target.log()[-3000:]}")
        assert self.reset().success
        for recorder in (self.objects, self.labels, self.overlays):
            recorder.clear()

    def _publish_probe(self, probe: np.ndarray, index: int) -> Stamp:
        if not self._compressed:
            return self.publish_frame(probe, index)
        import io

        from PIL import Image as PILImage

        buffer = io.BytesIO()
        PILImage.fromarray(probe).save(buffer, format="PNG")
        return self.publish_compressed(buffer.getvalue(), index, "png")

    def call(self, srv_type, name: str, request, timeout_s: float = 15.0):
        key = (srv_type, name)
        if key not in self._clients:
            self._clients[key] = self.node.create_client(srv_type, name)
        client = self._clients[key]
        self.wait_until(lambda: client.service_is_ready(), timeout_s, f"service {name}")
        future = client.call_async(request)
        self.wait_until(future.done, timeout_s, f"the answer of {name}")
        return future.result()

    # ------------------------------------------------------------------ inputs
    def publish_frame(self, rgb: np.ndarray, index: int, encoding: str = "rgb8") -> Stamp:
        header = make_header(index)
        self.image_pub.publish(rgb_image(rgb, header, encoding))
        return stamp_of(header)

    def publish_compressed(self, data: bytes, index: int, fmt: str) -> Stamp:
        header = make_header(index)
        msg = CompressedImage(header=header, format=fmt)
        msg.data = _bytes_array(np.frombuffer(data, np.uint8))
        self.compressed_pub.publish(msg)
        return stamp_of(header)

    def try_outputs(self, stamp: Stamp, timeout_s: float, overlay: bool = False) -> Optional[FrameOutputs]:
        """The node's outputs for the frame with this stamp, or None if they do not come in time."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            objects, labels = self.objects.by_stamp.get(stamp), self.labels.by_stamp.get(stamp)
            drawn = self.overlays.by_stamp.get(stamp)
            if objects is not None and labels is not None and (drawn is not None or not overlay):
                return FrameOutputs(objects, labels, drawn)
            if not self.target.alive():
                pytest.fail(f"tracker node died:\n{self.target.log()[-3000:]}")
            time.sleep(0.01)
        return None

    def outputs(self, stamp: Stamp, timeout_s: float = 20.0, overlay: bool = False) -> FrameOutputs:
        """The node's outputs for the frame with this stamp (fails the test if they do not come)."""
        out = self.try_outputs(stamp, timeout_s, overlay)
        if out is None:
            pytest.fail(f"no outputs for stamp {stamp} within {timeout_s:.0f} s\n"
                        f"node log tail:\n{self.target.log()[-3000:]}")
        return out

    def track(self, rgb: np.ndarray, index: int, encoding: str = "rgb8", overlay: bool = False) -> FrameOutputs:
        """Publish one frame and wait for its outputs (one frame at a time: nothing is dropped)."""
        return self.outputs(self.publish_frame(rgb, index, encoding), overlay=overlay)

    def add_object(self, prompt: Prompt) -> AddObject.Response:
        return self.call(AddObject, f"{self.target.fqn}/add_object", AddObject.Request(prompt=prompt))

    def remove_object(self, object_id: int) -> RemoveObject.Response:
        return self.call(RemoveObject, f"{self.target.fqn}/remove_object", RemoveObject.Request(object_id=object_id))

    def reset(self) -> Trigger.Response:
        return self.call(Trigger, f"{self.target.fqn}/reset", Trigger.Request())

    def click(self, x: float, y: float) -> None:
        msg = PointStamped()
        msg.point.x, msg.point.y = float(x), float(y)
        self.click_pub.publish(msg)

    # ------------------------------------------------------------------ lifecycle and parameters
    def lifecycle_state(self) -> str:
        return self.call(GetState, f"{self.target.fqn}/get_state", GetState.Request()).current_state.label

    def transition(self, transition_id: int) -> bool:
        request = ChangeState.Request(transition=Transition(id=transition_id))
        return self.call(ChangeState, f"{self.target.fqn}/change_state", request, timeout_s=60).success

    def set_parameters(self, **values) -> List[bool]:
        request = SetParameters.Request(
            parameters=[Parameter(name, value=value).to_parameter_msg() for name, value in values.items()])
        response = self.call(SetParameters, f"{self.target.fqn}/set_parameters", request)
        return [r.successful for r in response.results]

    def latest_diagnostics(self) -> Optional[Dict[str, str]]:
        return diagnostic_values(self.diagnostics[-1]) if self.diagnostics else None

    def wait_diagnostic(self, key: str, value: Any, timeout_s: float = 10.0) -> None:
        """Until the latest diagnostics report ``key`` = ``value``."""
        def reached() -> bool:
            return (self.latest_diagnostics() or {}).get(key) == str(value)

        self.wait_until(reached, timeout_s, f"diagnostics {key!r} = {value} (now {self.latest_diagnostics()})")


# ------------------------------------------------------------------------------------ fixtures
@contextlib.contextmanager
def node_in_this_process(params: Dict[str, Any]):
    """A TrackerNode in this process, in a context of its own, not yet configured (no executor:
    the test drives its transitions and reads its state directly)."""
    from rclpy.parameter import Parameter

    from sam2_ros.tracker_node import TrackerNode

    context = rclpy.Context()
    rclpy.init(context=context, args=[])
    try:
        overrides = [Parameter(name, value=value) for name, value in params.items()]
        node = TrackerNode(context=context, parameter_overrides=overrides)
        yield node
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)


class RunningNode:
    """A node process and the tester's client to it (what the fixtures yield)."""

    def __init__(self, process: NodeProcess, client: GraphClient):
        self.process, self.client = process, client

    def close(self) -> None:
        self.client.close()
        code = self.process.stop()
        assert code is not None


def start_node(tmp_path: Path, params: Dict[str, Any], wait: bool = True, overlay: bool = False,
               namespace: Optional[str] = None, **kwargs) -> RunningNode:
    namespace = namespace or f"/sam2_test_{next(_names)}"
    process = NodeProcess(params, tmp_path / f"node{namespace.replace('/', '_')}.log", namespace=namespace, **kwargs)
    client = GraphClient(process, overlay=overlay, compressed=bool(params.get("compressed")))
    if wait:
        client.wait_active()
    return RunningNode(process, client)


# ------------------------------------------------------------------------------------ checks
@dataclass
class ExpectedObject:
    object_id: int
    visible: bool
    mask: np.ndarray                  # full frame
    bbox: Tuple[int, int, int, int]   # x, y, width, height
    area: int
    visibility: float
    iou_score: float


def expected_objects(result) -> List[ExpectedObject]:
    """What the node must publish for a ``TrackingResult``, from the tracker's own full-resolution
    logits with numpy (the definitions, not the node's code): masks of visible objects, tight boxes."""
    logits = result.mask_logits.float().cpu().numpy()
    scores = result.object_score_logits.float().cpu().numpy().reshape(-1)
    ious = result.iou_scores.float().cpu().numpy().reshape(-1)
    out = []
    for row, object_id in enumerate(result.obj_ids):
        mask = (logits[row] > 0) & (scores[row] > 0)
        rows, cols = np.nonzero(mask)
        box = ((int(cols.min()), int(rows.min()), int(np.ptp(cols)) + 1, int(np.ptp(rows)) + 1) if rows.size
               else (0, 0, 0, 0))
        visibility = float(1 / (1 + np.exp(-np.float64(scores[row]))))
        out.append(ExpectedObject(int(object_id), bool(scores[row] > 0), mask, box, int(mask.sum()), visibility,
                                  float(ious[row])))
    return out


def expected_labels(result) -> np.ndarray:
    """The label image for a ``TrackingResult``: each covered pixel to the highest logit (numpy)."""
    objects = expected_objects(result)
    height, width = result.frame_hw
    if not objects:
        return np.zeros((height, width), np.int32)
    masks = np.stack([o.mask for o in objects])
    winner = np.where(masks, result.mask_logits.float().cpu().numpy(), -np.inf).argmax(axis=0)
    return np.where(masks.any(axis=0), np.array([o.object_id for o in objects])[winner], 0)


def assert_node_masks(out: FrameOutputs, result) -> None:
    """The node's full-frame masks for one frame are those of a reference ``TrackingResult``
    (``expected_objects``), the same objects, bit for bit."""
    expected = {o.object_id: o.mask for o in expected_objects(result)}
    got = out.masks()
    assert sorted(got) == sorted(expected)
    for object_id, mask in expected.items():
        np.testing.assert_array_equal(got[object_id], mask, err_msg=f"object {object_id}")


def session_prompt(event: Dict[str, Any], is_new: bool) -> Prompt:
    """The Prompt message for a parity session's prompt event; a new object goes with id 0 (the
    node numbers new objects 1, 2, 3 in order, as the session does)."""
    object_id = 0 if is_new else event["obj_id"]
    if event["type"] == "mask":
        return prompt_msg(object_id, mask=event["mask"].numpy())
    return prompt_msg(object_id, points=event.get("points"), labels=event.get("labels"), box=event.get("box"),
                      clear_old_points=event.get("clear_old_points", True))


def check_frame_consistency(out: FrameOutputs, stamp: Stamp, height: int, width: int) -> None:
    """Everything that must hold for any published frame."""
    objects = out.objects
    assert stamp_of(objects.header) == stamp and stamp_of(out.label_image.header) == stamp
    assert objects.header.frame_id == "camera"
    assert objects.latency_ms > 0
    labels = out.labels()
    assert labels.shape == (height, width)
    assert out.label_image.encoding == "mono8"  # ids < 256 in these tests
    covered = np.zeros((height, width), bool)
    for obj in objects.objects:
        mask = paste_object_mask(obj, (height, width))
        assert stamp_of(obj.mask.header) == stamp
        # The mask covers the box: its size is the box's.
        assert (obj.mask.width, obj.mask.height, obj.mask.encoding) == (obj.bbox.width, obj.bbox.height, "mono8")
        assert obj.area == int(mask.sum())
        assert math.isclose(obj.visibility + obj.occlusion, 1.0, abs_tol=1e-6)
        assert obj.visibility >= 0.5 if obj.visible else obj.visibility <= 0.5
        box = (obj.bbox.x_offset, obj.bbox.y_offset, obj.bbox.width, obj.bbox.height)
        if not obj.visible:
            assert obj.area == 0 and box == (0, 0, 0, 0)
        if obj.area:
            rows, cols = np.nonzero(mask)
            assert box == (cols.min(), rows.min(), cols.max() - cols.min() + 1, rows.max() - rows.min() + 1)
        # The label image gives each pixel to one of the objects whose mask covers it.
        assert np.all(mask[labels == obj.id])
        covered |= mask
    assert np.array_equal(labels > 0, covered)
    assert set(np.unique(labels)) <= {0} | {o.id for o in objects.objects}
