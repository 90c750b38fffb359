"""Pre-processing of camera frames to the model's square input, and masks back to the frame.

SAM 2 squashes any frame to ``image_size x image_size`` (no padding, aspect ratio not kept),
exactly as the official predictors do; masks are stretched back to the frame's size. Points
and boxes are rescaled per axis accordingly.

The two official predictors squash differently, and each of our entry points follows one:

- ``preprocess_video_frame`` (``StreamingTracker``, hence the node, ``sam2-eval`` and training
  clips) is the official ``SAM2VideoPredictor``'s: the uint8 frame is resized by Pillow's bicubic
  filter (``Image.resize((S, S))``), then scaled to [0, 1] and normalised. ``resize_frame`` does
  the resize: by default with Pillow on the CPU; ``pillow_resize``'s torch port gives the same
  bytes on the model's device.
- ``preprocess_image`` (``ImagePredictor``) is the official ``SAM2ImagePredictor``'s
  (torchvision): the frame is scaled to [0, 1] first, then resized in float with antialiased
  bilinear interpolation.
"""

from __future__ import annotations

from enum import Enum
from typing import Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .errors import FrameError  # noqa: F401 - defined torch-free (the ROS node catches it), re-exported
from .pillow_resize import pillow_bicubic_resize

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

FrameLike = Union[np.ndarray, torch.Tensor]


class FrameResize(str, Enum):
    """How ``preprocess_video_frame`` squashes a frame to the model size.

    ``PILLOW`` (the default) and ``PILLOW_PORT`` give the same bytes as the official video
    predictor's ``Image.resize``: the first with Pillow itself on the CPU, the second with a torch
    port on the model's device (6-14x slower than Pillow on one CPU core; meant for a GPU).
    ``BILINEAR`` is the float antialiased bilinear resize of the image predictor, applied to video
    frames: not official for video, it moves mask edges (see docs/node.md).
    """

    PILLOW = "pillow"
    PILLOW_PORT = "pillow_port"
    BILINEAR = "bilinear"


DEFAULT_FRAME_RESIZE = FrameResize.PILLOW


def as_rgb_tensor(frame: FrameLike) -> torch.Tensor:
    """Validate an ``H x W x 3`` uint8 RGB frame (numpy or torch) and return it as a tensor."""
    if isinstance(frame, np.ndarray):
        if frame.dtype != np.uint8:
            raise FrameError(f"frame must be uint8 RGB, got dtype {frame.dtype}")
        # Read-only arrays (e.g. from PIL or ROS message buffers) are copied: torch wants to own writable memory.
        tensor = torch.from_numpy(np.ascontiguousarray(frame) if frame.flags.writeable else frame.copy())
    elif isinstance(frame, torch.Tensor):
        if frame.dtype != torch.uint8:
            raise FrameError(f"frame must be uint8 RGB, got dtype {frame.dtype}")
        tensor = frame
    else:
        raise FrameError(f"frame must be a numpy array or torch tensor, got {type(frame).__name__}")
    if tensor.dim() != 3 or tensor.shape[2] != 3:
        raise FrameError(f"frame must have shape HxWx3 (RGB), got {tuple(tensor.shape)}")
    if tensor.shape[0] < 1 or tensor.shape[1] < 1:
        raise FrameError(f"frame is empty: shape {tuple(tensor.shape)}")
    return tensor


def resize_frame(frame: FrameLike, image_size: int, device: torch.device,
                 method: FrameResize = DEFAULT_FRAME_RESIZE) -> torch.Tensor:
    """Squash an ``H x W x 3`` uint8 RGB frame to ``[1, 3, S, S]`` float in [0, 1] on ``device``.

    ``PILLOW_PORT`` and ``PILLOW`` resize the uint8 frame with Pillow's BICUBIC filter (rounded
    to uint8, as the official video predictor's frame loader does) and then scale it;
    ``BILINEAR`` scales first and resizes in float. A frame already at the model size is only scaled.
    """
    method = FrameResize(method)
    rgb = as_rgb_tensor(frame)
    size = (image_size, image_size)
    if tuple(rgb.shape[:2]) != size:
        if method is FrameResize.PILLOW:
            image = Image.fromarray(rgb.cpu().contiguous().numpy())
            rgb = torch.from_numpy(np.array(image.resize((image_size, image_size), Image.Resampling.BICUBIC)))
        elif method is FrameResize.PILLOW_PORT:
            chw = rgb.to(device=device, non_blocking=True).permute(2, 0, 1)
            return (pillow_bicubic_resize(chw, size).float() / 255.0).unsqueeze(0)
        else:
            image = rgb.to(device=device, non_blocking=True).permute(2, 0, 1).unsqueeze(0).float() / 255.0
            return F.interpolate(image, size=size, mode="bilinear", align_corners=False, antialias=True)
    return rgb.to(device=device, non_blocking=True).permute(2, 0, 1).unsqueeze(0).float() / 255.0


def preprocess_video_frame(frame: FrameLike, image_size: int, device: torch.device, dtype: torch.dtype = torch.float32,
                           resize: FrameResize = DEFAULT_FRAME_RESIZE) -> Tuple[torch.Tensor, Tuple[int, int]]:
    """Frame -> normalised ``[1, 3, S, S]`` model input, and the frame's ``(height, width)``, as the
    official video predictor prepares frames (``sam2.utils.misc.load_video_frames``)."""
    rgb = as_rgb_tensor(frame)
    return _normalise(resize_frame(rgb, image_size, device, resize), dtype), (int(rgb.shape[0]), int(rgb.shape[1]))


def preprocess_image(frame: FrameLike, image_size: int, device: torch.device, dtype: torch.dtype = torch.float32
                     ) -> Tuple[torch.Tensor, Tuple[int, int]]:
    """Frame -> normalised ``[1, 3, S, S]`` model input, and the frame's ``(height, width)``, as the
    official image predictor's torchvision transforms prepare images (``SAM2Transforms``)."""
    rgb = as_rgb_tensor(frame)
    return (_normalise(resize_frame(rgb, image_size, device, FrameResize.BILINEAR), dtype),
            (int(rgb.shape[0]), int(rgb.shape[1])))


def _normalise(image: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """ImageNet mean/std normalisation of a [0, 1] float32 image, in float32 as official, then cast."""
    mean = torch.tensor(IMAGENET_MEAN, device=image.device).reshape(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=image.device).reshape(1, 3, 1, 1)
    return ((image - mean) / std).to(dtype)


def scale_points_to_model(points: torch.Tensor, frame_hw: Tuple[int, int], image_size: int) -> torch.Tensor:
    """Pixel ``(x, y)`` of the frame -> pixel coordinates of the model's square input."""
    height, width = frame_hw
    frame_size = torch.tensor([width, height], dtype=torch.float32, device=points.device)
    return points.float() / frame_size * image_size


def resize_logits(logits: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of ``[B, C, h, w]`` mask logits (official post-processing)."""
    if tuple(logits.shape[-2:]) == tuple(size):
        return logits
    return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)


def mask_to_model_input(mask: torch.Tensor, image_size: int) -> torch.Tensor:
    """A bool ``H x W`` mask prompt -> ``[1, 1, S, S]`` 0/1 float at the model size.

    As in the official predictor: antialiased bilinear resize, then threshold at 0.5.
    """
    resized = mask.float()[None, None]
    if tuple(mask.shape) != (image_size, image_size):
        resized = F.interpolate(resized, size=(image_size, image_size), mode="bilinear", align_corners=False,
                                antialias=True)
        resized = (resized >= 0.5).float()
    return resized
