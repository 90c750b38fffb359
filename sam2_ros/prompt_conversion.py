"""Prompt messages (``Prompt.msg``, clicks) -> keyword arguments of ``StreamingTracker.add_prompt``.

Only what the message format itself can get wrong is checked here (mask encoding, ids, the
shape of the fields). Whether points lie inside the frame, labels match points, etc. is the
tracker's business: it validates every prompt before changing any state and says what is wrong.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

import numpy as np
from geometry_msgs.msg import PointStamped

# Label images are mono16, so ids must fit 16 bits (0 is the background): MAX_OBJECT_ID, re-exported.
from sam2_model.session_types import MAX_OBJECT_ID, PromptSpec  # noqa: F401

from .image_conversion import ImageConversionError, image_to_mask


class PromptConversionError(ValueError):
    """A prompt message that cannot be turned into a tracker prompt."""


@dataclass
class PromptRequest:
    """One prompt for the tracker. ``object_id`` 0 means "a new object, the node assigns its id"."""

    object_id: int
    points: Optional[List[List[float]]] = None
    labels: Optional[List[int]] = None
    box: Optional[List[float]] = None
    mask: Optional[np.ndarray] = None  # H x W bool
    clear_old_points: bool = True

    def tracker_kwargs(self) -> Dict[str, Any]:
        """Keyword arguments for ``StreamingTracker.add_prompt`` (everything except the id)."""
        return {"points": self.points, "labels": self.labels, "box": self.box, "mask": self.mask,
                "clear_old_points": self.clear_old_points}

    def spec(self) -> PromptSpec:
        """The prompt as the tracking session takes it (everything except the id)."""
        return PromptSpec(self.points, self.labels, self.box, self.mask, self.clear_old_points)

    def describe(self) -> str:
        parts = []
        if self.points is not None:
            parts.append(f"{len(self.points)} point(s)")
        if self.box is not None:
            parts.append("a box")
        if self.mask is not None:
            parts.append(f"a {self.mask.shape[1]}x{self.mask.shape[0]} mask")
        return " + ".join(parts) or "nothing"


def check_object_id(object_id: int, allow_new: bool = True) -> int:
    object_id = int(object_id)
    if object_id == 0 and allow_new:
        return 0
    if not 1 <= object_id <= MAX_OBJECT_ID:
        raise PromptConversionError(
            f"object id {object_id} is out of range: ids are 1..{MAX_OBJECT_ID}"
            + (" (0 = assign a new id)" if allow_new else ""))
    return object_id


def prompt_from_msg(msg) -> PromptRequest:
    """``sam2_ros/Prompt`` -> PromptRequest. Raises PromptConversionError."""
    object_id = check_object_id(msg.object_id)
    points = [[float(p.x), float(p.y)] for p in msg.points] or None
    labels = [int(v) for v in msg.labels] or None
    if (points is None) != (labels is None):
        raise PromptConversionError(
            f"{len(msg.points)} points but {len(msg.labels)} labels: give one label (1 fg, 0 bg) per point")
    box = [float(v) for v in msg.box] if msg.use_box else None
    mask = None
    if msg.mask.width or msg.mask.height or len(msg.mask.data):
        try:
            mask = image_to_mask(msg.mask)
        except ImageConversionError as error:
            raise PromptConversionError(f"bad mask prompt: {error}") from None
    if points is None and box is None and mask is None:
        raise PromptConversionError("empty prompt: give points with labels, use_box with a box, or a mask")
    return PromptRequest(object_id, points, labels, box, mask, bool(msg.clear_old_points))


def prompt_from_click(msg: PointStamped, frame_hw: Optional[tuple]) -> PromptRequest:
    """A click (``geometry_msgs/PointStamped`` in image pixels) -> a new object at that pixel.

    rqt_image_view rounds the click to the nearest pixel corner, so a click on the last column
    or row can land exactly on the far edge (x == width): such clicks are pulled onto the last
    pixel. Anything further out is left for the tracker to reject.
    """
    x, y = float(msg.point.x), float(msg.point.y)
    if frame_hw is not None and math.isfinite(x) and math.isfinite(y):
        height, width = frame_hw
        if width <= x <= width + 0.5:
            x = width - 1.0
        if height <= y <= height + 0.5:
            y = height - 1.0
    return PromptRequest(0, points=[[x, y]], labels=[1])
