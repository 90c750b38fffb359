"""``LiveNodeRunner``: evaluate the running tracker node over ROS (``sam2-eval --live``).

The sequence's frames are published to the node's image topic (found from the ROS graph, with the
QoS of the node's subscription), each object is prompted through ``~/add_object`` on its first
ground-truth frame (after the node has published ``~/objects`` for that frame, so that the prompt
applies to it), and the node's ``~/objects`` are matched to frames by header stamp. Frames whose
result never comes are dropped: scored as empty masks and counted. Latency is the time from
publishing a frame to receiving its ``~/objects`` in this process.

A node running with ``use_depth`` subscribes to a depth topic and a camera_info topic besides
the image: a sequence with depth is then played on those too (16UC1 depth and the camera, stamped
like the frame, published just before it), and the 3D positions the node publishes are what
the 3D position error scores. With two raw Image subscriptions the colour one is the "input
topic" the node's /diagnostics name.

rclpy is imported only here, so the rest of the evaluation package works without ROS.
"""

from __future__ import annotations

import array
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .errors import EvaluationInputError
from .prompts import Prompt as EvalPrompt
from .prompts import PromptKind, prompts_for_new_objects
from .runner import FramePrediction
from .sequence import Sequence

RATES = ("recorded", "max")
FRAME_ID = "sam2_eval"
PROBE_FRAME_ID = "sam2_eval_probe"
IMAGE_TYPE = "sensor_msgs/msg/Image"
CAMERA_INFO_TYPE = "sensor_msgs/msg/CameraInfo"


class LiveNodeError(EvaluationInputError):
    """The node could not be found or did not answer."""


@dataclass
class LiveStats:
    """What happened to one sequence's frames on the wire."""

    sequence: str
    frames_published: int = 0
    frames_received: int = 0
    frames_dropped: int = 0
    latency_ms: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("latency_ms")
        out.update(latency_summary(self.latency_ms))
        return out


def latency_summary(latency_ms: list[float]) -> dict[str, float | None]:
    if not latency_ms:
        return {"latency_ms_p50": None, "latency_ms_p99": None, "latency_ms_max": None}
    ms = np.asarray(latency_ms, dtype=np.float64)
    return {
        "latency_ms_p50": float(np.percentile(ms, 50)),
        "latency_ms_p99": float(np.percentile(ms, 99)),
        "latency_ms_max": float(ms.max()),
    }


def _prompt_msg(prompt: EvalPrompt) -> Any:
    """An evaluation prompt as a ``sam2_ros/Prompt`` for a new object (the node assigns its id)."""
    from geometry_msgs.msg import Point
    from std_msgs.msg import Header

    from sam2_ros.image_conversion import mask_to_image
    from sam2_ros.msg import Prompt

    msg = Prompt(object_id=0, clear_old_points=True)
    if prompt.kind is PromptKind.MASK:
        msg.mask = mask_to_image(np.asarray(prompt.mask, bool), Header())
    elif prompt.kind is PromptKind.BOX:
        msg.use_box = True
        msg.box = [float(v) for v in prompt.box]
    else:
        x, y = prompt.point
        msg.points = [Point(x=float(x), y=float(y))]
        msg.labels = [1]
    return msg


def predicted_box_of(obj: Any) -> tuple[float, float, float, float] | None:
    """A ``TrackedObject``'s predicted box as (x0, y0, x1, y1) pixels (the node publishes x, y,
    width, height, whole pixels), or None when the node predicted none (visible, or memory_policy
    official)."""
    if not obj.box_predicted:
        return None
    roi = obj.predicted_bbox
    return (float(roi.x_offset), float(roi.y_offset), float(roi.x_offset + roi.width),
            float(roi.y_offset + roi.height))


