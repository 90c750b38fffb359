"""Stopping the node's process on SIGINT (Ctrl-C, ``ros2 launch``) and SIGTERM (a service manager).

rclpy's own handling raises KeyboardInterrupt in the main thread once a signal has woken the
executor's wait. Twice in the test suite a node that had been shut down through its lifecycle
(finalized: no timer, nothing left to wake the wait) then ignored SIGINT: its main thread was still
in ``rcl_wait`` 15 s later. A signal here only records the request; the main loop waits with a
timeout and sees it within ``STOP_POLL_S`` whatever woke it or not, and then tears down in order,
not from an exception raised at an arbitrary point. A second signal while stopping gets the
signal's default action (the process ends at once), as a second Ctrl-C does elsewhere.
"""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType
from typing import Dict, Optional

from rclpy.executors import Executor

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# Longest time from a stop signal to the main loop noticing it (the executor's wait timeout).
STOP_POLL_S = 0.25


class StopRequest:
    """SIGINT and SIGTERM handlers that record a stop request (``install``; ``restore`` puts the
    previous handlers back). Must be installed from the main thread, as Python requires."""

    def __init__(self) -> None:
        self._requested = threading.Event()
        self._previous: Dict[int, object] = {}

    @property
    def requested(self) -> bool:
        return self._requested.is_set()

    def install(self) -> "StopRequest":
        for signum in STOP_SIGNALS:
            self._previous[signum] = signal.signal(signum, self._on_signal)
        return self

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def request(self) -> None:
        """Ask the main loop to stop (what the first signal does)."""
        self._requested.set()

    def _on_signal(self, signum: int, frame: Optional[FrameType]) -> None:
        if self._requested.is_set():  # asked again while stopping: end now
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        self.request()


def spin_until_stopped(executor: Executor, stop: StopRequest, poll_s: float = STOP_POLL_S) -> None:
    """Run ``executor``'s callbacks until a stop is requested or its context is shut down."""
    while not stop.requested and executor.context.ok():
        executor.spin_once(timeout_sec=poll_s)
