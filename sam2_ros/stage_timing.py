"""Where the worker's time per frame goes: milliseconds per stage of recent frames, kept by the
tracker node and read by the node benchmark (``python -m sam2_ros.benchmark``).

Wall-clock laps. Since the node's model sits behind a backend (issue 22), ``track`` is the
backend's whole answer: tracking and the frame's summary (masks, boxes, crops, label map), whose
host copies synchronise the GPU; there is no separate ``summarize`` stage any more (reports made
before list one)."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Deque, Dict, List

# Frames remembered per stage: enough for a benchmark run's percentiles, bounded for a long run.
KEEP_FRAMES = 2000


@dataclass
class StageTimes:
    """Recent per-stage durations in milliseconds (thread-safe)."""

    samples: Dict[str, Deque[float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, stage: str, milliseconds: float) -> None:
        with self._lock:
            self.samples.setdefault(stage, deque(maxlen=KEEP_FRAMES)).append(milliseconds)

    def snapshot(self) -> Dict[str, List[float]]:
        with self._lock:
            return {stage: list(values) for stage, values in self.samples.items()}

    def clear(self) -> None:
        with self._lock:
            self.samples.clear()


class StageClock:
    """Laps of one frame: ``lap(stage)`` records the time since the previous lap under ``stage``."""

    def __init__(self, times: StageTimes):
        self._times = times
        self._last = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self._times.add(stage, (now - self._last) * 1000.0)
        self._last = now
