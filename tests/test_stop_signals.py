"""The node's process stops on SIGINT and SIGTERM however idle it is (sam2_ros/stop_signals.py)."""

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest
import rclpy
from lifecycle_msgs.msg import Transition
from rclpy.executors import MultiThreadedExecutor

from node_harness import REPO, GraphClient, NodeProcess
from sam2_ros.stop_signals import StopRequest, spin_until_stopped


def test_a_signal_is_recorded_not_raised_and_the_old_handlers_come_back():
    before = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    stop = StopRequest().install()
    try:
        assert not stop.requested
        os.kill(os.getpid(), signal.SIGTERM)  # no KeyboardInterrupt, no exit: a request
        deadline = time.monotonic() + 5
        while not stop.requested and time.monotonic() < deadline:
            time.sleep(0.01)
        assert stop.requested
    finally:
        stop.restore()
    assert {signum: signal.getsignal(signum) for signum in before} == before


def test_a_second_signal_while_stopping_ends_the_process():
    script = textwrap.dedent("""
        import os, signal, time
        from sam2_ros.stop_signals import StopRequest
        stop = StopRequest().install()
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.1)
        print("first:", stop.requested, flush=True)
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)
        print("still running", flush=True)
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.stdout == "first: True\n"
    assert done.returncode == -signal.SIGINT


def test_spinning_ends_on_request_with_nothing_to_wake_the_executor():
    """The failure it guards against: an executor with no timer and no traffic waits forever unless
    its wait has a timeout."""
    context = rclpy.Context()
    rclpy.init(context=context, args=[])
    node = rclpy.create_node(f"stop_{time.monotonic_ns()}", context=context)
    executor = MultiThreadedExecutor(context=context, num_threads=2)
    executor.add_node(node)
    stop = StopRequest()  # not installed: asked from another thread instead of by a signal
    spinner = threading.Thread(target=spin_until_stopped, args=(executor, stop, 0.05), daemon=True)
    try:
        spinner.start()
        time.sleep(0.3)
        assert spinner.is_alive()  # nothing asked yet: it spins
        stop.request()
        spinner.join(10)
        assert not spinner.is_alive()
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=context)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_finalized_node_exits_cleanly_on_a_signal(tmp_path, signum):
    # The bundled model's name only: nothing is loaded before configure.
    process = NodeProcess({"autostart": False, "model": "default"}, tmp_path / "node.log",
                          namespace=f"/sam2_stop_{signum}")
    client = GraphClient(process)
    try:
        assert client.transition(Transition.TRANSITION_UNCONFIGURED_SHUTDOWN)
        assert client.lifecycle_state() == "finalized"
    finally:
        client.close()
        code = process.stop(interrupt=signum)
    assert code == 0, process.log()[-4000:]
