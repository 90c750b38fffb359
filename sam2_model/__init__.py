"""sam2_model: Meta's SAM 2 / SAM 2.1 in plain PyTorch, with a streaming multi-object tracker.

Public API::

    model = build_model("sam2.1_hiera_tiny", "sam2.1_hiera_tiny.pt", device="cuda")
    predictor = ImagePredictor(model)            # single images
    tracker = StreamingTracker(model)            # live video, frame by frame
"""

from .build import build_model
from .checkpoint import CheckpointError, save_checkpoint
from .config import RELEASED_MODELS, ConfigError, ModelConfig
from .image_predictor import ImagePrediction, ImagePredictor
from .prompts import PromptError
from .sam2 import SAM2Model
from .tracker import StreamingTracker, TrackingError, TrackingResult, UnknownObjectError
from .transforms import FrameError

__all__ = [
    "build_model", "save_checkpoint", "CheckpointError", "ConfigError", "ModelConfig", "RELEASED_MODELS",
    "ImagePredictor", "ImagePrediction", "PromptError", "SAM2Model", "StreamingTracker", "TrackingError",
    "TrackingResult", "UnknownObjectError", "FrameError",
]
