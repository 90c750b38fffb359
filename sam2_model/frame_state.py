"""What the tracker says about one frame, on the host: plain numpy dataclasses, no torch.

``sam2_model.frame_summary`` fills them from a tracking result on the model's device; the ROS
node turns them into messages, and a tracker running in another process (``sam2_server``) sends
them over the wire. Keeping them torch-free lets a node that talks to a server run without torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np

Box = Tuple[int, int, int, int]  # x, y, width, height in pixels
NO_BOX: Box = (0, 0, 0, 0)
# Label maps are uint8 while every id fits a byte (mono8), else int32 (written as mono16).
MAX_BYTE_ID = 0xFF


@dataclass
class ObjectState:
    """One object on one frame, in the frame's pixels (host, numpy)."""

    object_id: int
    visible: bool
    visibility: float            # sigmoid of the object-score logit
    iou_score: float             # the decoder's predicted IoU of the mask
    bbox: Box                    # tight box of the mask; zeros when not visible or empty
    area: int                    # mask pixels
    mask: Optional[np.ndarray]   # bbox-sized bool crop of the mask (0 x 0 when empty); None when not asked for
    # memory_policy robust: while not visible, the box its motion filter predicts (x, y, width,
    # height in pixels); None when visible or when nothing is predicted.
    predicted_bbox: Optional[Box] = None

    @property
    def box_predicted(self) -> bool:
        return self.predicted_bbox is not None

    @property
    def occlusion(self) -> float:
        return 1.0 - self.visibility

    def frame_mask(self, frame_hw: Tuple[int, int]) -> np.ndarray:
        """The full-frame ``H x W`` bool mask."""
        if self.mask is None:
            raise ValueError(f"object {self.object_id}: its mask was not computed (crops=False)")
        return paste_mask(self.mask, self.bbox, frame_hw)


@dataclass
class FrameState:
    """Every object on one frame plus, when asked for, the per-pixel winner (the label map)."""

    frame_index: int
    height: int
    width: int
    objects: List[ObjectState]
    labels: Optional[np.ndarray]  # H x W object ids (uint8 or int32), 0 = background; None when not asked for
    # The picture with the label map tinted in the objects' colours (visualization.tint_labels_tensor,
    # on the device), H x W x 3 uint8; None when not asked for.
    tinted: Optional[np.ndarray] = None


def paste_mask(crop: np.ndarray, bbox: Box, frame_hw: Tuple[int, int]) -> np.ndarray:
    """A mask cropped to its box -> the full-frame ``H x W`` bool mask (False outside the box)."""
    height, width = (int(v) for v in frame_hw)
    x, y, w, h = (int(v) for v in bbox)
    crop = np.asarray(crop)
    if crop.shape != (h, w):
        raise ValueError(f"mask crop of shape {crop.shape} does not match its box {w}x{h} (width x height)")
    if x < 0 or y < 0 or x + w > width or y + h > height:
        raise ValueError(f"box x={x} y={y} {w}x{h} does not fit in the {width}x{height} frame")
    full = np.zeros((height, width), bool)
    full[y:y + h, x:x + w] = crop != 0
    return full
