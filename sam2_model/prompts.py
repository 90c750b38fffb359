"""Validation of user prompts (clicks, boxes, masks) with errors that name the problem."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Optional, Sequence, Tuple

import numpy as np
import torch

from .errors import PromptError  # noqa: F401 - raised here, defined torch-free for the ROS node


def validate_points(points: Optional[Sequence[Sequence[float]]], labels: Optional[Sequence[int]],
                    frame_hw: Tuple[int, int]) -> Tuple[torch.Tensor, torch.Tensor]:
    """Points ``[N, 2]`` (x, y pixels) and labels ``[N]`` (1 foreground, 0 background)."""
    if points is None or labels is None:
        raise PromptError("points and labels must be given together")
    try:
        point_array = np.asarray(points, dtype=np.float64)
        label_array = np.asarray(labels)
    except (TypeError, ValueError) as error:
        raise PromptError(f"points must be numbers [[x, y], ...]: {error}") from error
    if point_array.size == 0:
        raise PromptError("points is empty")
    if point_array.ndim != 2 or point_array.shape[1] != 2:
        raise PromptError(f"points must have shape [N, 2] (x, y), got {list(point_array.shape)}")
    if label_array.ndim != 1:  # a bare 1 read as "1 points but 1 labels"
        raise PromptError(f"labels must be a sequence of labels, one per point, got {labels!r}")
    if label_array.ndim != 1 or label_array.shape[0] != point_array.shape[0]:
        raise PromptError(f"{point_array.shape[0]} points but {label_array.size} labels: give one label per point")
    if not np.all(np.isfinite(point_array)):
        raise PromptError("points contain NaN or infinite coordinates")
    if not np.all(np.isin(label_array, (0, 1))):
        raise PromptError(f"labels must be 1 (foreground) or 0 (background), got {sorted(set(label_array.tolist()))}")
    height, width = frame_hw
    outside = [(float(x), float(y)) for x, y in point_array if not (0 <= x < width and 0 <= y < height)]
    if outside:
        raise PromptError(f"point(s) {outside[:3]} outside the {width}x{height} frame")
    return torch.from_numpy(point_array).float(), torch.from_numpy(label_array.astype(np.int32))


def validate_box(box: Sequence[float], frame_hw: Tuple[int, int]) -> torch.Tensor:
    """A box ``[x0, y0, x1, y1]`` in pixels, inside the frame, with x0 <= x1 and y0 <= y1."""
    # A string iterates into digits ("1234" was the box [1, 2, 3, 4]), a mapping into its keys.
    if isinstance(box, (str, bytes, Mapping)):
        raise PromptError(f"box must be 4 numbers [x0, y0, x1, y1], got a {type(box).__name__}: {box!r}")
    try:
        values = [float(v) for v in box]
    except (TypeError, ValueError) as error:
        raise PromptError(f"box must be 4 numbers [x0, y0, x1, y1]: {error}") from error
    if len(values) != 4:
        raise PromptError(f"box must be 4 numbers [x0, y0, x1, y1], got {len(values)}")
    if not all(math.isfinite(v) for v in values):
        raise PromptError("box contains NaN or infinite coordinates")
    x0, y0, x1, y1 = values
    height, width = frame_hw
    if x1 < x0 or y1 < y0:
        raise PromptError(f"box {values} has x1 < x0 or y1 < y0 (expected [x0, y0, x1, y1])")
    if x0 < 0 or y0 < 0 or x1 > width or y1 > height:
        raise PromptError(f"box {values} lies outside the {width}x{height} frame")
    return torch.tensor(values, dtype=torch.float32)


def validate_mask(mask, frame_hw: Tuple[int, int]) -> torch.Tensor:
    """A mask prompt: bool (or 0/1) ``H x W`` at the frame's size -> bool tensor."""
    if not isinstance(mask, torch.Tensor):
        mask = np.asarray(mask)
        # bool, integer or float only: torch cannot take object or string arrays (a bare TypeError).
        if mask.dtype.kind not in "biuf":
            raise PromptError(f"mask must be a bool or numeric HxW array, got dtype {mask.dtype}")
    tensor = torch.as_tensor(mask)
    if tensor.dim() != 2:
        raise PromptError(f"mask must be a 2-D HxW array, got shape {list(tensor.shape)}")
    if tuple(tensor.shape) != tuple(frame_hw):
        raise PromptError(f"mask is {tensor.shape[1]}x{tensor.shape[0]} but the frame is "
                          f"{frame_hw[1]}x{frame_hw[0]}: masks must have the frame's size")
    if tensor.dtype.is_floating_point and not torch.isfinite(tensor).all():
        raise PromptError("mask contains NaN or infinite values")
    return tensor != 0
