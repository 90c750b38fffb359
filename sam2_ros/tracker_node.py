"""``tracker_node``: SAM 2 on a live camera topic, as a ROS 2 lifecycle node.

Lifecycle:
    configure   read and check parameters, load the model on the device, create publishers,
                services and the diagnostics timer
    activate    subscribe to the camera, clicks and prompts; start the inference worker
    deactivate  unsubscribe and stop the worker (tracked objects are kept)
    cleanup     drop the tracker and the model, free GPU memory
With ``autostart`` (default) the node configures and activates itself.

Threads: subscription and service callbacks run on a MultiThreadedExecutor and never run the
model on a frame. Images go through a one-place ``LatestFrameSlot`` to a worker thread that
tracks the newest frame; one lock serialises every tracker call (worker and prompt services).

Run: ``ros2 run sam2_ros tracker_node --ros-args -r image:=/camera/color/image_raw`` (the bundled
``default`` model; for a robot give an official one: ``-p model:=sam2.1_hiera_tiny -p checkpoint:=...``)
or ``python -m sam2_ros.tracker_node --ros-args ...``.

The model runs behind ``sam2_ros.tracker_backend``: in this process (default), or in a
``sam2-server`` with ``-p server:=ipc:///tmp/sam2.sock`` (this process then imports no torch;
heartbeats, reconnection and re-seeding in ``sam2_ros.server_backend``).
"""

from __future__ import annotations

import dataclasses
import functools
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Optional, Tuple

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PointStamped
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.event_handler import SubscriptionEventCallbacks, UnsupportedEventTypeError
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.lifecycle import Node as LifecycleNode
from rclpy.lifecycle import State, TransitionCallbackReturn
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
from std_msgs.msg import Header
from std_srvs.srv import Trigger
from visualization_msgs.msg import MarkerArray

import sam2_model
from sam2_model.discovery import DiscoveryError
from sam2_ros.msg import Prompt, TrackedObjects
from sam2_ros.srv import AddObject, Discover, RemoveObject

from .depth_conversion import fill_3d, markers_msg, point_cloud_msg
from .depth_input import DepthFrame, DepthInput, DepthSettings, ProblemThrottle, without_masks
from .diagnostics import Snapshot, TrackerStatistics, diagnostic_array, process_rss_bytes
from .frame_slot import LatestFrameSlot, PendingFrame
from .image_conversion import ImageConversionError
from .node_parameters import TrackerParameters, declare_parameters, read_parameters
from .prompt_conversion import (MAX_OBJECT_ID, PromptConversionError, PromptRequest, check_object_id,
                                prompt_from_click, prompt_from_msg)
from .result_conversion import (FrameState, ObjectState, label_image_msg, overlay_msg, tracked_object_msg,
                                tracked_objects_msg)
from .service_replies import keep_replies
from .stage_timing import StageClock, StageTimes
from .stop_signals import StopRequest, spin_until_stopped
from .tracker_backend import BackendUnavailable, DiscoveryOutcome, Outputs, TrackerBackend, open_backend

NODE_NAME = "tracker_node"
WARN_THROTTLE_S = 2.0
# A detector may send a burst of prompts (one per detection): keep them all, unlike frames.
PROMPT_QUEUE_DEPTH = 50
# How long the worker waits for a frame before checking whether it should stop.
WORKER_POLL_S = 0.1
# One executor thread per callback group (images, prompts and services, depth, diagnostics, server
# heartbeats, and the default group's lifecycle and parameter services), so none waits behind another;
# the model itself runs on the node's worker thread.
EXECUTOR_THREADS = 6

# Everything a prompt can get wrong, answered as success=false / a throttled warning (a model
# server that is away included: the node keeps running and reconnects).
PROMPT_ERRORS = (PromptConversionError, sam2_model.PromptError, sam2_model.TrackingError, BackendUnavailable)


def _logged_transition(callback):
    """rclpy turns an exception in a transition callback into ERROR without a word: log it."""
    @functools.wraps(callback)
    def wrapper(self, state):
        try:
            return callback(self, state)
        except Exception as error:  # noqa: BLE001 - reported, then the lifecycle's error path
            self.get_logger().error(f"{callback.__name__} failed: {error!r}\n{traceback.format_exc()}")
            return TransitionCallbackReturn.ERROR
    return wrapper


class NotActiveError(RuntimeError):
    """A request that needs the active node (prompts before activation, after deactivation)."""


