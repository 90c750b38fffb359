"""The server's streams and their queued requests: who is waiting, what runs next (no model code).

The I/O thread puts requests in (``submit``) and frees silent streams (``expire``); the model
thread takes a round of work (``take_round``). Per stream, requests run in arrival order, except
that a frame still waiting is replaced by a newer one of the same stream (latest frame wins).
Each round takes the head request of every stream that has one, streams in round-robin order
from where the previous round stopped, frames up to ``max_batch``: no stream waits behind
another's backlog, and frames waiting at the same time are computed together.

Gathering: a client sends its next frame only after the answer to its last one, so the streams of
one round answer together and their next frames arrive a few milliseconds apart. A round taken at
the first arrival would hold one frame, the next round the rest, and the batches would stay split
(measured: 47 rounds of one frame, 38 of two and 3 of three for three streams). So a round with
frames waits up to ``gather_s`` for the streams whose frame ran in an earlier round (their next
one is expected); a stream that misses the wait is not waited for again until its next frame runs
(a slow camera costs at most ``gather_s`` per frame of its own, not on every round).

Holding (threaded execution): a frame taken with ``hold=True`` keeps its stream out of every later
round until ``release``: the frame runs on a lane while the model thread takes further work, and
the stream's next request (a frame, or a prompt that must see that frame's result) waits for it.
Lanes then start each stream's next frame as soon as it arrives and a lane is free, without the
rounds' barrier (a round's last frame running alone on one core) or gathering.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Deque, Dict, List, Optional, Tuple

from .protocol import Message


# Requests one stream may have waiting (a node has one at a time, plus a heartbeat on the side).
MAX_QUEUED = 16


class QueueFull(RuntimeError):
    """A stream has too many requests waiting."""


@dataclass
class Request:
    """A decoded request and where its reply goes."""

    identity: bytes          # the client socket's routing id
    message: Message
    received_at: float       # time.monotonic() on arrival

    @property
    def op(self) -> str:
        return self.message.header["op"]

    @property
    def request_id(self) -> Any:
        return self.message.header.get("id")


@dataclass
class Stream:
    """One client's tracking state on the server."""

    name: str
    epoch: int                       # unique per creation: a client seeing another one must re-seed
    session: Any                     # sam2_model.tracking_session.TrackingSession
    options: Dict[str, Any]
    last_seen: float                 # time.monotonic() of its last request or heartbeat
    queue: Deque[Request] = field(default_factory=deque)
    frames_tracked: int = 0
    frames_superseded: int = 0
    # Its last frame ran in a round and no wait for the next has run out: the next round gathers for it.
    expected: bool = False
    # A frame of it was taken with hold=True and is not released yet: its next request waits.
    held: bool = False


@dataclass
class Round:
    """One round of work: at most one request per stream."""

    frames: List[Tuple[Stream, Request]]   # track requests, encoded together where possible
    others: List[Tuple[Stream, Request]]   # prompts, removals, resets, discoveries


