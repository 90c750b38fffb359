"""Node benchmark: ``python -m sam2_ros.benchmark``. What the tracker node costs on top of the model.

For every frame size and object count asked for, on the same frames and prompts:

1. ``StreamingTracker.track`` alone, timed in this process (the model's own time);
2. the tracker node, in this process, in a real rclpy graph: a client node publishes each frame
   (raw rgb8, reliable QoS), waits for the node's ``~/objects`` and ``~/label_image`` and reads
   the node's own latency (``latency_ms``: image received -> published);
frame by frame in turn, so that a change in the machine's load hits both alike;

then prints track p50, node latency p50/p99, their ratio (the node's overhead), the node's own
time per frame (latency minus its own ``track`` stage on the same frame), the mean serialized
bytes of one ``TrackedObjects`` and of one label image, and the node's stage timings (where the
time goes; nodes older than ``sam2_ros.stage_timing`` report none).

Frames are generated scenes (``sam2_model.train.procedural``: object sizes as in the
evaluation sets, no occluder), prompted with each object's box on the first frame, or the
frames of a video (``--video``, objects prompted with boxes on a grid). Frames are sent one at
a time, so no frame waits for another: latency is the node's processing time.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

DEFAULT_SIZES = "640x480,960x540,1280x720"
DEFAULT_OBJECTS = "1,4,16"
Box = Tuple[float, float, float, float]


@dataclass
class Scene:
    """Frames and one box prompt per object on frame 0."""

    frames: List[np.ndarray]
    boxes: List[Box]


@dataclass
class CaseResult:
    width: int
    height: int
    objects: int
    track_ms: List[float]
    latency_ms: List[float]
    objects_bytes: int   # mean serialized size of one message over the timed frames
    label_bytes: int
    stages: Dict[str, List[float]] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        return float(np.median(self.latency_ms) / np.median(self.track_ms))

    @property
    def own_ms(self) -> List[float]:
        """Per frame, the node's latency minus its own ``track`` stage on that frame (tracking and
        the frame's summary, see ``stage_timing``): what the node adds, measured within one frame
        (robust to load changes between frames); empty for nodes without stage timings."""
        inside = self.stages.get("track", [])
        if len(inside) != len(self.latency_ms):
            return []
        return [latency - track for latency, track in zip(self.latency_ms, inside)]


# ------------------------------------------------------------------------------------ frames
def generated_scene(height: int, width: int, objects: int, frames: int, seed: int = 0) -> Scene:
    from sam2_model.mask_geometry import box_from_mask
    from sam2_model.train.procedural import ProceduralConfig, generate_video

    config = ProceduralConfig(height=height, width=width, num_frames=frames, min_targets=objects,
                              max_targets=objects, max_distractors=0, occluder_probability=0.0, exit_probability=0.0)
    video = generate_video(seed, config)
    boxes = [tuple(float(v) for v in box_from_mask(video.labels[0] == i))
             for i in range(1, video.num_targets + 1) if (video.labels[0] == i).any()]
    return Scene(list(video.frames), boxes)


def video_scene(path: str, height: int, width: int, objects: int, frames: int) -> Scene:
    """A video's first frames resized to ``width x height``; boxes on a grid of the first frame."""
    import av
    from PIL import Image as PILImage

    pictures = []
    with av.open(path) as container:
        for frame in container.decode(video=0):
            picture = frame.to_ndarray(format="rgb24")
            if picture.shape[:2] != (height, width):
                picture = np.asarray(PILImage.fromarray(picture).resize((width, height), PILImage.BILINEAR))
            pictures.append(picture)
            if len(pictures) == frames:
                break
    columns = int(np.ceil(np.sqrt(objects)))
    rows = int(np.ceil(objects / columns))
    cell_w, cell_h = width / columns, height / rows
    boxes = [(c * cell_w + cell_w * 0.2, r * cell_h + cell_h * 0.2, c * cell_w + cell_w * 0.8,
              r * cell_h + cell_h * 0.8) for r in range(rows) for c in range(columns)][:objects]
    return Scene(pictures, boxes)


