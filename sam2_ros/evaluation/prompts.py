"""Prompts derived from a ground-truth mask: the mask itself, its box, or one click.

The click is the interior point farthest from the mask boundary (the usual
"centre click" of interactive-segmentation benchmarks), found with an exact
Euclidean distance transform (``sam2_model.mask_geometry``, shared with the demo).
The image border counts as boundary, so an object cut by the frame edge is not
clicked on the edge.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

import numpy as np

from sam2_model.mask_geometry import box_from_mask, interior_point, squared_distance_to_background

from .sequence import object_ids_in

# The mask geometry lives in sam2_model; its names stay importable from here.
__all__ = ["Prompt", "PromptKind", "box_from_mask", "interior_point", "prompt_from_mask",
           "prompts_for_new_objects", "squared_distance_to_background"]


class PromptKind(str, enum.Enum):
    MASK = "mask"
    BOX = "box"
    CLICK = "click"
    AUTO = "auto"  # no ground-truth prompt: the runner discovers objects by itself (runner.py)


@dataclass(frozen=True)
class Prompt:
    """One object's first prompt, in frame pixels."""

    obj_id: int
    kind: PromptKind
    mask: np.ndarray | None = None  # HxW bool, for MASK
    box: tuple[int, int, int, int] | None = None  # x0, y0, x1, y1, for BOX
    point: tuple[int, int] | None = None  # x, y of a foreground click, for CLICK

    def tracker_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``StreamingTracker.add_prompt`` (besides obj_id)."""
        if self.kind is PromptKind.MASK:
            return {"mask": self.mask}
        if self.kind is PromptKind.BOX:
            return {"box": np.asarray(self.box, dtype=np.float32)}
        return {
            "points": np.asarray([self.point], dtype=np.float32),
            "labels": np.asarray([1], dtype=np.int32),
        }


def prompt_from_mask(obj_id: int, mask: np.ndarray, kind: PromptKind) -> Prompt:
    """The prompt of the given kind for one object's ground-truth mask."""
    mask = np.asarray(mask, dtype=bool)
    kind = PromptKind(kind)
    if kind is PromptKind.AUTO:
        raise ValueError("--prompt auto gives no ground-truth prompts: objects are discovered, not prompted")
    if kind is PromptKind.MASK:
        return Prompt(obj_id, kind, mask=mask)
    if kind is PromptKind.BOX:
        return Prompt(obj_id, kind, box=box_from_mask(mask))
    return Prompt(obj_id, kind, point=interior_point(mask))


def prompts_for_new_objects(
    labels: np.ndarray, prompted: set[int], kind: PromptKind, void_label: int | None
) -> list[Prompt]:
    """Prompts for objects that appear in this ground-truth frame and were never prompted, by id."""
    return [
        prompt_from_mask(obj_id, labels == obj_id, kind)
        for obj_id in object_ids_in(labels, void_label)
        if obj_id not in prompted
    ]