class _Inbox:
    """The node's ~/objects messages by (frame_id, stamp), with arrival times and waiting."""

    def __init__(self) -> None:
        self.messages: dict[tuple[str, int], tuple[float, Any]] = {}
        self._condition = threading.Condition()

    def __call__(self, msg: Any) -> None:
        arrived = time.monotonic()
        key = (msg.header.frame_id, int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec))
        with self._condition:
            self.messages.setdefault(key, (arrived, msg))
            self._condition.notify_all()

    def wait(self, key: tuple[str, int], deadline: float) -> tuple[float, Any] | None:
        with self._condition:
            self._condition.wait_for(lambda: key in self.messages, max(0.0, deadline - time.monotonic()))
            return self.messages.get(key)

    def wait_or_passed(
        self, key: tuple[str, int], later: list[tuple[str, int]], deadline: float, block: bool
    ) -> tuple[bool, tuple[float, Any] | None]:
        """(settled, message) for ``key``: settled once its message came, a later frame's message
        came (the node works in order, so this frame was replaced and will never come), or the
        deadline passed. block: wait for that, else answer now."""

        def settled() -> bool:
            return key in self.messages or any(k in self.messages for k in later)

        with self._condition:
            if block:
                self._condition.wait_for(settled, max(0.0, deadline - time.monotonic()))
            done = settled() or time.monotonic() >= deadline
            return done, self.messages.get(key)

    def pop(self, key: tuple[str, int]) -> tuple[float, Any] | None:
        with self._condition:
            return self.messages.pop(key, None)

    def clear(self) -> None:
        with self._condition:
            self.messages.clear()


class _DiagnosedInput:
    """The image topic a tracker node's /diagnostics name ("input topic"), heard in the background."""

    def __init__(self, node: Any, node_name: str) -> None:
        from diagnostic_msgs.msg import DiagnosticArray

        self.topic: str | None = None
        self._node = node
        self._prefix = f"{node_name}:"
        self._sub = node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)

    def _on_diagnostics(self, msg: Any) -> None:
        for status in msg.status:
            if status.name.startswith(self._prefix):
                for pair in status.values:
                    if pair.key == "input topic":
                        self.topic = pair.value

    def close(self) -> None:
        self._node.destroy_subscription(self._sub)