# ------------------------------------------------------------------------------------ the node
class NodeUnderTest:
    """The tracker node and a client node in one rclpy context, spun by one executor."""

    def __init__(self, params: Dict[str, object], namespace: str = "/sam2_benchmark"):
        import rclpy
        from rclpy.executors import MultiThreadedExecutor
        from rclpy.parameter import Parameter
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image

        from sam2_ros.msg import TrackedObjects
        from sam2_ros.spin_teardown import SpinThread
        from sam2_ros.tracker_node import TrackerNode

        self.context = rclpy.Context()
        rclpy.init(context=self.context, args=[])
        overrides = [Parameter(name, value=value) for name, value in params.items()]
        self.node = TrackerNode(namespace=namespace, context=self.context, parameter_overrides=overrides,
                                cli_args=["--ros-args", "-r", f"image:={namespace}/image"])
        self.client = rclpy.create_node("sam2_benchmark_client", namespace=namespace, context=self.context)
        fqn = self.node.get_fully_qualified_name()
        reliable = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        self.image_pub = self.client.create_publisher(Image, f"{namespace}/image", reliable)
        self._condition = threading.Condition()
        self._objects: Dict[Tuple[int, int], object] = {}
        self._labels: Dict[Tuple[int, int], object] = {}
        self._subs = [
            self.client.create_subscription(TrackedObjects, f"{fqn}/objects", self._store(self._objects), 10),
            self.client.create_subscription(Image, f"{fqn}/label_image", self._store(self._labels), 10),
        ]
        self.fqn = fqn
        self.executor = MultiThreadedExecutor(num_threads=4, context=self.context)
        self.executor.add_node(self.node)
        self.executor.add_node(self.client)
        self._spinner = SpinThread(self.executor)
        if not self.node.autostart():
            raise RuntimeError("the tracker node did not start (see its log above)")

    def _store(self, into: Dict):
        def callback(msg) -> None:
            with self._condition:
                into[(msg.header.stamp.sec, msg.header.stamp.nanosec)] = msg
                self._condition.notify_all()
        return callback

    def publish(self, rgb: np.ndarray, index: int) -> Tuple[int, int]:
        import array

        from sensor_msgs.msg import Image

        msg = Image(height=rgb.shape[0], width=rgb.shape[1], encoding="rgb8", step=3 * rgb.shape[1])
        msg.header.frame_id = "camera"
        msg.header.stamp.sec, msg.header.stamp.nanosec = 1000 + index, 1
        data = array.array("B")
        data.frombytes(np.ascontiguousarray(rgb).reshape(-1))
        msg.data = data
        self.image_pub.publish(msg)
        return (1000 + index, 1)

    def outputs(self, stamp: Tuple[int, int], timeout_s: float = 120.0):
        with self._condition:
            if not self._condition.wait_for(lambda: stamp in self._objects and stamp in self._labels, timeout_s):
                raise RuntimeError(f"no outputs from the node for frame {stamp} within {timeout_s:.0f} s")
            return self._objects.pop(stamp), self._labels.pop(stamp)

    def wait_connected(self, probe: np.ndarray, timeout_s: float = 60.0) -> None:
        """Probe frames until one comes back (discovery done both ways)."""
        deadline = time.monotonic() + timeout_s
        index = -1000
        while True:
            stamp = self.publish(probe, index)
            try:
                self.outputs(stamp, 1.0)
                return
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
            index += 1

    def call(self, srv_type, name: str, request, timeout_s: float = 60.0):
        client = self.client.create_client(srv_type, f"{self.fqn}/{name}")
        if not client.wait_for_service(timeout_sec=timeout_s):
            raise RuntimeError(f"service {name} not available")
        future = client.call_async(request)
        deadline = time.monotonic() + timeout_s
        while not future.done():
            if time.monotonic() > deadline:
                raise RuntimeError(f"no answer from {name}")
            time.sleep(0.005)
        self.client.destroy_client(client)
        return future.result()

    def add_box(self, box: Box) -> None:
        from sam2_ros.msg import Prompt
        from sam2_ros.srv import AddObject

        prompt = Prompt(object_id=0, use_box=True, clear_old_points=True)
        prompt.box = [float(v) for v in box]
        answer = self.call(AddObject, "add_object", AddObject.Request(prompt=prompt))
        if not answer.success:
            raise RuntimeError(f"add_object failed: {answer.message}")

    def reset(self) -> None:
        from std_srvs.srv import Trigger

        self.call(Trigger, "reset", Trigger.Request())

    def stage_times(self) -> Optional[Dict[str, List[float]]]:
        times = getattr(self.node, "stage_times", None)  # nodes before the stage timings have none
        return None if times is None else times.snapshot()

    def clear_stage_times(self) -> None:
        times = getattr(self.node, "stage_times", None)
        if times is not None:
            times.clear()

    def close(self) -> None:
        from sam2_ros.spin_teardown import stop_spinning

        self.node._stop_processing()
        stop_spinning(self.executor, self._spinner, [self.node, self.client], self.context)


