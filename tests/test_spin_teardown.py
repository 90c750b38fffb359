"""``sam2_ros.spin_teardown.stop_spinning``: an executor spinning in its own thread is stopped before
its nodes are destroyed, the thread before the executor; a spin thread stuck in a callback keeps its
nodes instead of deadlocking."""

import threading
import time

import pytest
import rclpy
from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor

from sam2_ros.spin_teardown import SpinThread, stop_spinning

pytestmark = pytest.mark.ros


def spinning(callback=None, period_s=0.01, executor_type=MultiThreadedExecutor):
    context = rclpy.Context()
    rclpy.init(context=context, args=[])
    node = rclpy.create_node(f"teardown_{time.monotonic_ns()}", context=context)
    ticks = []
    node.create_timer(period_s, callback or (lambda: ticks.append(time.monotonic())))
    executor = executor_type(context=context)
    executor.add_node(node)
    return context, node, executor, SpinThread(executor, poll_s=0.05), ticks


def test_stops_the_thread_then_destroys_the_node_and_the_context():
    context, node, executor, spinner, ticks = spinning()
    deadline = time.monotonic() + 5
    while not ticks and time.monotonic() < deadline:
        time.sleep(0.01)
    assert ticks, "the executor never ran the timer"
    shutdown = executor.shutdown
    alive_at_shutdown = []

    def shutdown_after_the_thread(*args, **kwargs):
        alive_at_shutdown.append(spinner.thread.is_alive())
        return shutdown(*args, **kwargs)

    executor.shutdown = shutdown_after_the_thread
    assert stop_spinning(executor, spinner, [node], context, timeout_s=10)
    # The thread had ended before the executor was shut down (no wait set built mid-shutdown).
    assert alive_at_shutdown == [False]
    assert not spinner.thread.is_alive() and not context.ok()
    assert not list(node.timers)  # destroyed: its entities are gone
    count = len(ticks)
    time.sleep(0.1)
    assert len(ticks) == count  # nothing runs any more


def test_a_thread_stuck_in_a_callback_keeps_its_node():
    release = threading.Event()
    entered = threading.Event()

    def stuck():
        entered.set()
        release.wait(30)

    # A single-threaded executor runs its callbacks in the spin thread itself.
    context, node, executor, spinner, _ = spinning(stuck, executor_type=SingleThreadedExecutor)
    thread = spinner.thread
    assert entered.wait(5)
    started = time.monotonic()
    assert not stop_spinning(executor, spinner, [node], context, timeout_s=0.3)
    assert time.monotonic() - started < 5  # gave up instead of blocking
    assert not context.ok()  # the context is shut down all the same
    release.set()
    thread.join(10)
    assert not thread.is_alive()
    node.destroy_node()  # free now that nothing spins it


def test_without_an_executor_it_destroys_the_nodes_and_the_context():
    """As after a set-up that failed before anything spun."""
    context = rclpy.Context()
    rclpy.init(context=context, args=[])
    node = rclpy.create_node(f"teardown_{time.monotonic_ns()}", context=context)
    node.create_timer(1.0, lambda: None)
    assert stop_spinning(None, None, [node], context)
    assert not list(node.timers) and not context.ok()
