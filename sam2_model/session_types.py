"""What a tracking session is asked and answers, torch-free: the outputs a frame must produce, a
prompt, a discovery's outcome.

``sam2_model.tracking_session`` (torch) takes and returns them; ``sam2_server`` sends them over
the wire, and a tracker node that talks to a server builds them without importing torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Sequence

import numpy as np

from .frame_state import FrameState

# Object ids are written into mono16 label images: the largest id a node can hand out.
MAX_OBJECT_ID = 0xFFFF


@dataclass(frozen=True)
class Outputs:
    """What a frame must produce; nothing unasked is computed.

    Args:
        crops: each visible object's mask cropped to its box (``ObjectState.mask``).
        labels: the ``H x W`` label map (``FrameState.labels``).
        tinted: the frame tinted with the label map, on the device (``FrameState.tinted``);
            computes the label map too.
    """

    crops: bool = True
    labels: bool = False
    tinted: bool = False


@dataclass
class PromptSpec:
    """A prompt for one object on the most recent frame, in the frame's pixels.

    Args:
        points: ``[[x, y], ...]`` clicks, with ``labels`` (1 foreground, 0 background), one per point.
        labels: see ``points``.
        box: ``[x0, y0, x1, y1]``; may come with points, never with a mask.
        mask: ``H x W`` bool mask of the frame's size, alone.
        clear_old_points: replace this frame's earlier clicks of the object (False: add to them).
    """

    points: Optional[List[List[float]]] = None
    labels: Optional[List[int]] = None
    box: Optional[List[float]] = None
    mask: Optional[np.ndarray] = None
    clear_old_points: bool = True

    def tracker_kwargs(self) -> dict:
        """Keyword arguments of ``StreamingTracker.add_prompt`` (everything except the id)."""
        return {"points": self.points, "labels": self.labels, "box": self.box, "mask": self.mask,
                "clear_old_points": self.clear_old_points}

    def describe(self) -> str:
        parts = []
        if self.points is not None:
            parts.append(f"{len(self.points)} point(s)")
        if self.box is not None:
            parts.append("a box")
        if self.mask is not None:
            parts.append(f"a {self.mask.shape[1]}x{self.mask.shape[0]} mask")
        return " + ".join(parts) or "nothing"


@dataclass
class DiscoveryOutcome:
    """What one discovery did.

    ``frame`` is every object on the most recent frame after the discovery (the new ones
    included), summarized with the ``Outputs`` the discovery was given; None when none were.
    """

    object_ids: List[int]   # the objects added, in the order they were added
    generated: int          # masks the generator found
    duration_ms: float      # generator, selection and the new objects' prompts
    full: bool              # stopped at max_objects with more new masks left
    frame: Optional[FrameState] = field(default=None, repr=False)

    def describe(self) -> str:
        added = f"added object(s) {self.object_ids}" if self.object_ids else "nothing new"
        full = "; stopped at max_objects" if self.full else ""
        return f"{added} from {self.generated} generated mask(s) in {self.duration_ms:.0f} ms{full}"


def next_free_ids(first_id: int, in_use: Sequence[int], count: int) -> List[int]:
    """``count`` ids for new objects: from ``first_id`` up (never below an id in use, so ids keep
    increasing and a removed object's id is not handed out again soon), wrapping at
    ``MAX_OBJECT_ID`` to the lowest free ones."""
    used = set(int(i) for i in in_use)
    chosen = []
    last = first_id - 1
    for _ in range(count):
        candidate = max([last, *used]) + 1
        if candidate > MAX_OBJECT_ID:
            candidate = next((i for i in range(1, MAX_OBJECT_ID + 1) if i not in used), None)
            if candidate is None:
                raise ValueError(f"no free object id left (all {MAX_OBJECT_ID} in use)")
        used.add(candidate)
        chosen.append(candidate)
        last = candidate
    return chosen
