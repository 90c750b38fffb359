"""Stopping an executor that spins in its own thread, then destroying its nodes and context.

Destroying a node while an executor thread still waits on it can deadlock inside rclpy: seen in
the test suite, ``Node.destroy_node`` blocked for good, holding the GIL, after
``executor.shutdown(timeout_sec=2)`` had timed out on a loaded machine and left the spin thread
running. So the nodes are destroyed only once the spin thread has ended.

The thread is asked to end first (``SpinThread``: its loop polls a stop request between waits), and
the executor is shut down only once it has: shutting an executor down while another thread builds
its wait set can leave that wait set empty, which rclpy raises in the spin thread ("wait set is
empty", seen once as a warning in the suite).
"""

from __future__ import annotations

import threading
from typing import Iterable, Optional

import rclpy
from rclpy.context import Context
from rclpy.executors import Executor
from rclpy.node import Node

from .stop_signals import STOP_POLL_S, StopRequest, spin_until_stopped


class SpinThread:
    """``executor`` spun in a daemon thread of its own until ``request_stop`` (or its context's
    shutdown); the thread ends within ``poll_s`` of the request unless a callback holds it."""

    def __init__(self, executor: Executor, poll_s: float = STOP_POLL_S):
        self._stop = StopRequest()
        self.thread = threading.Thread(target=spin_until_stopped, args=(executor, self._stop, poll_s), daemon=True)
        self.thread.start()

    def request_stop(self) -> None:
        self._stop.request()


def stop_spinning(executor: Optional[Executor], spinner: Optional[SpinThread], nodes: Iterable[Node],
                  context: Context, timeout_s: float = 30.0) -> bool:
    """Ask ``spinner`` (spinning ``executor``) to stop and wait for its thread to end, shut
    ``executor`` down (its callbacks in flight finish), destroy ``nodes`` and shut ``context`` down
    (``executor`` and ``spinner`` None: nothing spins yet, as when a set-up failed before it started).

    If the thread has not ended after ``timeout_s``, the context is shut down first (that wakes
    and ends any spin on it); a thread that still runs then keeps its nodes, which the process's
    exit frees, rather than risk the deadlock. Returns whether the nodes were destroyed."""
    thread = spinner.thread if spinner is not None else None
    if spinner is not None:
        spinner.request_stop()
        thread.join(timeout_s)
    if executor is not None:
        executor.shutdown(timeout_sec=timeout_s)
    if thread is not None:
        thread.join(timeout_s)
    stuck = thread is not None and thread.is_alive()
    if stuck:
        rclpy.try_shutdown(context=context)
        thread.join(timeout_s)
        if thread.is_alive():
            return False
    for node in nodes:
        node.destroy_node()
    rclpy.try_shutdown(context=context)
    return True
