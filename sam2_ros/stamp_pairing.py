"""Pairs each colour frame with the depth image taken with it, by stamp; used by the tracker node.

Depth messages arrive on their own subscription (any thread) and wait here, undecoded, in a small
bounded buffer; the node's worker asks for the partner of the colour frame it is tracking: the
depth with the same stamp, else the nearest one within ``max_age_s``. Plain Python (stamps as
integer nanoseconds), no ROS, so it is tested without a graph.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Any, Deque, Optional, Tuple

NS_PER_S = 1_000_000_000
# Depth images kept waiting for their colour partner: at 30 Hz a second of depth, more than any
# tracker delay worth pairing across.
BUFFER_LENGTH = 30
# A colour frame taken by the worker before its depth partner arrived (the two topics travel
# separately) waits up to this long for it, but only while the depth stream is in step (its
# newest stamp less than IN_STEP_S behind the colour frame's): a depth stream that stopped falls
# behind within IN_STEP_S, and a badly skewed one is behind from the start, so neither slows
# tracking down for long.
PARTNER_WAIT_S = 0.1
IN_STEP_S = 1.0


@dataclass
class Pairing:
    """The depth message paired with a colour frame, or why there is none."""

    item: Optional[Any]   # the depth message; None when unpaired
    offset_s: float       # depth stamp - colour stamp (0 when exact); nan when there is no depth at all
    reason: str = ""      # why unpaired ("" when paired)


class StampPairing:
    """A bounded buffer of recent stamped items (depth images), searched by nearest stamp."""

    def __init__(self, max_age_s: float, length: int = BUFFER_LENGTH):
        """Args:
            max_age_s: the farthest an item's stamp may be from the asked stamp (seconds).
            length: items kept (the oldest goes first).
        """
        self.max_age_ns = int(round(max_age_s * NS_PER_S))
        self._items: Deque[Tuple[int, Any]] = deque(maxlen=length)
        self._changed = threading.Condition()

    def put(self, stamp_ns: int, item: Any) -> None:
        with self._changed:
            self._items.append((int(stamp_ns), item))
            self._changed.notify_all()

    def clear(self) -> None:
        with self._changed:
            self._items.clear()

    def _partner_may_come(self, stamp_ns: int) -> bool:
        if not self._items:
            return False
        newest = max(s for s, _ in self._items)
        return stamp_ns - IN_STEP_S * NS_PER_S <= newest < stamp_ns

    def pair(self, stamp_ns: int, wait_s: float = PARTNER_WAIT_S) -> Pairing:
        """The item with this stamp, else the nearest within max_age (ties: the earlier one).
        Waits up to ``wait_s`` for a later item while a stream in step has none yet (PARTNER_WAIT_S)."""
        stamp_ns = int(stamp_ns)
        with self._changed:
            self._changed.wait_for(lambda: not self._partner_may_come(stamp_ns), wait_s)
            items = list(self._items)
        if not items:
            return Pairing(None, float("nan"), "no depth image received yet")
        offset_ns, item = min(((s - stamp_ns, i) for s, i in items), key=lambda p: (abs(p[0]), p[0]))
        offset_s = offset_ns / NS_PER_S
        if abs(offset_ns) > self.max_age_ns:
            return Pairing(None, offset_s, f"the nearest depth image is {offset_s * 1000:+.1f} ms from the colour "
                                           f"frame, beyond depth_max_age {self.max_age_ns / 1e6:.1f} ms")
        return Pairing(item, offset_s)


def stamp_ns(stamp) -> int:
    """builtin_interfaces/Time -> integer nanoseconds."""
    return int(stamp.sec) * NS_PER_S + int(stamp.nanosec)
