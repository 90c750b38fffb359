"""The tracker node's model in its own process: loads the model, wraps a ``TrackingSession``
(PyTorch; imported only when the node's ``server`` parameter is empty)."""

from __future__ import annotations

import gc
import os
from typing import Callable, List, Optional, Tuple

import torch
from sensor_msgs.msg import CompressedImage

import sam2_model
from sam2_model.config import DEFAULT_CHECKPOINT_PATH, DEFAULT_MODEL
from sam2_model.discovery import DiscoveryOptions, Region
from sam2_model.frame_state import FrameState
from sam2_model.session_types import DiscoveryOutcome, Outputs, PromptSpec
from sam2_model.tracking_session import TrackingSession

from .image_conversion import compressed_to_rgb, image_to_rgb_tensor
from .node_parameters import ParameterError, TrackerParameters, resolve_autocast, resolve_device
from .tracker_backend import LinkStatus


class InProcessBackend:
    """A ``TrackingSession`` on a model this process loaded.

    Args:
        session: the camera's tracking session (tracker and mask generator on ``model``).
        model: the loaded model (held here so ``close`` frees it).
        device: the model's device.
        checkpoint: the weights loaded; None = random.
        dtype: the model's weight dtype (for the log).
        name: the model's name or config path (for the log).
    """

    def __init__(self, session: TrackingSession, model, device: str, checkpoint: Optional[str],
                 dtype: str = "float32", name: str = ""):
        self.session = session
        self.model = model
        self.device = device
        self.checkpoint = checkpoint
        self.dtype = dtype
        self.name = name
        self._link = LinkStatus(connected=True)

    @classmethod
    def from_parameters(cls, params: TrackerParameters, log: Callable[[str, str], None]) -> "InProcessBackend":
        device = resolve_device(params.device)
        checkpoint = os.path.expanduser(params.checkpoint) or None
        if checkpoint is None and params.model == DEFAULT_MODEL:
            checkpoint = DEFAULT_CHECKPOINT_PATH
            if not os.path.isfile(checkpoint):
                raise ParameterError(f"model {DEFAULT_MODEL!r}: its bundled weights {checkpoint} are missing "
                                     "(reinstall the package, or choose an official model: model:=sam2.1_hiera_tiny "
                                     "checkpoint:=...)")
        if checkpoint is None:
            log("warning", "no checkpoint given: the model has RANDOM weights (only useful for tests)")
        model = sam2_model.build_model(os.path.expanduser(params.model), checkpoint, device=device,
                                       dtype=getattr(torch, params.dtype))
        tracker = sam2_model.StreamingTracker(model, params.tracking,
                                              autocast=resolve_autocast(params.autocast, device))
        generator = sam2_model.AutomaticMaskGenerator(model, params.generator())
        return cls(TrackingSession(tracker, generator), model, device, checkpoint, params.dtype,
                   params.model)

    @property
    def obj_ids(self) -> List[int]:
        return self.session.obj_ids

    def to_frame(self, msg) -> torch.Tensor:
        # rgb8/bgr8: a view on the message's bytes, moved as it is to where the tracker resizes
        # frames (the CPU for Pillow's resize, else the model's device).
        device = self.session.tracker.frame_device
        if isinstance(msg, CompressedImage):
            return torch.from_numpy(compressed_to_rgb(msg)).to(device)
        return image_to_rgb_tensor(msg, device)

    def track(self, frame, outputs: Outputs) -> FrameState:
        return self.session.track(frame, outputs)

    def add_prompt(self, object_id: int, prompt: PromptSpec, outputs: Outputs) -> FrameState:
        return self.session.add_prompt(object_id, prompt, outputs)

    def remove_object(self, object_id: int) -> None:
        self.session.remove_object(object_id)

    def reset(self) -> None:
        self.session.reset()

    def discover(self, options: DiscoveryOptions, region: Optional[Region], max_new: int, first_id: int,
                 outputs: Optional[Outputs]) -> DiscoveryOutcome:
        return self.session.discover(options, region, max_new, first_id, outputs)

    def memory_bytes(self) -> int:
        return self.session.memory_bytes()

    def cuda_allocated_bytes(self) -> Optional[int]:
        if not self.device.startswith("cuda"):
            return None
        return int(torch.cuda.memory_allocated(torch.device(self.device)))

    def describe(self) -> str:
        return (f"model {self.name} with weights {self.checkpoint or 'RANDOM'} on {self.device} ({self.dtype}); "
                f"tracking {self.session.tracker.options}")

    def supervise(self) -> Optional[Tuple[str, str]]:
        return None  # nothing to reach

    def link(self) -> LinkStatus:
        return self._link

    def close(self) -> None:
        """Drop the model and free its GPU memory."""
        on_cuda = self.device.startswith("cuda")
        self.session = self.model = None
        gc.collect()
        if on_cuda:
            torch.cuda.empty_cache()