class StreamTable:
    """The streams, their queues and the round-robin position; thread-safe.

    Args:
        max_streams: most streams at once (``open`` beyond it is refused).
        timeout_s: a stream with no request or heartbeat for this long, and nothing queued, is freed.
        max_batch: most frames taken in one round.
        gather_s: longest a round with frames waits for the expected frames of other streams.
    """

    def __init__(self, max_streams: int, timeout_s: float, max_batch: int, gather_s: float = 0.0):
        self.max_streams, self.timeout_s, self.max_batch = max_streams, timeout_s, max_batch
        self.gather_s = gather_s
        self._streams: Dict[str, Stream] = {}
        self._order: List[str] = []      # round-robin order (creation order)
        self._next = 0                   # where the next round starts in _order
        self._changed = threading.Condition()
        self._closed = False
        self._woken = False              # wake() since the last take_round: do not wait

    # ------------------------------------------------------------------ registry (I/O thread)
    def __len__(self) -> int:
        with self._changed:
            return len(self._streams)

    def names(self) -> List[str]:
        with self._changed:
            return list(self._order)

    def get(self, name: str) -> Optional[Stream]:
        with self._changed:
            return self._streams.get(name)

    def touch(self, name: str) -> Optional[Stream]:
        """The stream, marked as heard from now; None if unknown."""
        with self._changed:
            stream = self._streams.get(name)
            if stream is not None:
                stream.last_seen = time.monotonic()
            return stream

    def put(self, stream: Stream) -> Optional[Stream]:
        """Add a stream, replacing one of the same name (returned, with its queue, so its
        requests can be answered). The caller checked ``max_streams``."""
        with self._changed:
            old = self._streams.pop(stream.name, None)
            if old is not None:
                self._order.remove(old.name)
            self._streams[stream.name] = stream
            self._order.append(stream.name)
            return old

    def remove(self, name: str) -> Optional[Stream]:
        with self._changed:
            stream = self._streams.pop(name, None)
            if stream is not None:
                index = self._order.index(name)
                self._order.pop(index)
                if index < self._next:
                    self._next -= 1
            return stream

    def expire(self, now: Optional[float] = None) -> List[Stream]:
        """Free the streams silent for longer than the timeout with nothing queued."""
        now = time.monotonic() if now is None else now
        with self._changed:
            silent = [s.name for s in self._streams.values()
                      if not s.queue and not s.held and now - s.last_seen > self.timeout_s]
        return [s for s in (self.remove(name) for name in silent) if s is not None]

    def submit(self, stream: Stream, request: Request) -> Optional[Request]:
        """Queue a request; returns the frame it replaced (latest frame wins), if any. Raises
        ``QueueFull`` when the stream already has ``MAX_QUEUED`` requests waiting (a client that
        pipelines without reading its answers must not grow the server's memory)."""
        with self._changed:
            if len(stream.queue) >= MAX_QUEUED and not (request.op == "track" and stream.queue[-1].op == "track"):
                raise QueueFull(f"stream {stream.name!r} already has {MAX_QUEUED} requests waiting: wait for "
                                "answers before sending more")
            replaced = None
            if request.op == "track" and stream.queue and stream.queue[-1].op == "track":
                replaced = stream.queue.pop()
                stream.frames_superseded += 1
            stream.queue.append(request)
            self._changed.notify()
            return replaced

    # ------------------------------------------------------------------ work (model thread)
    def take_round(self, wait_s: float, max_frames: Optional[int] = None, hold: bool = False) -> Optional[Round]:
        """The next round of work, waiting up to ``wait_s`` for some (or for ``wake``); None if there
        is none. ``max_frames``: fewer frames than ``max_batch`` (lanes still free); ``hold``: the
        frames' streams take no further part until ``release``."""
        limit = self.max_batch if max_frames is None else min(self.max_batch, max_frames)
        with self._changed:
            if not self._has_work(limit) and not self._closed and not self._woken:
                self._changed.wait(wait_s)
            self._woken = False
            if self.gather_s > 0 and limit > 0:
                self._gather(limit)
            if self._closed:
                return None
            count = len(self._order)
            frames, others = [], []
            taken, first_skipped = 0, None
            for step in range(count):
                stream = self._streams[self._order[(self._next + step) % count]]
                if not stream.queue or stream.held:
                    continue
                if stream.queue[0].op == "track":
                    if len(frames) >= limit:
                        first_skipped = step if first_skipped is None else first_skipped
                        continue
                    frames.append((stream, stream.queue.popleft()))
                    stream.expected = True
                    stream.held = hold
                else:
                    others.append((stream, stream.queue.popleft()))
                taken = step + 1
            if not frames and not others:
                return None
            # The next round starts at the first frame left waiting, else after the last stream served.
            start = first_skipped if first_skipped is not None else taken
            self._next = (self._next + start) % count if count else 0
            return Round(frames, others)

    def release(self, stream: Stream) -> None:
        """A held stream's frame is answered: its next request may run."""
        with self._changed:
            stream.held = False
            self._changed.notify()

    def wake(self) -> None:
        """End a ``take_round`` wait early (a lane finished: its answer is to be sent)."""
        with self._changed:
            self._woken = True
            self._changed.notify()

    def _has_work(self, limit: int) -> bool:
        return any(s.queue and not s.held and (limit > 0 or s.queue[0].op != "track")
                   for s in self._streams.values())

    def _gather(self, limit: int) -> None:
        """With a frame waiting, wait (lock held by the caller) up to ``gather_s`` until every
        expected stream has a request queued or the batch (``limit`` frames) is full; streams still
        missing then are no longer expected."""
        def ready() -> int:
            return sum(1 for s in self._streams.values() if s.queue and not s.held and s.queue[0].op == "track")

        def missing() -> List[Stream]:
            return [s for s in self._streams.values() if s.expected and not s.queue and not s.held]

        if not ready():
            return
        deadline = time.monotonic() + self.gather_s
        while not self._closed and ready() < limit and missing():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                for stream in missing():
                    stream.expected = False
                return
            self._changed.wait(remaining)

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify_all()
