"""Stopping an executor that spins in its own thread, then destroying its nodes and context.

Destroying a node while an executor thread still waits on it can deadlock inside rclpy: seen in
the test suite, ``Node.destroy_node`` blocked for good, holding the GIL, after
``executor.shutdown(timeout_sec=2)`` had timed out on a loaded machine and left the spin thread
running. So the nodes are destroyed only once the spin thread has ended.
"""

from __future__ import annotations

import threading
from typing import Iterable, Optional

import rclpy
from rclpy.context import Context
from rclpy.executors import Executor
from rclpy.node import Node


def stop_spinning(executor: Optional[Executor], thread: Optional[threading.Thread], nodes: Iterable[Node],
                  context: Context, timeout_s: float = 30.0) -> bool:
    """Shut ``executor`` down (its callbacks in flight finish), wait for ``thread`` (the one
    running ``executor.spin``) to end, destroy ``nodes`` and shut ``context`` down (``executor``
    and ``thread`` None: nothing spins yet, as when a set-up failed before it started).

    If the thread has not ended after ``timeout_s``, the context is shut down first (that wakes
    and ends any spin on it); a thread that still runs then keeps its nodes, which the process's
    exit frees, rather than risk the deadlock. Returns whether the nodes were destroyed."""
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
