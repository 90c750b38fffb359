"""The tracker node's parameters: one typed dataclass, declared on the node, read and checked at configure.

Parameters are declared with dynamic typing so that a value of the wrong type
(``-p max_objects:=many``) does not kill the node at start-up with an rclpy exception; it is
reported, with every other problem, when the node is configured.
"""

from __future__ import annotations

import os
import typing
from dataclasses import dataclass, field, fields
from typing import Any, Dict, List, Optional, Tuple

from rcl_interfaces.msg import ParameterDescriptor

from sam2_model.discovery import DISCOVERY_GENERATOR_OPTIONS, DiscoveryOptions
from sam2_model.mask_generator_options import MaskGeneratorOptions, MaskGeneratorOptionsError
from sam2_model.object_3d import DepthOptions
from sam2_model.tracker_options import TrackerOptions, option_help, option_types

from .prompt_conversion import MAX_OBJECT_ID

DEVICES = ("auto", "cuda", "cpu")           # or "cuda:N"
DTYPES = ("float32", "bfloat16", "float16")
AUTOCAST = ("auto", "none", "bfloat16", "float16")
RELIABILITY = ("best_effort", "reliable")
SERVER_SCHEMES = ("ipc://", "tcp://")


class ParameterError(ValueError):
    """Invalid parameter values; the message lists every problem."""


