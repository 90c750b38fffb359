"""Several tracker variants scored on the same frames in one run (``sam2-eval --variant``).

Each frame's image features are computed once and shared by every variant's tracker:
``StreamingTracker.track`` is exactly ``track_encoded(prepared, encode([prepared])[0])``, so a
variant tracked from cached features gives the same masks as on its own, and the encoder (most
of a frame's time) runs once for all variants. The cache holds one sequence's frames at a time.
"""

from __future__ import annotations

import hashlib
from typing import Any


class FeatureCache:
    """Prepared frames and their image features, keyed by the frame's pixels."""

    def __init__(self, max_frames: int = 4096) -> None:
        self.max_frames = max_frames
        self._entries: dict[tuple, tuple[Any, Any]] = {}
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(image) -> tuple:
        return (tuple(image.shape), str(image.dtype), hashlib.blake2b(image.tobytes(), digest_size=16).digest())

    def encoded(self, tracker, image) -> tuple[Any, Any]:
        """``(prepared, features)`` of ``image`` for ``tracker`` (trackers sharing one ``encode_key``)."""
        key = (tracker.encode_key, *self.key(image))
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            if len(self._entries) >= self.max_frames:
                self._entries.clear()  # a new sequence: the old one's frames never come back
            prepared = tracker.prepare_frame(image)
            entry = (prepared, tracker.encode([prepared])[0])
            self._entries[key] = entry
        else:
            self.hits += 1
        return entry

    def clear(self) -> None:
        self._entries.clear()


class CachedTracker:
    """A ``StreamingTracker`` whose frames' image features come from a shared ``FeatureCache``."""

    def __init__(self, tracker, cache: FeatureCache) -> None:
        self.tracker = tracker
        self.cache = cache

    @property
    def options(self):
        return self.tracker.options

    def track(self, image):
        prepared, features = self.cache.encoded(self.tracker, image)
        return self.tracker.track_encoded(prepared, features)

    def add_prompt(self, obj_id, points=None, labels=None, box=None, mask=None, clear_old_points=True):
        return self.tracker.add_prompt(obj_id, points=points, labels=labels, box=box, mask=mask,
                                       clear_old_points=clear_old_points)


def variant_folder_name(policy: str) -> str:
    """``robust:kalman+motion_gate`` -> ``robust_kalman+motion_gate`` (a folder per variant)."""
    return policy.replace(":", "_").replace("/", "_")
