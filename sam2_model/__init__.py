"""sam2_model: Meta's SAM 2 / SAM 2.1 in plain PyTorch, with a streaming multi-object tracker.

Public API::

    model = build_model("sam2.1_hiera_tiny", "sam2.1_hiera_tiny.pt", device="cuda")
    predictor = ImagePredictor(model)            # single images
    masks = AutomaticMaskGenerator(model).generate(image)  # everything in an image, no prompt
    tracker = StreamingTracker(model)            # live video, frame by frame

Names load on first use, so that torch-free parts (``sam2_model.davis_format``, the
procedural generator) can be imported by tools that never touch the model.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "build_model": "build", "resolve_device": "build", "DeviceError": "build", "save_checkpoint": "checkpoint", "CheckpointError": "checkpoint",
    "ConfigError": "config", "ModelConfig": "config", "RELEASED_MODELS": "config", "DEFAULT_MODEL": "config",
    "ImagePredictor": "image_predictor", "ImagePrediction": "image_predictor", "PromptError": "errors",
    "SAM2Model": "sam2", "StreamingTracker": "tracker", "TrackingError": "errors", "TrackingResult": "tracker",
    "UnknownObjectError": "errors", "FrameError": "errors", "DiscoveryError": "errors",
    "TrackerOptions": "tracker_options",
    "TrackerOptionsError": "tracker_options", "AutomaticMaskGenerator": "automatic_mask_generator",
    "GeneratedMask": "automatic_mask_generator", "MaskGeneratorOptions": "mask_generator_options",
    "MaskGeneratorOptionsError": "mask_generator_options",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # pragma: no cover
    from .automatic_mask_generator import AutomaticMaskGenerator, GeneratedMask
    from .build import DeviceError, build_model, resolve_device
    from .checkpoint import CheckpointError, save_checkpoint
    from .config import DEFAULT_MODEL, RELEASED_MODELS, ConfigError, ModelConfig
    from .image_predictor import ImagePrediction, ImagePredictor
    from .mask_generator_options import MaskGeneratorOptions, MaskGeneratorOptionsError
    from .errors import DiscoveryError, FrameError, PromptError, TrackingError, UnknownObjectError
    from .sam2 import SAM2Model
    from .tracker import StreamingTracker, TrackingResult
    from .tracker_options import TrackerOptions, TrackerOptionsError


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'sam2_model' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list:
    return sorted(set(globals()) | set(_EXPORTS))