@dataclass
class TrackerParameters:
    """Everything the node reads from ROS parameters (see config/tracker.yaml and docs/node.md).

    The tracking options are ``sam2_model.TrackerOptions`` (their defaults, checks and texts live
    there); they appear as flat parameters (``fill_hole_area``, ``max_objects``, ...). Options
    the model's YAML also carries are unset by default and then take the model's value.
    """

    model: str = "default"
    checkpoint: str = ""
    device: str = "auto"
    dtype: str = "float32"
    autocast: str = "auto"
    compressed: bool = False
    qos_reliability: str = "best_effort"
    qos_depth: int = 5
    overlay: bool = True
    publish_masks: bool = True
    diagnostics_period: float = 1.0
    autostart: bool = True
    # Discovery (~/discover, discover_on_start, discover_every_n_frames). The generator settings
    # are sam2_model.discovery's (not MaskGeneratorOptions' official defaults; see there why).
    discover_on_start: bool = False
    discover_every_n_frames: int = 0
    discover_points_per_side: int = DISCOVERY_GENERATOR_OPTIONS.points_per_side
    discover_points_per_batch: int = DISCOVERY_GENERATOR_OPTIONS.points_per_batch
    discover_pred_iou_thresh: float = DISCOVERY_GENERATOR_OPTIONS.pred_iou_thresh
    discover_stability_score_thresh: float = DISCOVERY_GENERATOR_OPTIONS.stability_score_thresh
    discover_min_area: float = DiscoveryOptions.min_area
    discover_max_area: float = DiscoveryOptions.max_area
    discover_max_overlap: float = DiscoveryOptions.max_overlap
    discover_order: str = DiscoveryOptions.order
    # The model in a sam2-server (issue 22; docs/node.md "Model in a server"): "" = in this process.
    server: str = ""
    server_stream: str = ""                 # "" = the node's fully qualified name
    server_timeout: float = 1.0             # seconds a reply may take (discovery: DISCOVERY_TIMEOUT_FACTOR x)
    server_heartbeat_period: float = 0.5    # seconds between heartbeats; a dead server is noticed within
                                            # period + timeout
    server_public_key: str = ""             # CURVE (a server on another machine): its server.key ...
    server_client_key: str = ""             # ... and this robot's NAME.key_secret (sam2-server keygen)
    # Depth: 3D of each object from an aligned depth image (sam2_model.object_3d, docs/node.md).
    use_depth: bool = False
    depth_compressed: bool = False
    depth_scale: float = 0.0
    depth_max_age: float = 0.02
    depth_min: float = DepthOptions.min_depth
    depth_max: float = DepthOptions.max_depth
    depth_erode_px: int = DepthOptions.erode_px
    depth_low_percentile: float = DepthOptions.low_percentile
    depth_high_percentile: float = DepthOptions.high_percentile
    depth_min_points: int = DepthOptions.min_points
    points_stride: int = 4
    tracking: TrackerOptions = field(default_factory=TrackerOptions)

    def problems(self) -> List[str]:
        """Every invalid value, as sentences naming the parameter; empty when all is well."""
        found = self._server_problems()
        # With a server, model, checkpoint, device and dtype are the server's (its command line).
        if not self.server and not self.model.strip():
            found.append("model is empty: give 'default' (the bundled small model), a released model name "
                         "(e.g. sam2.1_hiera_tiny, with its checkpoint) or a YAML config path")
        elif not self.server and _looks_like_path(self.model) and not os.path.isfile(os.path.expanduser(self.model)):
            found.append(f"model {self.model!r}: no such config file")
        if self.checkpoint and not self.server and not os.path.isfile(os.path.expanduser(self.checkpoint)):
            found.append(f"checkpoint {self.checkpoint!r}: no such file")
        if self.device not in DEVICES and not _is_cuda_index(self.device):
            found.append(f"device {self.device!r} must be one of {', '.join(DEVICES)} (or cuda:N)")
        if self.dtype not in DTYPES:
            found.append(f"dtype {self.dtype!r} must be one of {', '.join(DTYPES)}")
        if self.autocast not in AUTOCAST:
            found.append(f"autocast {self.autocast!r} must be one of {', '.join(AUTOCAST)}")
        if self.qos_reliability not in RELIABILITY:
            found.append(f"qos_reliability {self.qos_reliability!r} must be one of {', '.join(RELIABILITY)}")
        if not 1 <= self.qos_depth <= 1000:
            found.append(f"qos_depth {self.qos_depth} must be in 1..1000")
        found += self.tracking.problems()
        if self.tracking.max_objects > MAX_OBJECT_ID:
            found.append(f"max_objects {self.tracking.max_objects} must be at most {MAX_OBJECT_ID} "
                         "(ids must fit the mono16 label image)")
        if not 0.05 <= self.diagnostics_period <= 3600:
            found.append(f"diagnostics_period {self.diagnostics_period} must be in 0.05..3600 seconds")
        if self.discover_every_n_frames < 0:
            found.append(f"discover_every_n_frames {self.discover_every_n_frames} must be >= 0 (0 = off)")
        found += [f"discover_{problem}" for problem in self.discovery().problems()]
        found += self._depth_problems()
        try:
            self.generator()
        except MaskGeneratorOptionsError as error:
            found.append(f"discover_* generator setting: {error}")
        return found

    def _server_problems(self) -> List[str]:
        found = []
        if self.server and not self.server.startswith(SERVER_SCHEMES):
            found.append(f"server {self.server!r} must be an address like ipc:///tmp/sam2.sock or "
                         "tcp://host:5555 (empty: the model runs in this node)")
        if not 0.05 <= self.server_timeout <= 600:
            found.append(f"server_timeout {self.server_timeout} must be in 0.05..600 seconds")
        if not 0.05 <= self.server_heartbeat_period <= 60:
            found.append(f"server_heartbeat_period {self.server_heartbeat_period} must be in 0.05..60 seconds")
        keys = {"server_public_key": self.server_public_key, "server_client_key": self.server_client_key}
        if any(keys.values()) and not all(keys.values()):
            found.append("server_public_key and server_client_key go together (CURVE needs the server's public key "
                         "and this client's key pair): give both or neither")
        for name, path in keys.items():
            if path and not os.path.isfile(os.path.expanduser(path)):
                found.append(f"{name} {path!r}: no such file")
        return found

    def _depth_problems(self) -> List[str]:
        found = [f"depth: {problem}" for problem in self.depth_options().problems()]
        if not (self.depth_scale >= 0.0 and self.depth_scale < float("inf")):
            found.append(f"depth_scale {self.depth_scale} must be >= 0 metres per unit (0 = by encoding)")
        if not 0.0 <= self.depth_max_age <= 10.0:
            found.append(f"depth_max_age {self.depth_max_age} must be in 0..10 seconds")
        if not 1 <= self.points_stride <= 64:
            found.append(f"points_stride {self.points_stride} must be in 1..64 pixels")
        return found

    def depth_options(self) -> DepthOptions:
        """How 3D is estimated (``sam2_model.object_3d``)."""
        return DepthOptions(min_depth=self.depth_min, max_depth=self.depth_max, erode_px=self.depth_erode_px,
                            low_percentile=self.depth_low_percentile, high_percentile=self.depth_high_percentile,
                            min_points=self.depth_min_points)

    def discovery(self) -> DiscoveryOptions:
        """Which generated masks become objects (``sam2_model.discovery``)."""
        return DiscoveryOptions(min_area=self.discover_min_area, max_area=self.discover_max_area,
                                max_overlap=self.discover_max_overlap, order=self.discover_order)

    def generator(self) -> MaskGeneratorOptions:
        """The automatic mask generator's settings; raises MaskGeneratorOptionsError."""
        return MaskGeneratorOptions(points_per_side=self.discover_points_per_side,
                                    points_per_batch=self.discover_points_per_batch,
                                    pred_iou_thresh=self.discover_pred_iou_thresh,
                                    stability_score_thresh=self.discover_stability_score_thresh)


