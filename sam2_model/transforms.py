"""Pre-processing of camera frames to the model's square input, and masks back to the frame.

SAM 2 squashes any frame to ``image_size x image_size`` (no padding, aspect ratio not kept),
exactly as the official predictors do; masks are stretched back to the frame's size. Points
and boxes are rescaled per axis accordingly.
"""

from __future__ import annotations

from typing import Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

FrameLike = Union[np.ndarray, torch.Tensor]


class FrameError(ValueError):
    """A frame that is not an HxWx3 uint8 RGB image."""


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


def preprocess(frame: FrameLike, image_size: int, device: torch.device, dtype: torch.dtype = torch.float32
               ) -> Tuple[torch.Tensor, Tuple[int, int]]:
    """Frame -> normalised ``[1, 3, S, S]`` model input, and the frame's ``(height, width)``."""
    rgb = as_rgb_tensor(frame)
    height, width = int(rgb.shape[0]), int(rgb.shape[1])
    image = rgb.to(device=device, non_blocking=True).permute(2, 0, 1).unsqueeze(0).float() / 255.0
    if (height, width) != (image_size, image_size):
        image = F.interpolate(image, size=(image_size, image_size), mode="bilinear", align_corners=False,
                              antialias=True)
    mean = torch.tensor(IMAGENET_MEAN, device=device).reshape(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).reshape(1, 3, 1, 1)
    return ((image - mean) / std).to(dtype), (height, width)


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
