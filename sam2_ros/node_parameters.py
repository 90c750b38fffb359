"""The tracker node's parameters: one typed dataclass, declared on the node, read and checked at configure.

Parameters are declared with dynamic typing so that a value of the wrong type
(``-p max_objects:=many``) does not kill the node at start-up with an rclpy exception; it is
reported, with every other problem, when the node is configured.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, fields
from typing import Any, Dict, List, Tuple

from rcl_interfaces.msg import ParameterDescriptor

DEVICES = ("auto", "cuda", "cpu")           # or "cuda:N"
DTYPES = ("float32", "bfloat16", "float16")
AUTOCAST = ("auto", "none", "bfloat16", "float16")
RELIABILITY = ("best_effort", "reliable")


class ParameterError(ValueError):
    """Invalid parameter values; the message lists every problem."""


@dataclass
class TrackerParameters:
    """Everything the node reads from ROS parameters (see config/tracker.yaml and docs/node.md)."""

    model: str = "default"
    checkpoint: str = ""
    device: str = "auto"
    dtype: str = "float32"
    autocast: str = "auto"
    compressed: bool = False
    qos_reliability: str = "best_effort"
    qos_depth: int = 5
    max_objects: int = 64
    max_cond_frames: int = 8
    fill_hole_area: int = 8
    corrections_as_cond: bool = False
    non_overlap_masks: bool = False
    overlay: bool = True
    publish_masks: bool = True
    diagnostics_period: float = 1.0
    autostart: bool = True

    def problems(self) -> List[str]:
        """Every invalid value, as sentences naming the parameter; empty when all is well."""
        found = []
        if not self.model.strip():
            found.append("model is empty: give 'default' (the bundled small model), a released model name "
                         "(e.g. sam2.1_hiera_tiny, with its checkpoint) or a YAML config path")
        elif _looks_like_path(self.model) and not os.path.isfile(os.path.expanduser(self.model)):
            found.append(f"model {self.model!r}: no such config file")
        if self.checkpoint and not os.path.isfile(os.path.expanduser(self.checkpoint)):
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
        if not 1 <= self.max_objects <= 65535:
            found.append(f"max_objects {self.max_objects} must be in 1..65535 (ids must fit the mono16 label image)")
        if self.max_cond_frames < 1:
            found.append(f"max_cond_frames {self.max_cond_frames} must be at least 1 (the first prompt is always kept)")
        if self.fill_hole_area < 0:
            found.append(f"fill_hole_area {self.fill_hole_area} must be >= 0 (0 turns hole filling off)")
        if not 0.05 <= self.diagnostics_period <= 3600:
            found.append(f"diagnostics_period {self.diagnostics_period} must be in 0.05..3600 seconds")
        return found


_DESCRIPTIONS: Dict[str, str] = {
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
    "max_objects": "most objects tracked at once",
    "max_cond_frames": "most prompted (conditioning) frames kept per object",
    "fill_hole_area": "fill background holes up to this many pixels (at 1/4 model resolution) in masks; 0 = off",
    "corrections_as_cond": "corrections become conditioning frames (SAM 2 add_all_frames_to_correct_as_cond)",
    "non_overlap_masks": "a pixel belongs to at most one object's mask (the highest scoring)",
    "overlay": "publish ~/overlay (input picture with coloured masks, boxes and ids) when someone subscribes",
    "publish_masks": "each object in ~/objects carries its mask (cropped to its bbox); false: boxes and scores only",
    "diagnostics_period": "seconds between /diagnostics messages",
    "autostart": "configure and activate at start-up (for plain `ros2 run`); false = wait for lifecycle commands",
}


def _looks_like_path(value: str) -> bool:
    return value.endswith((".yaml", ".yml")) or os.sep in value


def _is_cuda_index(value: str) -> bool:
    prefix, _, index = value.partition(":")
    return prefix == "cuda" and index.isdigit()


def _field_types() -> Dict[str, Tuple[str, Any]]:
    return {f.name: (f.type, f.default) for f in fields(TrackerParameters)}


def declare_parameters(node) -> None:
    """Declare every parameter with its default (dynamic typing: types are checked at configure)."""
    for name, (_, default) in _field_types().items():
        if not node.has_parameter(name):
            node.declare_parameter(name, default,
                                   ParameterDescriptor(description=_DESCRIPTIONS[name], dynamic_typing=True))


def _coerce(name: str, type_name: str, value: Any) -> Tuple[Any, str]:
    """(value, problem). Accepts an int where a float is expected; nothing else is converted."""
    if type_name == "bool":
        return (value, "") if isinstance(value, bool) else (None, f"{name} must be true or false, got {value!r}")
    if type_name == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            return value, ""
        return None, f"{name} must be an integer, got {value!r}"
    if type_name == "float":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value), ""
        return None, f"{name} must be a number, got {value!r}"
    if isinstance(value, str):
        return value.strip(), ""
    return None, f"{name} must be a string, got {value!r}"


def parameters_from_values(values: Dict[str, Any]) -> TrackerParameters:
    """Build and check TrackerParameters from a name -> value dict (missing names keep defaults)."""
    problems, kwargs = [], {}
    for name, (type_name, _) in _field_types().items():
        if name not in values or values[name] is None:
            continue
        value, problem = _coerce(name, type_name, values[name])
        if problem:
            problems.append(problem)
        else:
            kwargs[name] = value
    params = TrackerParameters(**kwargs)
    if not problems:
        problems = params.problems()
    if problems:
        raise ParameterError("invalid parameters: " + "; ".join(problems))
    return params


def read_parameters(node) -> TrackerParameters:
    """The node's current parameter values, checked; raises ParameterError naming each bad one."""
    return parameters_from_values({name: node.get_parameter(name).value for name in _field_types()})


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when PyTorch sees a GPU, else ``cpu``; a cuda device must exist."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ParameterError(f"device {device!r}: PyTorch sees no CUDA GPU (use device:=cpu or auto)")
        index = int(device.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise ParameterError(f"device {device!r}: only {torch.cuda.device_count()} CUDA device(s)")
    return device


def resolve_autocast(autocast: str, device: str):
    """The tracker's autocast dtype (a torch.dtype) or None."""
    import torch

    if autocast == "auto":
        return torch.bfloat16 if device.startswith("cuda") else None
    return None if autocast == "none" else getattr(torch, autocast)


def as_dict(params: TrackerParameters) -> Dict[str, Any]:
    return dataclasses.asdict(params)