_NODE_DESCRIPTIONS: Dict[str, str] = {
    "model": "SAM 2 model: default (the small model bundled with the package, trained on generated videos), "
             "a released name (sam2.1_hiera_tiny/small/base_plus/large, sam2_hiera_*; give its official "
             "checkpoint) or an official-format YAML config path",
    "checkpoint": "official-format checkpoint (.pt) path; empty = the bundled weights for model default, "
                  "random weights (tests only) for any other model",
    "device": "auto (cuda if available, else cpu), cuda, cuda:N or cpu",
    "dtype": "model weight dtype: float32, bfloat16 or float16",
    "autocast": "compute dtype inside the tracker: auto (bfloat16 on cuda, none on cpu), none, bfloat16, float16",
    "compressed": "subscribe to image/compressed (sensor_msgs/CompressedImage, jpeg/png) instead of image",
    "qos_reliability": "image subscription reliability: best_effort (REP 2003 sensor data) or reliable",
    "qos_depth": "image subscription queue depth (the node itself keeps only the newest frame)",
    "overlay": "publish ~/overlay (input picture with coloured masks, boxes and ids) when someone subscribes",
    "publish_masks": "each object in ~/objects carries its mask (cropped to its bbox); false: boxes and scores only",
    "diagnostics_period": "seconds between /diagnostics messages",
    "autostart": "configure and activate at start-up (for plain `ros2 run`); false = wait for lifecycle commands",
    "discover_on_start": "discover objects by themselves on the first frame (as the ~/discover service does)",
    "discover_every_n_frames": "discover new objects every N processed frames, between frames in the worker; 0 = off",
    "discover_points_per_side": "discovery: automatic mask generator clicks per side (cost grows with its square)",
    "discover_points_per_batch": "discovery: generator clicks decoded together",
    "discover_pred_iou_thresh": "discovery: keep generated masks whose predicted IoU is above this",
    "discover_stability_score_thresh": "discovery: keep generated masks whose stability score is at least this",
    "discover_min_area": "discovery: smallest new object, as a fraction of the frame",
    "discover_max_area": "discovery: largest new object, as a fraction of the frame (larger: background)",
    "discover_max_overlap": "discovery: a mask more than this fraction covered by tracked objects (or holding more "
                            "than this fraction of one) is not new",
    "discover_order": "discovery: area (largest first) or score (most confident first)",
    "server": "sam2-server address (ipc:///tmp/sam2.sock, tcp://host:5555): the model runs there and this node "
              "imports no PyTorch; empty = the model runs in this node (model/checkpoint/device/dtype apply)",
    "server_stream": "this node's stream name on the server; empty = the node's fully qualified name",
    "server_timeout": "seconds a server reply may take before the server counts as away (frames dropped)",
    "server_heartbeat_period": "seconds between heartbeats to the server (a dead server is noticed within "
                               "this plus server_timeout)",
    "server_public_key": "CURVE encryption to a server on another machine: the server's public key file "
                         "(server.key from sam2-server keygen); empty = no CURVE (ipc or loopback only)",
    "server_client_key": "CURVE: this client's key pair file (NAME.key_secret from sam2-server keygen --client NAME)",
    "use_depth": "subscribe to depth (aligned to the colour image) and camera_info; objects get 3D, ~/markers and "
                 "~/points are published",
    "depth_compressed": "subscribe to depth/compressedDepth (image_transport compressedDepth, png) instead of depth",
    "depth_scale": "metres per depth unit; 0 = by encoding (16UC1: millimetres, 32FC1: metres)",
    "depth_max_age": "seconds: a colour frame takes the depth image with its stamp, else the nearest within this",
    "depth_min": "metres: nearer depth readings are ignored",
    "depth_max": "metres: farther depth readings are ignored",
    "depth_erode_px": "pixels of each mask's border left out of its 3D (background seen at the edge)",
    "depth_low_percentile": "size: from this percentile of an object's points, per axis",
    "depth_high_percentile": "size: to this percentile of an object's points, per axis",
    "depth_min_points": "an object with fewer valid depth pixels has no 3D (has_position false)",
    "points_stride": "~/points: every N-th pixel per axis of each object",
}


