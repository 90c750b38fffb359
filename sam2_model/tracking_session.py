"""One camera's tracking state and the model-side work of each frame, prompt and discovery.

Used by the tracker node's in-process backend and by each stream of ``sam2_server``, so a node
that tracks in its own process and one that asks a server compute exactly the same thing:
track -> ``frame_summary`` -> ``FrameState``; prompts on the most recent frame; discovery
(automatic mask generator, selection of the new masks, one mask prompt per new object).
Object ids are the caller's (the node's): they survive a server restart.
"""

from __future__ import annotations

import time
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch

from .automatic_mask_generator import AutomaticMaskGenerator
from .discovery import DiscoveryError, DiscoveryOptions, Region, check_region, discover_objects
from .frame_state import FrameState
from .frame_summary import summarize_frame
from .prompts import PromptError
from .session_types import MAX_OBJECT_ID, DiscoveryOutcome, Outputs, PromptSpec, next_free_ids
from .sam2 import FrameFeatures
from .tracker import PreparedFrame, StreamingTracker, TrackingError, TrackingResult, track_encoded_together
from .transforms import as_rgb_tensor

__all__ = ["TrackingSession", "track_together", "Outputs", "PromptSpec", "DiscoveryOutcome"]


class TrackingSession:
    """A ``StreamingTracker`` plus the most recent frame, answering in ``FrameState``s.

    Args:
        tracker: the tracker holding this camera's objects and memories.
        generator: the automatic mask generator for ``discover`` (sharing the tracker's model);
            None: discovery is refused.

    Not thread-safe: the caller serialises calls (the node's tracker lock, the server's loop).
    """

    def __init__(self, tracker: StreamingTracker, generator: Optional[AutomaticMaskGenerator] = None):
        self.tracker = tracker
        self.generator = generator
        self._pixels: Optional[torch.Tensor] = None  # the most recent frame (H x W x 3 uint8): discovery reads it
        self._frames_tracked = 0

    @property
    def obj_ids(self) -> List[int]:
        return self.tracker.obj_ids

    @property
    def frames_tracked(self) -> int:
        """Frames tracked since the session began or was reset."""
        return self._frames_tracked

    @property
    def has_frame(self) -> bool:
        return self._pixels is not None

    @property
    def frame_hw(self) -> Optional[Tuple[int, int]]:
        """(height, width) of the most recent frame; None before the first."""
        return None if self._pixels is None else (int(self._pixels.shape[0]), int(self._pixels.shape[1]))

    # ------------------------------------------------------------------ frames
    def track(self, frame, outputs: Outputs = Outputs()) -> FrameState:
        """Track every object on the next frame (``H x W x 3`` uint8 RGB, numpy or torch);
        raises ``FrameError`` for a frame the tracker cannot take (nothing changes then)."""
        prepared, pixels = self.prepare(frame)
        return self.track_encoded(prepared, pixels, self.tracker.encode([prepared])[0], outputs)

    def prepare(self, frame) -> Tuple[PreparedFrame, torch.Tensor]:
        """First half of ``track``: the frame where the tracker resizes it, and resized for the
        encoder. A server encodes several sessions' prepared frames in one pass, then calls
        ``track_encoded`` on each."""
        # Checked before anything reads it (a list or None has no .to, an object array no tensor):
        # FrameError names the problem. A read-only buffer (a message received without a copy) is
        # copied, as it cannot back a torch tensor safely.
        pixels = as_rgb_tensor(frame)
        # Where the tracker resizes frames (the CPU for Pillow's resize, else the model's device).
        pixels = pixels.to(self.tracker.frame_device)
        return self.tracker.prepare_frame(pixels), pixels

    def track_encoded(self, prepared: PreparedFrame, pixels: torch.Tensor, features: FrameFeatures,
                      outputs: Outputs = Outputs()) -> FrameState:
        """Second half of ``track`` (see ``prepare``)."""
        return self.summarize(track_together([(self, prepared, pixels, features)])[0], outputs)

    def current(self, outputs: Outputs = Outputs()) -> FrameState:
        """Every object on the most recent frame (e.g. after a discovery)."""
        self._require_frame("the current state is that of the most recent frame")
        return self._summarize(self.tracker.current_result(), outputs)

    def summarize(self, result: TrackingResult, outputs: Outputs) -> FrameState:
        """A tracking result of this session's most recent frame -> ``FrameState`` (``track_together``)."""
        return self._summarize(result, outputs)

    def _summarize(self, result: TrackingResult, outputs: Outputs) -> FrameState:
        labels = outputs.labels or outputs.tinted
        return summarize_frame(result, labels=labels, crops=outputs.crops,
                               picture=self._pixels if outputs.tinted else None)

    def _require_frame(self, why: str) -> None:
        if self._pixels is None:
            raise TrackingError(f"no image yet: {why}, and none has been tracked")

    # ------------------------------------------------------------------ prompts
    def add_prompt(self, object_id: int, prompt: PromptSpec, outputs: Outputs = Outputs()) -> FrameState:
        """Prompt object ``object_id`` (> 0; new or tracked) on the most recent frame. Raises
        ``PromptError`` (bad prompt), ``TrackingError`` (no frame yet, too many objects); a
        refused prompt changes nothing."""
        _check_object_id(object_id)
        self._require_frame("prompts apply to the most recent frame")
        result = self.tracker.add_prompt(int(object_id), **prompt.tracker_kwargs())
        return self._summarize(result, outputs)

    def remove_object(self, object_id: int) -> None:
        """Forget one object (``PromptError`` for an id ``add_prompt`` would refuse, such as True
        or 1.0, which equal 1; ``UnknownObjectError`` if it is not tracked)."""
        _check_object_id(object_id)
        self.tracker.remove_object(int(object_id))

    def reset(self) -> None:
        """Forget every object and frame."""
        self.tracker.reset()
        self._pixels = None
        self._frames_tracked = 0

    # ------------------------------------------------------------------ discovery
    def discover(self, options: DiscoveryOptions, region: Optional[Region], max_new: int, first_id: int,
                 outputs: Optional[Outputs] = None) -> DiscoveryOutcome:
        """Run the generator on the most recent frame and add the new objects, with ids from
        ``first_id`` up (skipping ids in use). Everything is checked before anything changes:
        a refusal (``DiscoveryError``, ``TrackingError``) leaves the tracking state as it was.

        Args:
            options: which generated masks are new objects.
            region: ``(x, y, width, height)`` to look in; None or all zeros: the whole frame.
            max_new: most objects to add; 0: up to ``max_objects``.
            first_id: the lowest id a new object may get (the node passes its last id + 1).
            outputs: also summarize the frame after the discovery (``DiscoveryOutcome.frame``).
        """
        self._require_frame("discovery looks at the most recent frame")
        if self.generator is None:
            raise DiscoveryError("discovery is not available: this session has no mask generator")
        if max_new < 0:
            raise DiscoveryError(f"max_new_objects must be >= 0 (0 = up to max_objects), got {max_new}")
        if not 0 < first_id <= MAX_OBJECT_ID:
            raise DiscoveryError(f"first_id must be an object id in 1..{MAX_OBJECT_ID}, got {first_id}")
        options.check()
        region = check_region(region, self.frame_hw)
        tracker = self.tracker
        room = tracker.options.max_objects - len(tracker.obj_ids)
        if room <= 0:
            raise DiscoveryError(f"already tracking the maximum of {tracker.options.max_objects} objects "
                                 "(max_objects): remove some before discovering more")
        started = time.monotonic()
        generated = self.generator.generate(self._pixels)
        tracked = tracker.current_result().masks.cpu().numpy() if tracker.obj_ids else None
        wanted = room if max_new == 0 else min(max_new, room)
        picked = discover_objects(tracked, generated, options, region, limit=wanted + 1)
        full = len(picked) > wanted and wanted == room
        picked = picked[:wanted]
        added = next_free_ids(first_id, tracker.obj_ids, len(picked))
        for object_id, mask in zip(added, picked):
            tracker.add_prompt(object_id, mask=mask.segmentation)
        duration_ms = (time.monotonic() - started) * 1000.0
        frame = self.current(outputs) if outputs is not None else None
        return DiscoveryOutcome(added, len(generated), duration_ms, full, frame)

    def memory_bytes(self) -> int:
        """Bytes the tracker holds between frames (memory bank, outputs, current features)."""
        return self.tracker.memory_bytes()


def _check_object_id(object_id) -> None:
    """The ids a session takes (add_prompt, remove_object): a positive int (numpy's too) up to
    MAX_OBJECT_ID; never a bool or a float, which would equal (and remove) another object's id."""
    if isinstance(object_id, bool) or not isinstance(object_id, (int, np.integer)) \
            or not 0 < object_id <= MAX_OBJECT_ID:
        raise PromptError(f"object id must be a positive int up to {MAX_OBJECT_ID} (ids are written into "
                          f"mono16 label images), got {object_id!r}")


def track_together(items: Sequence[Tuple[TrackingSession, PreparedFrame, torch.Tensor, FrameFeatures]]
                   ) -> List[TrackingResult]:
    """Second half of ``track`` for several sessions at once: ``(session, prepared, pixels,
    features)`` each (``prepare``, then one ``encode`` for all). Every object of every session goes
    through the mask decoder and the memory encoder in one batch (``tracker.track_encoded_together``);
    ``summarize`` each result afterwards (in any order, on any thread)."""
    results = track_encoded_together([(session.tracker, prepared, features)
                                      for session, prepared, _, features in items])
    for session, _, pixels, _ in items:
        session._pixels = pixels
        session._frames_tracked += 1
    return results
