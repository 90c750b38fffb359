"""The latest-frame-wins handoff between the image subscription and the inference worker.

A camera publishes faster than SAM 2 can track on most hardware. Queueing frames would make
latency grow without bound, so the slot holds at most one waiting frame: a newer frame
replaces an older one that has not been taken yet, and the replaced frame counts as dropped.
A frame therefore waits at most one processing period, and latency stays below two.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Generic, Optional, TypeVar

T = TypeVar("T")


@dataclass
class SlotCounts:
    received: int = 0   # frames put into the slot
    taken: int = 0      # frames handed to the worker
    dropped: int = 0    # frames replaced before the worker took them


@dataclass
class PendingFrame(Generic[T]):
    """A waiting frame and when it arrived (``time.monotonic()``), for latency."""

    item: T
    received_at: float


class LatestFrameSlot(Generic[T]):
    """A one-place mailbox: ``put`` never blocks, ``take`` waits for the newest item."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._pending: Optional[PendingFrame[T]] = None
        self._closed = False
        self._counts = SlotCounts()

    def put(self, item: T, received_at: Optional[float] = None) -> bool:
        """Offer a frame; returns True if it replaced (dropped) an older waiting one."""
        pending = PendingFrame(item, time.monotonic() if received_at is None else received_at)
        with self._condition:
            replaced = self._pending is not None
            self._pending = pending
            self._counts.received += 1
            if replaced:
                self._counts.dropped += 1
            self._condition.notify()
            return replaced

    def take(self, timeout: Optional[float] = None) -> Optional[PendingFrame[T]]:
        """The newest waiting frame, waiting up to ``timeout`` s; None on timeout or when closed."""
        with self._condition:
            if not self._condition.wait_for(lambda: self._pending is not None or self._closed, timeout):
                return None
            if self._closed:
                return None
            pending, self._pending = self._pending, None
            self._counts.taken += 1
            return pending

    def clear(self) -> bool:
        """Forget a waiting frame without counting it as dropped; True if there was one."""
        with self._condition:
            had, self._pending = self._pending is not None, None
            return had

    def close(self) -> None:
        """Wake any waiting ``take`` (which returns None) and refuse to hand out more frames."""
        with self._condition:
            self._closed = True
            self._pending = None
            self._condition.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    def counts(self) -> SlotCounts:
        with self._condition:
            return SlotCounts(self._counts.received, self._counts.taken, self._counts.dropped)

    def waiting(self) -> bool:
        with self._condition:
            return self._pending is not None