class LiveNodeRunner:
    """Plays each sequence into a running ``tracker_node`` and collects what it publishes."""

    def __init__(
        self,
        node_name: str = "/tracker_node",
        rate: str = "recorded",
        timeout_s: float = 10.0,
        image_topic: str | None = None,
        discovery_timeout_s: float = 30.0,
    ) -> None:
        if rate not in RATES:
            raise EvaluationInputError(f"rate must be one of {', '.join(RATES)}, got {rate!r}")
        if timeout_s <= 0:
            raise EvaluationInputError("the live timeout must be positive")
        self.node_name = node_name if node_name.startswith("/") else "/" + node_name
        self.rate = rate
        self.timeout_s = float(timeout_s)
        self.image_topic = image_topic
        self.depth_topic: str | None = None        # the node's depth and camera_info subscriptions
        self.camera_info_topic: str | None = None  # (use_depth), found in _connect
        self.discovery_timeout_s = float(discovery_timeout_s)
        self.stats: list[LiveStats] = []
        self.description = f"live tracker node {self.node_name} over ROS 2 (rate {rate})"

    # ------------------------------------------------------------------ results
    def live_summary(self) -> dict[str, Any]:
        """The ``live`` section of results.json: totals over all sequences, then per sequence."""
        latency = [ms for s in self.stats for ms in s.latency_ms]
        return {
            "node": self.node_name,
            "rate": self.rate,
            "timeout_s": self.timeout_s,
            "image_topic": self.image_topic,
            "depth_topic": self.depth_topic,
            "frames_published": sum(s.frames_published for s in self.stats),
            "frames_received": sum(s.frames_received for s in self.stats),
            "frames_dropped": sum(s.frames_dropped for s in self.stats),
            **latency_summary(latency),
            "sequences": [s.as_dict() for s in self.stats],
        }

    # ------------------------------------------------------------------ ROS plumbing
    def _connect(self):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy._rclpy_pybind11 import NodeNameNonExistentError
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image
        from std_srvs.srv import Trigger

        from sam2_ros.msg import TrackedObjects
        from sam2_ros.srv import AddObject
        from sam2_ros.spin_teardown import SpinThread

        context = rclpy.Context()
        rclpy.init(context=context, args=[])
        node = rclpy.create_node(f"sam2_eval_live_{uuid.uuid4().hex[:8]}", context=context)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        self._ros = (context, node, executor, SpinThread(executor))
        fqn = self.node_name
        namespace, _, name = fqn.rpartition("/")
        namespace = namespace or "/"
        deadline = time.monotonic() + self.discovery_timeout_s

        self._reset_client = node.create_client(Trigger, f"{fqn}/reset")
        self._add_client = node.create_client(AddObject, f"{fqn}/add_object")
        for client in (self._reset_client, self._add_client):
            if not client.wait_for_service(timeout_sec=max(0.1, deadline - time.monotonic())):
                raise LiveNodeError(f"no tracker node {fqn}: service {client.srv_name} not found "
                                    f"within {self.discovery_timeout_s:.0f} s")
        # The node's image subscription (its topic after remapping, and its QoS).
        reliability = ReliabilityPolicy.RELIABLE
        diagnosed = _DiagnosedInput(node, name)
        while True:
            try:
                subs = node.get_subscriber_names_and_types_by_node(name, namespace)
            except NodeNameNonExistentError:  # services seen before the node itself
                subs = []
            topics = [t for t, types in subs if IMAGE_TYPE in types]
            if self.image_topic is None and len(topics) == 1:
                self.image_topic = topics[0]
            elif self.image_topic is None and diagnosed.topic in topics:  # use_depth: colour and depth
                self.image_topic = diagnosed.topic
            if self.image_topic is not None and self.image_topic in topics:
                self._find_depth_topics(subs, topics)
                for info in node.get_subscriptions_info_by_topic(self.image_topic):
                    if info.node_name == name and info.node_namespace == namespace:
                        reliability = info.qos_profile.reliability
                break
            if time.monotonic() > deadline:
                raise LiveNodeError(f"{fqn} subscribes to no raw image topic "
                                    f"{self.image_topic or ''} (found {topics}; compressed input is not supported)")
            time.sleep(0.05)
        if reliability not in (ReliabilityPolicy.RELIABLE, ReliabilityPolicy.BEST_EFFORT):
            reliability = ReliabilityPolicy.RELIABLE
        self._inbox = _Inbox()
        self._objects_sub = node.create_subscription(TrackedObjects, f"{fqn}/objects", self._inbox, 100)
        qos = QoSProfile(depth=10, reliability=reliability)
        self._image_pub = node.create_publisher(Image, self.image_topic, qos)
        self._depth_pubs = None
        if self.depth_topic is not None:
            from sensor_msgs.msg import CameraInfo

            self._depth_pubs = (node.create_publisher(Image, self.depth_topic, qos),
                                node.create_publisher(CameraInfo, self.camera_info_topic, qos))
        diagnosed.close()
        while self._image_pub.get_subscription_count() == 0 or self._objects_sub.get_publisher_count() == 0:
            if time.monotonic() > deadline:
                raise LiveNodeError(f"{fqn} is not active: its image and objects topics did not match "
                                    f"within {self.discovery_timeout_s:.0f} s")
            time.sleep(0.02)
        # Discovery is not symmetric: probe until a frame comes back, so no real frame is lost to it.
        probe = np.zeros((8, 8, 3), np.uint8)
        number = 0
        while True:
            number += 1
            key = self._publish(probe, number, PROBE_FRAME_ID)[0]
            if self._inbox.wait(key, time.monotonic() + 1.0) is not None:
                break
            if time.monotonic() > deadline:
                raise LiveNodeError(f"{fqn} published no ~/objects for probe frames "
                                    f"within {self.discovery_timeout_s:.0f} s")

    def _find_depth_topics(self, subs: list, image_topics: list[str]) -> None:
        """use_depth: the node's other raw Image subscription is its depth, its CameraInfo one the camera."""
        others = [t for t in image_topics if t != self.image_topic]
        infos = [t for t, types in subs if CAMERA_INFO_TYPE in types]
        if len(others) == 1 and len(infos) == 1:
            self.depth_topic, self.camera_info_topic = others[0], infos[0]

    def _publish_depth(self, frame: Any, intrinsics: Any) -> None:
        """The frame's depth (16UC1 mm) and the camera, stamped like the frame, before the frame."""
        if self._depth_pubs is None or frame.depth_m is None or intrinsics is None:
            return
        from builtin_interfaces.msg import Time
        from sensor_msgs.msg import CameraInfo, Image
        from std_msgs.msg import Header

        stamp_ns = frame.stamp_ns
        header = Header(stamp=Time(sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000),
                        frame_id=FRAME_ID)
        millimetres = np.where(np.isfinite(frame.depth_m), np.round(frame.depth_m * 1000), 0)
        millimetres = np.clip(millimetres, 0, 65535).astype("<u2")
        height, width = millimetres.shape
        depth = Image(header=header, height=height, width=width, encoding="16UC1", is_bigendian=0, step=2 * width)
        depth.data = array.array("B", millimetres.tobytes())  # one copy (see image_conversion._to_byte_array)
        fx, fy, cx, cy = intrinsics.fx, intrinsics.fy, intrinsics.cx, intrinsics.cy
        info = CameraInfo(header=header, width=intrinsics.width, height=intrinsics.height,
                          k=[fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0])
        depth_pub, info_pub = self._depth_pubs
        info_pub.publish(info)
        depth_pub.publish(depth)

    def _close(self) -> None:
        from sam2_ros.spin_teardown import stop_spinning

        context, node, executor, spinner = self._ros
        stop_spinning(executor, spinner, [node], context)

    def _publish(self, rgb: np.ndarray, stamp_ns: int, frame_id: str) -> tuple[tuple[str, int], float]:
        from sam2_ros.image_conversion import rgb_to_image
        from std_msgs.msg import Header
        from builtin_interfaces.msg import Time

        header = Header(stamp=Time(sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000),
                        frame_id=frame_id)
        msg = rgb_to_image(np.ascontiguousarray(rgb), header)
        published = time.monotonic()
        self._image_pub.publish(msg)
        return (frame_id, stamp_ns), published

    def _call(self, client: Any, request: Any, what: str) -> Any:
        done = threading.Event()
        future = client.call_async(request)
        future.add_done_callback(lambda _: done.set())
        if not done.wait(self.timeout_s) or future.result() is None:
            raise LiveNodeError(f"{what}: no reply from {self.node_name} within {self.timeout_s:.0f} s")
        return future.result()

    # ------------------------------------------------------------------ the run
    def run(self, sequence: Sequence, prompt_kind: PromptKind) -> Iterator[FramePrediction]:
        from std_srvs.srv import Trigger

        from sam2_ros.image_conversion import paste_object_mask
        from sam2_ros.srv import AddObject

        prompt_kind = PromptKind(prompt_kind)
        self._connect()
        try:
            reply = self._call(self._reset_client, Trigger.Request(), "~/reset")
            if not reply.success:
                raise LiveNodeError(f"{self.node_name}/reset failed: {reply.message}")
            stats = LiveStats(sequence.name)
            self.stats.append(stats)
            node_ids: dict[int, int] = {}  # node's object id -> ground-truth id
            prompted: set[int] = set()
            pending: list[tuple[Any, tuple[str, int], float, dict, tuple[int, ...], float]] = []

            def resolve(wait: bool) -> FramePrediction | None:
                """The oldest pending frame's prediction, or None while it may still come (wait=False)."""
                frame, key, published, prompt_masks, new_ids, prompt_ms = pending[0]
                later = [item[1] for item in pending[1:]]
                done, got = self._inbox.wait_or_passed(key, later, published + self.timeout_s, wait)
                if not done:
                    return None  # not yet
                pending.pop(0)
                self._inbox.pop(key)
                masks: dict[int, np.ndarray] = {}
                # With depth played into the node, its own 3D is scored (an object without: none).
                positions: dict[int, np.ndarray] | None = {} if self._depth_pubs is not None else None
                # The node's message always has room for boxes: none predicted reads as an empty dict.
                boxes: dict[int, tuple[float, float, float, float]] = {}
                track_ms = 0.0
                if got is None:
                    stats.frames_dropped += 1
                else:
                    arrived, msg = got
                    stats.frames_received += 1
                    stats.latency_ms.append((arrived - published) * 1e3)
                    track_ms = (arrived - published) * 1e3
                    for obj in msg.objects:
                        if obj.id in node_ids:
                            masks[node_ids[obj.id]] = paste_object_mask(obj, frame.image.shape[:2])
                            box = predicted_box_of(obj)
                            if box is not None:
                                boxes[node_ids[obj.id]] = box
                            if positions is not None and obj.has_position:
                                positions[node_ids[obj.id]] = np.array([obj.position.x, obj.position.y,
                                                                        obj.position.z])
                masks.update(prompt_masks)
                return FramePrediction(frame=frame, masks=masks, prompted=new_ids, track_ms=track_ms,
                                       prompt_ms=prompt_ms, positions=positions, predicted_boxes=boxes)

            next_time: float | None = None
            previous_stamp: int | None = None
            for frame in sequence:
                new_prompts = []
                if frame.gt_labels is not None:
                    new_prompts = prompts_for_new_objects(frame.gt_labels, prompted, prompt_kind,
                                                          sequence.void_label)
                if self.rate == "recorded" and next_time is not None and previous_stamp is not None:
                    next_time += max(0, frame.stamp_ns - previous_stamp) / 1e9
                    # Meanwhile hand on what has come back.
                    while pending and time.monotonic() < next_time:
                        prediction = resolve(wait=False)
                        if prediction is None:
                            break
                        yield prediction
                    time.sleep(max(0.0, next_time - time.monotonic()))
                self._publish_depth(frame, sequence.intrinsics)
                key, published = self._publish(frame.image, frame.stamp_ns, FRAME_ID)
                stats.frames_published += 1
                if next_time is None:
                    next_time = published
                previous_stamp = frame.stamp_ns
                prompt_masks: dict[int, np.ndarray] = {}
                prompt_ms = 0.0
                if new_prompts:
                    # The prompt applies to the last frame the node processed: wait for this one.
                    if self._inbox.wait(key, published + self.timeout_s) is None:
                        raise LiveNodeError(f"{sequence.name}: {self.node_name} published no ~/objects for frame "
                                            f"{frame.index} within {self.timeout_s:.0f} s, so it cannot be prompted")
                    start = time.perf_counter()
                    for prompt in new_prompts:
                        reply = self._call(self._add_client, AddObject.Request(prompt=_prompt_msg(prompt)),
                                           f"~/add_object for object {prompt.obj_id}")
                        if not reply.success:
                            raise LiveNodeError(f"{sequence.name}: {self.node_name} rejected the {prompt.kind.value} "
                                                f"prompt for object {prompt.obj_id}: {reply.message}")
                        node_ids[int(reply.object_id)] = prompt.obj_id
                        prompt_masks[prompt.obj_id] = paste_object_mask(reply.object, frame.image.shape[:2])
                        prompted.add(prompt.obj_id)
                    prompt_ms = (time.perf_counter() - start) * 1e3
                    if next_time is not None:
                        next_time += prompt_ms / 1e3  # the recorded schedule resumes after prompting
                pending.append((frame, key, published, prompt_masks, tuple(p.obj_id for p in new_prompts),
                                prompt_ms))
                if self.rate == "max":
                    # The next frame goes as soon as this one's result is in (or it is given up).
                    yield resolve(wait=True)
            while pending:
                yield resolve(wait=True)
        finally:
            self._close()