@dataclass(frozen=True)
class _Parameter:
    """One ROS parameter: its name, value type, default (None = unset) and description."""

    name: str
    value_type: type
    default: Any
    description: str
    tracking: bool  # a TrackerOptions field (else a TrackerParameters field)


def _parameters() -> List[_Parameter]:
    node_types = typing.get_type_hints(TrackerParameters)
    found = [_Parameter(f.name, node_types[f.name], f.default, _NODE_DESCRIPTIONS[f.name], False)
             for f in fields(TrackerParameters) if f.name != "tracking"]
    types, descriptions = option_types(), option_help()
    # The node's own `autocast` (with "auto") sets the tracker's.
    found += [_Parameter(f.name, types[f.name], f.default, descriptions[f.name], True)
              for f in fields(TrackerOptions) if f.name != "autocast"]
    return found


def parameter_names() -> List[str]:
    return [p.name for p in _parameters()]


def _looks_like_path(value: str) -> bool:
    return value.endswith((".yaml", ".yml")) or os.sep in value


def _is_cuda_index(value: str) -> bool:
    prefix, _, index = value.partition(":")
    return prefix == "cuda" and index.isdigit()


def declare_parameters(node) -> None:
    """Declare every parameter with its default (dynamic typing: types are checked at configure).
    Tracking options the model's YAML carries are declared unset: then the model's value holds."""
    for parameter in _parameters():
        if not node.has_parameter(parameter.name):
            node.declare_parameter(parameter.name, parameter.default,
                                   ParameterDescriptor(description=parameter.description, dynamic_typing=True))


def _coerce(name: str, value_type: type, value: Any) -> Tuple[Any, str]:
    """(value, problem). Accepts an int where a float is expected; nothing else is converted."""
    if value_type is bool:
        return (value, "") if isinstance(value, bool) else (None, f"{name} must be true or false, got {value!r}")
    if value_type is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value, ""
        return None, f"{name} must be an integer, got {value!r}"
    if value_type is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value), ""
        return None, f"{name} must be a number, got {value!r}"
    if isinstance(value, str):
        return value.strip(), ""
    return None, f"{name} must be a string, got {value!r}"


def parameters_from_values(values: Dict[str, Any]) -> TrackerParameters:
    """Build and check TrackerParameters from a name -> value dict (missing or None: the default)."""
    problems, node_values, tracking_values = [], {}, {}
    for parameter in _parameters():
        if values.get(parameter.name) is None:
            continue
        value, problem = _coerce(parameter.name, parameter.value_type, values[parameter.name])
        if problem:
            problems.append(problem)
        else:
            (tracking_values if parameter.tracking else node_values)[parameter.name] = value
    params = TrackerParameters(**node_values, tracking=TrackerOptions(**tracking_values))
    if not problems:
        problems = params.problems()
    if problems:
        raise ParameterError("invalid parameters: " + "; ".join(problems))
    return params


def read_parameters(node) -> TrackerParameters:
    """The node's current parameter values, checked; raises ParameterError naming each bad one."""
    return parameters_from_values({name: node.get_parameter(name).value for name in parameter_names()})


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when PyTorch sees a GPU, else ``cpu``; a cuda device must exist."""
    import sam2_model

    try:
        return sam2_model.resolve_device(device)
    except sam2_model.DeviceError as error:
        raise ParameterError(str(error)) from None


def resolve_autocast(autocast: str, device: str) -> Optional[str]:
    """The tracker's autocast dtype name (``TrackerOptions.autocast``) or None."""
    if autocast == "auto":
        return "bfloat16" if device.startswith("cuda") else None
    return None if autocast == "none" else autocast
