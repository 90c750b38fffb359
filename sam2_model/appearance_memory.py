"""The robust policy's appearance memory of one object (issue 25, after DAM4SAM's split memory);
``RobustObjectState`` holds one, the tracker fills it after each frame and reads it when it
gathers the memories of a hidden object.

SAM 2 attends to the prompted frame and to the few most recent frames. After an object has been
hidden for longer than that window, every recent memory says "absent": the model then looks for
the object with nothing but the prompt to tell it what the object looked like lately. The
appearance memory keeps a few memories of frames where the object was confidently visible,
apart from the recent window (appearance evidence beside the absence evidence), taken at
intervals, never from a frame judged absent. Bounded: at most ``slots`` entries, whose tensors
are those the frame's recent memory holds (no copy while both are kept).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, List

if TYPE_CHECKING:
    import torch

    from .memory_bank import FrameMemory


def attended_places(num_maskmem: int) -> int:
    """How many appearance memories a hidden object attends to: the recent window
    (``num_maskmem - 1`` frames) less its newest frame, the absence evidence the model needs. More
    would only be stored, never read."""
    return max(num_maskmem - 2, 0)


@dataclass
class AppearanceMemory:
    """Up to ``slots`` memories of confidently visible frames, at least ``interval`` frames apart.

    Args:
        slots: how many memories are kept (the oldest goes first).
        interval: least frames between two memories taken (counted from the prompt too).
    """

    slots: int
    interval: int
    entries: "OrderedDict[int, FrameMemory]" = field(default_factory=OrderedDict)
    frames_since: int = 0  # frames since the last memory taken (or since the prompt)

    def offer(self, memory: "FrameMemory", confident: bool) -> bool:
        """One tracked frame's memory; taken when the frame is ``confident`` (accepted as visible,
        of good quality) and ``interval`` frames have passed. Whether it was taken."""
        self.frames_since += 1
        if not confident or self.frames_since < self.interval:
            return False
        self.entries[memory.frame_index] = memory
        while len(self.entries) > self.slots:
            self.entries.popitem(last=False)
        self.frames_since = 0
        return True

    def clear(self) -> None:
        """A prompt defines the object again: looks from before it are no evidence any more."""
        self.entries.clear()
        self.frames_since = 0

    def newest_first(self) -> "List[FrameMemory]":
        return list(reversed(self.entries.values()))

    def tensors(self) -> "List[torch.Tensor]":
        out = []
        for memory in self.entries.values():
            out.append(memory.obj_ptr)
            if memory.features is not None:
                out.append(memory.features)
        return out