@dataclass
class WantedOutputs:
    """What this frame must produce: outputs nobody subscribes to are not computed."""

    masks: bool     # per-object masks in ~/objects (publish_masks and a subscriber)
    labels: bool    # ~/label_image
    overlay: bool   # ~/overlay


@dataclass
class LastFrame:
    """The most recent tracked frame: prompts apply to it and answers carry its header."""

    header: Header
    height: int
    width: int


class TrackerNode(LifecycleNode):
    def __init__(self, node_name: str = NODE_NAME, **kwargs):
        super().__init__(node_name, **kwargs)
        for service in self.services:  # the lifecycle's (created without create_service)
            self._keep_replies(service)
        declare_parameters(self)
        self.params: Optional[TrackerParameters] = None
        self._backend: Optional[TrackerBackend] = None  # the model: in this process or in a sam2-server
        self._tracker_lock = threading.Lock()     # every backend call, _last_frame, _last_id
        self._last_frame: Optional[LastFrame] = None
        self._last_id = 0                          # the last id this node assigned
        self._frames_since_reset = 0               # frames tracked since configure/reset (discovery schedule)
        self._active = False
        self._slot: LatestFrameSlot = LatestFrameSlot()
        self._stats = TrackerStatistics()
        self.stage_times = StageTimes()              # ms per worker stage (read by sam2_ros.benchmark)
        self._worker: Optional[threading.Thread] = None
        self._stop_worker = threading.Event()
        self._input_topic = ""
        # Images and prompts in separate groups: a prompt waiting for the tracker lock must not
        # hold up image reception (which would count as latency), nor the other way round. Prompts
        # and services one at a time (the lock serialises them anyway): a burst of prompts then holds
        # one executor thread, not all of them.
        self._image_group = MutuallyExclusiveCallbackGroup()
        self._prompt_group = MutuallyExclusiveCallbackGroup()
        self._diagnostics_group = MutuallyExclusiveCallbackGroup()
        self._outputs = {}
        self._prompt_services = []
        self._inputs = []
        self._diagnostics_pub = None
        self._diagnostics_timer = None
        self._supervision_group = MutuallyExclusiveCallbackGroup()
        self._supervision_timer = None             # heartbeats to a model server
        # use_depth: depth and camera_info in, 3D out (sam2_ros.depth_input); None when off.
        self._depth: Optional[DepthInput] = None
        self._depth_group = MutuallyExclusiveCallbackGroup()
        self._markers_shown: set = set()          # ids whose markers RViz shows (to delete when they go)
        self._depth_warnings = ProblemThrottle(WARN_THROTTLE_S)
        self.add_post_set_parameters_callback(self._on_parameters_set)

    # ----------------------------------------------------------------------------- lifecycle
    @_logged_transition
    def on_configure(self, state: State) -> TransitionCallbackReturn:
        try:
            params = read_parameters(self)
            backend = open_backend(params, params.server_stream or self.get_fully_qualified_name(), self._log)
        except Exception as error:  # noqa: BLE001 - ConfigError, CheckpointError, ParameterError, CUDA errors...
            self.get_logger().error(f"configure failed: {error}. Fix the parameters and configure again "
                                    f"(ros2 lifecycle set {self.get_fully_qualified_name()} configure).")
            self._free_model()
            return TransitionCallbackReturn.FAILURE
        self.params, self._backend = params, backend
        self._last_id, self._last_frame, self._frames_since_reset = 0, None, 0
        self._stats = TrackerStatistics()
        self._create_outputs(params)
        self.get_logger().info(f"configured: {backend.describe()}; input {self._input_topic}")
        return TransitionCallbackReturn.SUCCESS

    @_logged_transition
    def on_activate(self, state: State) -> TransitionCallbackReturn:
        params = self.params
        image_qos = QoSProfile(
            depth=params.qos_depth, history=HistoryPolicy.KEEP_LAST, durability=DurabilityPolicy.VOLATILE,
            reliability=(ReliabilityPolicy.BEST_EFFORT if params.qos_reliability == "best_effort"
                         else ReliabilityPolicy.RELIABLE))
        self._inputs = [
            self._subscribe_images(CompressedImage if params.compressed else Image, image_qos),
            self.create_subscription(PointStamped, "~/click", self._on_click, PROMPT_QUEUE_DEPTH,
                                     callback_group=self._prompt_group),
            self.create_subscription(Prompt, "~/prompt", self._on_prompt, PROMPT_QUEUE_DEPTH,
                                     callback_group=self._prompt_group),
        ] + self._subscribe_depth(image_qos)
        self._slot = LatestFrameSlot()
        self._stop_worker.clear()
        self._worker = threading.Thread(target=self._worker_loop, name="sam2_tracker_worker", daemon=True)
        self._worker.start()
        self._active = True
        self.get_logger().info(f"active: tracking images from {self._input_topic}")
        return super().on_activate(state)  # activates the lifecycle publishers

    @_logged_transition
    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        self._stop_processing()
        self.get_logger().info("inactive: processing stopped (tracked objects are kept)")
        return super().on_deactivate(state)

    @_logged_transition
    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        self._destroy_outputs()
        self._free_model()
        self.get_logger().info("cleaned up: model freed")
        return TransitionCallbackReturn.SUCCESS

    @_logged_transition
    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        return self._release_everything()

    @_logged_transition
    def on_error(self, state: State) -> TransitionCallbackReturn:
        return self._release_everything()

    def _release_everything(self) -> TransitionCallbackReturn:
        """Shutdown (from any state, then finalized) and error processing (after a transition failed
        with an exception; this SUCCESS takes the node to unconfigured, to be configured again):
        stop, drop outputs, free the model."""
        self._stop_processing()
        self._destroy_outputs()
        self._free_model()
        return TransitionCallbackReturn.SUCCESS

    def autostart(self) -> bool:
        """Configure and activate if the ``autostart`` parameter asks for it; True when active."""
        value = self.get_parameter("autostart").value
        if value is not True:
            if value is not False:
                self.get_logger().error(f"autostart must be true or false, got {value!r}; not starting")
            return False
        if self.trigger_configure() != TransitionCallbackReturn.SUCCESS:
            return False
        return self.trigger_activate() == TransitionCallbackReturn.SUCCESS

    def _on_parameters_set(self, parameters) -> None:
        # Everything is read at configure; say so rather than let a change look ignored.
        if self._backend is not None:
            names = ", ".join(p.name for p in parameters)
            self.get_logger().warning(f"parameter(s) {names} take effect when the node is configured again "
                                      "(deactivate, cleanup, configure, activate)")

    # ----------------------------------------------------------------------------- set-up
    def _log(self, level: str, message: str) -> None:
        """For the backend: log at ``level`` (info, warning, error). One call site per level:
        rclpy refuses a call site whose severity changes between calls."""
        logger = self.get_logger()
        if level == "error":
            logger.error(message)
        elif level == "warning":
            logger.warning(message)
        else:
            logger.info(message)

    def _free_model(self) -> None:
        with self._tracker_lock:
            backend, self._backend = self._backend, None
            self._last_frame = None
        if backend is not None:
            backend.close()  # frees the model (in-process) or the server's stream

    def _transport_topic_name(self, base: str, transport: Optional[str]) -> str:
        """An input topic after remapping: ``base`` (``image``, ``depth``), or with ``transport``
        (``compressed``, ``compressedDepth``) image_transport's ``<base topic>/<transport>``, so that
        ``-r image:=/cam/image_raw`` also moves it; remapping ``<base>/<transport>`` itself wins."""
        resolved = self.resolve_topic_name(base)
        if transport is None:
            return resolved
        name = f"{base}/{transport}"
        remapped = self.resolve_topic_name(name)
        return remapped if remapped != self.resolve_topic_name(name, only_expand=True) \
            else f"{resolved.rstrip('/')}/{transport}"

    def _keep_replies(self, service):
        return keep_replies(service, on_lost=self.get_logger().warning)

    def create_service(self, *args, **kwargs):
        """Every service of this node resends a reply that DDS dropped for a client it had not yet
        matched (``sam2_ros.service_replies``)."""
        return self._keep_replies(super().create_service(*args, **kwargs))

    def _create_outputs(self, params: TrackerParameters) -> None:
        self._input_topic = self._transport_topic_name("image", "compressed" if params.compressed else None)
        out_qos = QoSProfile(depth=5, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE)
        self._outputs = {
            "objects": self.create_lifecycle_publisher(TrackedObjects, "~/objects", out_qos),
            "label_image": self.create_lifecycle_publisher(Image, "~/label_image", out_qos),
        }
        if params.overlay:
            self._outputs["overlay"] = self.create_lifecycle_publisher(Image, "~/overlay", out_qos)
        group = self._prompt_group
        self._prompt_services = [
            self.create_service(AddObject, "~/add_object", self._on_add_object, callback_group=group),
            self.create_service(RemoveObject, "~/remove_object", self._on_remove_object, callback_group=group),
            self.create_service(Trigger, "~/reset", self._on_reset, callback_group=group),
            self.create_service(Discover, "~/discover", self._on_discover, callback_group=group),
        ]
        self._create_depth_outputs(params, out_qos)
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._diagnostics_timer = self.create_timer(params.diagnostics_period, self._publish_diagnostics,
                                                    callback_group=self._diagnostics_group)
        if params.server:  # heartbeats, reconnection and re-seeding (sam2_ros.server_backend)
            self._supervision_timer = self.create_timer(params.server_heartbeat_period, self._supervise_backend,
                                                        callback_group=self._supervision_group)

    def _destroy_outputs(self) -> None:
        for publisher in self._outputs.values():
            self.destroy_lifecycle_publisher(publisher)
        self._outputs = {}
        self._depth = None
        for service in self._prompt_services:
            self.destroy_service(service)
        self._prompt_services = []
        for timer in (self._diagnostics_timer, self._supervision_timer):
            if timer is not None:
                self.destroy_timer(timer)
        self._diagnostics_timer = self._supervision_timer = None
        if self._diagnostics_pub is not None:
            self.destroy_publisher(self._diagnostics_pub)
            self._diagnostics_pub = None

    def _subscribe_images(self, image_type, qos: QoSProfile):
        """The camera subscription, counting frames DDS lost before they reached us (e.g. large
        raw images over best effort with Fast DDS's default shared-memory segment)."""
        events = SubscriptionEventCallbacks(message_lost=self._on_frames_lost)
        try:
            return self.create_subscription(image_type, self._input_topic, self._on_image, qos,
                                            callback_group=self._image_group, event_callbacks=events)
        except UnsupportedEventTypeError:  # an RMW without the event: no loss counting
            return self.create_subscription(image_type, self._input_topic, self._on_image, qos,
                                            callback_group=self._image_group)

    def _on_frames_lost(self, info) -> None:
        self._stats.on_lost(int(info.total_count_change))
        self.get_logger().warning(
            f"{info.total_count} image(s) on {self._input_topic} lost in transport before reaching the node. "
            "Large raw images over best-effort DDS: set qos_reliability:=reliable, use compressed:=true, or "
            "enlarge Fast DDS's shared-memory segment (docs/node.md)", throttle_duration_sec=10.0)

    def _stop_processing(self) -> None:
        self._active = False
        for subscription in self._inputs:
            self.destroy_subscription(subscription)
        self._inputs = []
        self._stop_worker.set()
        self._slot.close()
        if self._worker is not None and self._worker is not threading.current_thread():
            self._worker.join()
        self._worker = None

    # ----------------------------------------------------------------------------- images
    def _on_image(self, msg) -> None:
        # Only hand the message over: decoding and inference happen on the worker thread, so
        # a frame that gets replaced before the worker is free costs nothing.
        replaced = self._slot.put(msg, time.monotonic())
        self._stats.on_received(replaced)

    def _worker_loop(self) -> None:
        while not self._stop_worker.is_set():
            pending = self._slot.take(timeout=WORKER_POLL_S)
            if pending is None:
                continue
            try:
                self._process(pending)
            except Exception as error:  # noqa: BLE001 - the worker must survive anything one frame does
                self.get_logger().error(f"frame dropped, unexpected error: {error!r}",
                                        throttle_duration_sec=WARN_THROTTLE_S)
                self._stats.on_rejected_frame()

    def _process(self, pending: PendingFrame) -> None:
        msg = pending.item
        clock = StageClock(self.stage_times)
        backend = self._backend
        if backend is None:
            return
        try:
            frame = backend.to_frame(msg)
        except ImageConversionError as error:
            self._stats.on_rejected_frame()
            self.get_logger().warning(f"image on {self._input_topic} rejected: {error}",
                                      throttle_duration_sec=WARN_THROTTLE_S)
            return
        clock.lap("convert")
        # Only what someone receives is computed (per-pixel work on the model's device).
        wanted = self._wanted_outputs()
        depth = self._depth if any(self._subscribed(n) for n in ("objects", "markers", "points")) else None
        outputs = Outputs(crops=wanted.masks or depth is not None, labels=wanted.labels, tinted=wanted.overlay)
        with self._tracker_lock:
            if self._backend is None or not self._active:
                return
            try:
                state = backend.track(frame, outputs)
            except sam2_model.FrameError as error:
                self._stats.on_rejected_frame()
                self.get_logger().warning(f"image rejected by the tracker: {error}",
                                          throttle_duration_sec=WARN_THROTTLE_S)
                return
            except BackendUnavailable as error:
                self._stats.on_unprocessed()  # counted as dropped: the model could not take it
                self.get_logger().error(f"frame dropped: {error}", throttle_duration_sec=WARN_THROTTLE_S)
                return
            self._last_frame = LastFrame(msg.header, state.height, state.width)
            self._frames_since_reset += 1
            if self._discovery_due():
                # Between tracking and publishing: this frame's ~/objects already holds the new objects.
                # The frame's latency includes the generator's time (docs/node.md).
                state = self._scheduled_discovery(state, outputs)
        clock.lap("track")  # tracking and the frame's summary (masks, boxes, crops, label map)
        frame_3d = self._frame_3d(depth, state, msg.header)
        if frame_3d is not None:
            clock.lap("depth")
            if not wanted.masks:
                state = without_masks(state)  # crops were for the 3D only
        self._publish(state, msg.header, pending.received_at, wanted, clock, frame_3d)

    # ----------------------------------------------------------------------------- discovery
    def _discovery_due(self) -> bool:
        params = self.params
        if params.discover_on_start and self._frames_since_reset == 1:
            return True
        every = params.discover_every_n_frames
        return every > 0 and self._frames_since_reset % every == 0

    def _scheduled_discovery(self, state: FrameState, outputs: Outputs) -> FrameState:
        """The worker's discovery (tracker lock held); returns the frame's state with the new objects."""
        if len(self._backend.obj_ids) >= self.params.tracking.max_objects:
            return state
        try:
            found = self._discover_locked(None, 0, 0.0, outputs)
        except (DiscoveryError, sam2_model.PromptError, sam2_model.TrackingError, BackendUnavailable) as error:
            self.get_logger().warning(f"discovery skipped: {error}", throttle_duration_sec=WARN_THROTTLE_S)
            return state
        if found.object_ids:
            self.get_logger().info(f"discovery on frame {self._frames_since_reset}: {found.describe()}")
        return found.frame if found.object_ids and found.frame is not None else state

    def _discover_locked(self, region, max_new: int, min_area: float,
                         outputs: Optional[Outputs] = None) -> DiscoveryOutcome:
        """Run the generator on the latest frame and add the new objects; tracker lock held.
        Checks everything before changing anything: a refusal leaves the tracking state as it was.
        ``outputs``: also summarize the frame with the new objects (``DiscoveryOutcome.frame``)."""
        backend, frame = self._backend, self._last_frame
        if backend is None:
            raise NotActiveError(f"{self.get_name()} has no model loaded")
        if frame is None:
            raise sam2_model.TrackingError(f"no image yet: discovery looks at the most recent frame, and none has "
                                           f"arrived on {self._input_topic}")
        if not 0.0 <= min_area <= 1.0:  # also refuses NaN
            raise DiscoveryError(f"min_area must be a fraction of the frame in [0, 1] (0 = the parameter "
                                 f"discover_min_area), got {min_area}")
        options = self.params.discovery()
        if min_area > 0.0:
            options = dataclasses.replace(options, min_area=float(min_area))
            if options.min_area > options.max_area:
                raise DiscoveryError(f"min_area {min_area} is above discover_max_area {options.max_area}")
        # The backend checks the rest (max_new, region, room) before changing anything.
        found = backend.discover(options, region, max_new, self._next_free_id(backend.obj_ids), outputs)
        if found.object_ids:
            self._last_id = found.object_ids[-1]
        self._stats.on_discovery(len(found.object_ids), found.duration_ms)
        return found

    def _on_discover(self, request: Discover.Request, response: Discover.Response) -> Discover.Response:
        roi = request.region
        region = (roi.x_offset, roi.y_offset, roi.width, roi.height)
        try:
            if not self._active:
                raise NotActiveError(f"{self.get_name()} is not active: activate it before discovering")
            with self._tracker_lock:
                found = self._discover_locked(region, int(request.max_new_objects), float(request.min_area))
        except (DiscoveryError, sam2_model.PromptError, sam2_model.TrackingError, NotActiveError,
                BackendUnavailable) as error:
            response.success, response.message = False, str(error)
            return response
        except Exception as error:  # noqa: BLE001 - see _unexpected_error
            return self._unexpected_error("discover", error, response)
        response.success, response.message = True, found.describe()
        response.object_ids = found.object_ids
        return response

    def _subscribed(self, name: str) -> bool:
        publisher = self._outputs.get(name)
        return publisher is not None and publisher.get_subscription_count() > 0

    def _wanted_outputs(self) -> WantedOutputs:
        return WantedOutputs(masks=self.params.publish_masks and self._subscribed("objects"),
                             labels=self._subscribed("label_image"), overlay=self._subscribed("overlay"))

    def _publish(self, frame: FrameState, header: Header, received_at: float, wanted: WantedOutputs,
                 clock: StageClock, frame_3d: Optional[DepthFrame] = None) -> None:
        outputs = self._outputs
        objects = tracked_objects_msg(frame, header, 0.0)
        if frame_3d is not None and frame_3d.objects is not None:
            fill_3d(objects.objects, frame_3d.objects)
        label = label_image_msg(frame, header) if wanted.labels else None
        clock.lap("messages")
        latency_ms = (time.monotonic() - received_at) * 1000.0
        objects.latency_ms = latency_ms
        outputs["objects"].publish(objects)
        if label is not None:
            outputs["label_image"].publish(label)
        clock.lap("publish")
        # Drawing costs a few ms per frame at camera resolution: only for someone watching.
        if wanted.overlay:
            outputs["overlay"].publish(overlay_msg(frame, header))  # tinted on the device
            clock.lap("overlay")
        if frame_3d is not None:
            self._publish_3d(frame_3d, header)
            clock.lap("markers")
        self._stats.on_processed(latency_ms)

    # ----------------------------------------------------------------------------- depth (use_depth)
    def _create_depth_outputs(self, params: TrackerParameters, out_qos: QoSProfile) -> None:
        self._depth, self._markers_shown = None, set()
        if not params.use_depth:
            return
        depth_topic = self._transport_topic_name("depth", "compressedDepth" if params.depth_compressed else None)
        settings = DepthSettings(params.depth_options(), params.depth_max_age, params.depth_scale,
                                 params.points_stride)
        self._depth = DepthInput(settings, depth_topic, self.resolve_topic_name("camera_info"))
        self._outputs["markers"] = self.create_lifecycle_publisher(MarkerArray, "~/markers", out_qos)
        self._outputs["points"] = self.create_lifecycle_publisher(PointCloud2, "~/points", out_qos)

    def _subscribe_depth(self, qos: QoSProfile) -> list:
        depth = self._depth
        if depth is None:
            return []
        depth.clear()
        depth_type = CompressedImage if self.params.depth_compressed else Image
        return [self.create_subscription(depth_type, depth.depth_topic, depth.put_depth, qos,
                                         callback_group=self._depth_group),
                self.create_subscription(CameraInfo, depth.info_topic, depth.put_camera_info, qos,
                                         callback_group=self._depth_group)]

    def _frame_3d(self, depth: Optional[DepthInput], state: FrameState, header: Header) -> Optional[DepthFrame]:
        """The frame's 3D (None without use_depth); a problem is warned about and the frame goes on without."""
        if depth is None:
            return None
        found = depth.estimate(state, header, points=self._subscribed("points"))
        if found.problem and self._depth_warnings.should_warn(found.problem):
            self.get_logger().warning(f"no 3D for this frame: {found.problem}")
        return found

    def _publish_3d(self, frame_3d: DepthFrame, header: Header) -> None:
        """~/markers (boxes and ids; a departed object's are deleted) and ~/points, for subscribers."""
        estimates = frame_3d.objects or []
        if self._subscribed("markers"):
            markers, self._markers_shown = markers_msg(estimates, header, self._markers_shown)
            if markers.markers:
                self._outputs["markers"].publish(markers)
        if self._subscribed("points") and frame_3d.objects is not None:
            self._outputs["points"].publish(point_cloud_msg(estimates, header))

    # ----------------------------------------------------------------------------- prompts
    def _apply_prompt(self, request: PromptRequest) -> Tuple[int, ObjectState, LastFrame]:
        """Apply a prompt to the most recent frame; returns (id, ObjectState, that frame)."""
        if not self._active:
            raise NotActiveError(f"{self.get_name()} is not active: activate it before sending prompts")
        with self._tracker_lock:
            backend = self._backend
            if backend is None:
                raise NotActiveError(f"{self.get_name()} has no model loaded")
            link = backend.link()
            if not link.connected:  # the real reason there is no frame to prompt on
                raise BackendUnavailable(link.problem)
            if self._last_frame is None:
                raise sam2_model.TrackingError(
                    f"no image yet: prompts apply to the most recent frame, and none has arrived on "
                    f"{self._input_topic}")
            object_id = request.object_id
            if object_id == 0:
                object_id = self._next_free_id(backend.obj_ids)
            elif object_id not in backend.obj_ids:
                raise sam2_model.UnknownObjectError(
                    f"unknown object id {object_id}: tracked ids are {backend.obj_ids}; "
                    "use object_id 0 for a new object")
            state = backend.add_prompt(object_id, request.prompt, Outputs(crops=True))
            if request.object_id == 0:
                self._last_id = object_id
            frame = self._last_frame
        return object_id, next(o for o in state.objects if o.object_id == object_id), frame

    def _next_free_id(self, in_use) -> int:
        """Ids increase (a removed object's id is not handed out again soon), wrapping at the
        mono16 label limit to the first free one."""
        used = set(in_use)
        candidate = max([self._last_id, *used]) + 1
        if candidate <= MAX_OBJECT_ID:
            return candidate
        return next(i for i in range(1, MAX_OBJECT_ID + 1) if i not in used)

    def _unexpected_error(self, where: str, error: Exception, response=None, prompt: bool = False):
        """The last resort of every prompt and service callback: an error none of them expects (the
        backend's RuntimeError, a CUDA out-of-memory, a bug) would leave the callback, end the
        executor's spin and with it the node. Logged with its type and traceback, counted as a refused
        prompt where ``prompt``, and answered as ``success: false`` naming it (``response``, a service's)."""
        if prompt:
            self._stats.on_rejected_prompt()
        text = f"{where} failed, unexpected error: {type(error).__name__}: {error}"
        self.get_logger().error(f"{text}\n{traceback.format_exc()}", throttle_duration_sec=WARN_THROTTLE_S)
        if response is not None:
            response.success, response.message = False, text
        return response

    def _on_add_object(self, request: AddObject.Request, response: AddObject.Response) -> AddObject.Response:
        try:
            prompt = prompt_from_msg(request.prompt)
            object_id, state, frame = self._apply_prompt(prompt)
        except (*PROMPT_ERRORS, NotActiveError) as error:
            self._stats.on_rejected_prompt()
            response.success, response.message = False, str(error)
            return response
        except Exception as error:  # noqa: BLE001 - see _unexpected_error
            return self._unexpected_error("add_object", error, response, prompt=True)
        response.success = True
        response.object_id = object_id
        response.object = tracked_object_msg(state, frame.header)
        action = "added" if request.prompt.object_id == 0 else "corrected"
        response.message = f"{action} object {object_id} with {prompt.describe()}"
        return response

    def _on_prompt(self, msg: Prompt) -> None:
        try:
            self._apply_prompt(prompt_from_msg(msg))
        except (*PROMPT_ERRORS, NotActiveError) as error:
            self._stats.on_rejected_prompt()
            self.get_logger().warning(f"prompt on ~/prompt ignored: {error}", throttle_duration_sec=WARN_THROTTLE_S)
        except Exception as error:  # noqa: BLE001 - see _unexpected_error
            self._unexpected_error("prompt on ~/prompt", error, prompt=True)

    def _on_click(self, msg: PointStamped) -> None:
        with self._tracker_lock:  # the worker replaces _last_frame under this lock
            frame = self._last_frame
        try:
            object_id, _, _ = self._apply_prompt(
                prompt_from_click(msg, (frame.height, frame.width) if frame else None))
        except (*PROMPT_ERRORS, NotActiveError) as error:
            self._stats.on_rejected_prompt()
            self.get_logger().warning(f"click ignored: {error}", throttle_duration_sec=WARN_THROTTLE_S)
            return
        except Exception as error:  # noqa: BLE001 - see _unexpected_error
            self._unexpected_error("click", error, prompt=True)
            return
        self.get_logger().info(f"click at ({msg.point.x:.0f}, {msg.point.y:.0f}): tracking object {object_id}")

    def _on_remove_object(self, request: RemoveObject.Request,
                          response: RemoveObject.Response) -> RemoveObject.Response:
        try:
            object_id = check_object_id(request.object_id, allow_new=False)
            with self._tracker_lock:
                if self._backend is None:
                    raise NotActiveError(f"{self.get_name()} has no model loaded")
                self._backend.remove_object(object_id)
                remaining = self._backend.obj_ids
        except (PromptConversionError, sam2_model.TrackingError, NotActiveError, BackendUnavailable) as error:
            response.success, response.message = False, str(error)
            return response
        except Exception as error:  # noqa: BLE001 - see _unexpected_error
            return self._unexpected_error("remove_object", error, response)
        response.success, response.message = True, f"removed object {object_id}; tracking {remaining}"
        return response

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        with self._tracker_lock:
            if self._backend is None:
                response.success, response.message = False, f"{self.get_name()} has no model loaded"
                return response
            count = len(self._backend.obj_ids)
            try:
                self._backend.reset()
            except BackendUnavailable as error:
                response.success, response.message = False, str(error)
                return response
            except Exception as error:  # noqa: BLE001 - e.g. the server's TrackingError; see _unexpected_error
                return self._unexpected_error("reset", error, response)
            self._last_id, self._last_frame, self._frames_since_reset = 0, None, 0
        response.success, response.message = True, f"reset: forgot {count} object(s); ids start at 1 again"
        return response

    # ----------------------------------------------------------------------------- diagnostics
    def _snapshot(self) -> Snapshot:
        stats = self._stats
        with self._tracker_lock:
            backend = self._backend
            num_objects = len(backend.obj_ids) if backend else 0
            tracker_bytes = backend.memory_bytes() if backend else 0
            device = backend.device if backend else "none"
            cuda_bytes = backend.cuda_allocated_bytes() if backend else None
            link = backend.link() if backend else None
        percentiles = stats.processed.percentiles((50, 99))
        last_input = stats.received.last_time()
        return Snapshot(
            state="active" if self._active else ("inactive" if backend else "unconfigured"),
            device=device, input_topic=self._input_topic,
            input_hz=stats.received.rate(), processed_hz=stats.processed.rate(),
            dropped_in_window=stats.dropped.count(), received_total=stats.received_total,
            processed_total=stats.processed_total, dropped_total=stats.dropped_total,
            lost_in_window=stats.lost.count(), lost_total=stats.lost_total,
            rejected_frames_total=stats.rejected_frames_total, rejected_prompts_total=stats.rejected_prompts_total,
            latency_p50_ms=percentiles[0] if percentiles else None,
            latency_p99_ms=percentiles[1] if percentiles else None,
            num_objects=num_objects, tracker_memory_bytes=tracker_bytes, process_rss_bytes=process_rss_bytes(),
            cuda_allocated_bytes=cuda_bytes,
            seconds_since_input=None if last_input is None else time.monotonic() - last_input,
            discovered_total=stats.discovered_total, last_discovery_ms=stats.last_discovery_ms,
            seconds_since_discovery=(None if stats.last_discovery_at is None
                                     else time.monotonic() - stats.last_discovery_at),
            server=self.params.server if self.params else "", link_problem=link.problem if link else None,
            reconnects=link.reconnects if link else 0)

    def _supervise_backend(self) -> None:
        """Heartbeat timer (``server`` set): the backend checks its server, reconnects and re-seeds;
        a change of state is logged here (ERROR while the server is away)."""
        backend = self._backend
        try:
            event = backend.supervise() if backend is not None else None
        except Exception as error:  # noqa: BLE001 - a timer exception would end the executor: report, go on
            self.get_logger().error(f"server supervision failed: {error!r}", throttle_duration_sec=WARN_THROTTLE_S)
            return
        if event is not None:
            self._log(*event)

    def _publish_diagnostics(self) -> None:
        publisher = self._diagnostics_pub
        if publisher is None:
            return
        array = diagnostic_array(self._snapshot(), f"{self.get_name()}: SAM 2 tracker",
                                 self.get_clock().now().to_msg(), self._stats.window_s)
        depth = self._depth
        if depth is not None:  # use_depth: a second status, for the depth input alone
            array.status.append(depth.status(f"{self.get_name()}: depth"))
        publisher.publish(array)


def main(args=None) -> None:
    # SIGINT and SIGTERM are this process's own (stop_signals: a request the main loop polls for),
    # not rclpy's KeyboardInterrupt, which a finalized node without timers has been seen to miss.
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    stop = StopRequest().install()
    node = TrackerNode()
    executor = MultiThreadedExecutor(num_threads=EXECUTOR_THREADS)
    executor.add_node(node)
    try:
        if not stop.requested:  # a signal during start-up (loading the model) ends it here
            node.autostart()
        spin_until_stopped(executor, stop)
    except ExternalShutdownException:
        pass
    finally:
        node._stop_processing()
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
