"""Rate and latency statistics of the tracker node, reported as a diagnostic_msgs/DiagnosticArray.

All statistics are over a sliding window (``window_s``), so the report says how the node is
doing now, not since start-up. Memory is the process's resident set plus what the tracker and
the CUDA allocator hold: enough to see a leak or a full GPU from ``rqt_runtime_monitor``.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Deque, List, Optional, Tuple

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

# A node is "falling behind" when it drops more than this share of the frames it receives.
BEHIND_DROP_RATIO = 0.05
# With no image for this long while active, the input is probably not remapped to a camera.
NO_INPUT_WARN_S = 5.0


class EventWindow:
    """Times (and optional values) of recent events, for rates and percentiles over a window."""

    def __init__(self, window_s: float, max_events: int = 10000):
        self.window_s = window_s
        self._events: Deque[Tuple[float, float]] = deque(maxlen=max_events)  # bounded: memory stays flat
        self._lock = threading.Lock()

    def add(self, value: float = 0.0, now: Optional[float] = None) -> None:
        with self._lock:
            self._events.append((time.monotonic() if now is None else now, value))

    def _recent(self, now: float) -> List[Tuple[float, float]]:
        cutoff = now - self.window_s
        with self._lock:
            while self._events and self._events[0][0] < cutoff:
                self._events.popleft()
            return list(self._events)

    def count(self, now: Optional[float] = None) -> int:
        return len(self._recent(time.monotonic() if now is None else now))

    def rate(self, now: Optional[float] = None) -> float:
        """Events per second over the window."""
        return self.count(now) / self.window_s

    def percentiles(self, qs: Tuple[float, ...], now: Optional[float] = None) -> Optional[Tuple[float, ...]]:
        values = [v for _, v in self._recent(time.monotonic() if now is None else now)]
        if not values:
            return None
        return tuple(float(v) for v in np.percentile(np.asarray(values), qs))

    def last_time(self) -> Optional[float]:
        with self._lock:
            return self._events[-1][0] if self._events else None


@dataclass
class Snapshot:
    """What one diagnostics message reports."""

    state: str
    device: str
    input_topic: str
    input_hz: float
    processed_hz: float
    dropped_in_window: int
    received_total: int
    processed_total: int
    dropped_total: int
    lost_in_window: int
    lost_total: int
    rejected_frames_total: int
    rejected_prompts_total: int
    latency_p50_ms: Optional[float]
    latency_p99_ms: Optional[float]
    num_objects: int
    tracker_memory_bytes: int
    process_rss_bytes: Optional[int]
    cuda_allocated_bytes: Optional[int]
    seconds_since_input: Optional[float]
    discovered_total: int = 0                      # objects added by discovery (service and worker)
    seconds_since_discovery: Optional[float] = None  # None: no discovery yet
    last_discovery_ms: Optional[float] = None      # how long the last discovery took (generator + prompts)
    # Model in a sam2-server (parameter `server`): why it cannot be reached now (None: it answers),
    # and how often the node re-created its stream after the server came back.
    server: str = ""                   # its address; "" = the model runs in the node's process
    link_problem: Optional[str] = None
    reconnects: int = 0


class TrackerStatistics:
    """Thread-safe counters fed by the subscription (received) and the worker (processed)."""

    def __init__(self, window_s: float = 5.0):
        self.window_s = window_s
        self.received = EventWindow(window_s)
        self.processed = EventWindow(window_s)   # values: latency in ms
        self.dropped = EventWindow(window_s)
        self.lost = EventWindow(window_s)        # values: frames lost per DDS event
        self._lock = threading.Lock()
        self.received_total = 0
        self.processed_total = 0
        self.dropped_total = 0
        self.lost_total = 0
        self.rejected_frames_total = 0
        self.rejected_prompts_total = 0
        self.discovered_total = 0
        self.last_discovery_at: Optional[float] = None   # time.monotonic()
        self.last_discovery_ms: Optional[float] = None

    def on_received(self, replaced_older: bool) -> None:
        self.received.add()
        with self._lock:
            self.received_total += 1
            if replaced_older:
                self.dropped_total += 1
        if replaced_older:
            self.dropped.add()

    def on_processed(self, latency_ms: float) -> None:
        self.processed.add(latency_ms)
        with self._lock:
            self.processed_total += 1

    def on_lost(self, count: int) -> None:
        """Frames DDS lost before they reached the node (the subscription's message-lost event)."""
        for _ in range(max(count, 0)):
            self.lost.add()
        with self._lock:
            self.lost_total += max(count, 0)

    def on_unprocessed(self) -> None:
        """A frame the model could not take (its server is away): counted as dropped."""
        self.dropped.add()
        with self._lock:
            self.dropped_total += 1

    def on_rejected_frame(self) -> None:
        with self._lock:
            self.rejected_frames_total += 1

    def on_rejected_prompt(self) -> None:
        with self._lock:
            self.rejected_prompts_total += 1

    def on_discovery(self, added: int, duration_ms: float) -> None:
        """A discovery ran (``added`` new objects, possibly none)."""
        with self._lock:
            self.discovered_total += added
            self.last_discovery_at = time.monotonic()
            self.last_discovery_ms = duration_ms


def process_rss_bytes() -> Optional[int]:
    """Current resident memory of this process (Linux /proc), None elsewhere."""
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _mib(value: Optional[int]) -> str:
    return "n/a" if value is None else f"{value / 2**20:.1f}"


def _ms(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def assess(snapshot: Snapshot, window_s: float) -> Tuple[bytes, str]:
    """(level, message): WARN when the node falls behind its input or gets no input while active.

    Every problem that holds is named: a loaded node often loses images in transport *and* drops
    frames it received, and an operator needs to see both, not whichever was checked first.
    """
    if snapshot.link_problem:  # the model's server is away: nothing gets tracked, whatever the state
        return DiagnosticStatus.ERROR, snapshot.link_problem
    if snapshot.state != "active":
        return DiagnosticStatus.OK, f"{snapshot.state}: not processing"
    if snapshot.seconds_since_input is None or snapshot.seconds_since_input > NO_INPUT_WARN_S:
        return DiagnosticStatus.WARN, f"no images on {snapshot.input_topic} (is it remapped to the camera?)"
    problems = []
    received = snapshot.input_hz * window_s
    if received > 0 and snapshot.dropped_in_window / received > BEHIND_DROP_RATIO:
        problems.append(f"falling behind: processing {snapshot.processed_hz:.1f} Hz of "
                        f"{snapshot.input_hz:.1f} Hz input, {snapshot.dropped_in_window} frames "
                        f"dropped in {window_s:.0f} s")
    if snapshot.lost_in_window > 0:
        problems.append(f"{snapshot.lost_in_window} images lost in transport in {window_s:.0f} s "
                        "(large images over best effort? see qos_reliability)")
    if problems:
        return DiagnosticStatus.WARN, "; ".join(problems)
    return DiagnosticStatus.OK, f"tracking {snapshot.num_objects} object(s) at {snapshot.processed_hz:.1f} Hz"


def diagnostic_array(snapshot: Snapshot, name: str, stamp, window_s: float) -> DiagnosticArray:
    level, message = assess(snapshot, window_s)
    values = [
        ("state", snapshot.state),
        ("device", snapshot.device),
        ("input topic", snapshot.input_topic),
        ("input rate (Hz)", f"{snapshot.input_hz:.2f}"),
        ("processed rate (Hz)", f"{snapshot.processed_hz:.2f}"),
        (f"dropped frames (last {window_s:.0f} s)", str(snapshot.dropped_in_window)),
        ("received frames (total)", str(snapshot.received_total)),
        ("processed frames (total)", str(snapshot.processed_total)),
        ("dropped frames (total)", str(snapshot.dropped_total)),
        (f"lost in transport (last {window_s:.0f} s)", str(snapshot.lost_in_window)),
        ("lost in transport (total)", str(snapshot.lost_total)),
        ("rejected frames (total)", str(snapshot.rejected_frames_total)),
        ("rejected prompts (total)", str(snapshot.rejected_prompts_total)),
        ("latency p50 (ms)", _ms(snapshot.latency_p50_ms)),
        ("latency p99 (ms)", _ms(snapshot.latency_p99_ms)),
        ("objects", str(snapshot.num_objects)),
        ("tracker memory (MiB)", _mib(snapshot.tracker_memory_bytes)),
        ("process memory (MiB)", _mib(snapshot.process_rss_bytes)),
        ("cuda allocated (MiB)", _mib(snapshot.cuda_allocated_bytes)),
        ("discovered objects (total)", str(snapshot.discovered_total)),
        ("last discovery (s ago)", "n/a" if snapshot.seconds_since_discovery is None
         else f"{snapshot.seconds_since_discovery:.1f}"),
        ("last discovery duration (ms)", _ms(snapshot.last_discovery_ms)),
    ]
    if snapshot.server:
        values += [("server", snapshot.server), ("server link", snapshot.link_problem or "connected"),
                   ("server reconnects (total)", str(snapshot.reconnects))]
    status = DiagnosticStatus(level=level, name=name, message=message, hardware_id=snapshot.device,
                              values=[KeyValue(key=k, value=v) for k, v in values])
    array = DiagnosticArray(status=[status])
    array.header.stamp = stamp
    return array


def diagnostic_values(array: DiagnosticArray) -> dict:
    """key -> value of the first status (a helper for tests and tools)."""
    return {kv.key: kv.value for kv in array.status[0].values}