def run_case(node: NodeUnderTest, model, scene: Scene, fill_hole_area: int) -> CaseResult:
    """Each frame after the prompted one goes to ``StreamingTracker.track`` alone (timed here),
    then to the node (its own latency): alternating, so a change of machine load hits both."""
    import sam2_model
    from rclpy.serialization import serialize_message

    tracker = sam2_model.StreamingTracker(model, fill_hole_area=fill_hole_area)
    tracker.track(scene.frames[0])
    node.reset()
    node.outputs(node.publish(scene.frames[0], 0))
    for object_id, box in enumerate(scene.boxes, start=1):
        tracker.add_prompt(object_id, box=list(box))
        node.add_box(box)  # the node numbers new objects 1, 2, ... as well
    node.clear_stage_times()
    track_ms, latency_ms, objects_bytes, label_bytes = [], [], [], []
    for index, frame in enumerate(scene.frames[1:], start=1):
        start = time.perf_counter()
        tracker.track(frame)
        track_ms.append((time.perf_counter() - start) * 1000.0)
        objects, labels = node.outputs(node.publish(frame, index))
        latency_ms.append(float(objects.latency_ms))
        objects_bytes.append(len(serialize_message(objects)))
        label_bytes.append(len(serialize_message(labels)))
    height, width = scene.frames[0].shape[:2]
    return CaseResult(width, height, len(scene.boxes), track_ms, latency_ms, int(np.mean(objects_bytes)),
                      int(np.mean(label_bytes)), node.stage_times() or {})


# ------------------------------------------------------------------------------------ report
def _p(values: Sequence[float], q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else float("nan")


def print_report(results: List[CaseResult], out=None) -> None:
    out = out or sys.stdout  # looked up at call time (pytest's capsys replaces it)
    stage_names: List[str] = []
    for result in results:
        stage_names += [s for s in result.stages if s not in stage_names]
    columns = ["size", "objects", "track p50 ms", "node p50 ms", "node p99 ms", "node / track", "node's own p50 ms",
               "objects bytes", "label bytes"] + [f"{s} p50 ms" for s in stage_names]
    print("| " + " | ".join(columns) + " |", file=out)
    print("|" + " --- |" * len(columns), file=out)
    for r in results:
        stages = " | ".join(f"{_p(r.stages[s], 50):.1f}" if s in r.stages else "-" for s in stage_names)
        print(f"| {r.width}x{r.height} | {r.objects} | {_p(r.track_ms, 50):.1f} | {_p(r.latency_ms, 50):.1f} | "
              f"{_p(r.latency_ms, 99):.1f} | {r.ratio:.2f} | {_p(r.own_ms, 50):.1f} | {r.objects_bytes} | "
              f"{r.label_bytes} |"
              + (f" {stages} |" if stage_names else ""), file=out, flush=True)


def _sizes(text: str) -> List[Tuple[int, int]]:
    try:
        return [tuple(int(v) for v in item.lower().split("x")) for item in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"sizes must look like 640x480,1280x720, got {text!r}") from None


def _counts(text: str) -> List[int]:
    try:
        return [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"object counts must look like 1,4,16, got {text!r}") from None


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m sam2_ros.benchmark", description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=_sizes, default=_sizes(DEFAULT_SIZES), help="WIDTHxHEIGHT,... "
                        f"(default {DEFAULT_SIZES})")
    parser.add_argument("--objects", type=_counts, default=_counts(DEFAULT_OBJECTS),
                        help=f"object counts (default {DEFAULT_OBJECTS})")
    parser.add_argument("--frames", type=int, default=12, help="frames per case, the first one prompted (default 12)")
    parser.add_argument("--video", default=None, help="frames from this video instead of generated scenes")
    parser.add_argument("--model", default="default", help="node parameter model (default: the bundled model)")
    parser.add_argument("--checkpoint", default="", help="node parameter checkpoint")
    parser.add_argument("--fill-hole-area", type=int, default=8)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--no-masks", action="store_true", help="run the node with publish_masks false")
    args = parser.parse_args(argv)
    if args.frames < 3:
        parser.error("--frames must be at least 3 (one prompted frame, then timed ones)")
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    params: Dict[str, object] = {"model": args.model, "device": "cpu", "qos_reliability": "reliable",
                                 "fill_hole_area": args.fill_hole_area, "overlay": False}
    if args.checkpoint:
        params["checkpoint"] = args.checkpoint
    if args.no_masks:
        params["publish_masks"] = False
    node = NodeUnderTest(params)
    results = []
    try:
        model = node.node._backend.model  # the node's own model (in-process backend): the same weights for both timings
        node.wait_connected(np.zeros((32, 32, 3), np.uint8))
        print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); model {args.model}; "
              f"{args.frames} frames per case", flush=True)
        for width, height in args.sizes:
            for count in args.objects:
                scene = (video_scene(args.video, height, width, count, args.frames) if args.video
                         else generated_scene(height, width, count, args.frames))
                result = run_case(node, model, scene, args.fill_hole_area)
                results.append(result)
                print(f"  {width}x{height}, {result.objects} objects: track p50 {_p(result.track_ms, 50):.1f} ms, "
                      f"node p50 {_p(result.latency_ms, 50):.1f} ms", file=sys.stderr, flush=True)
    finally:
        node.close()
    print_report(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
