"""Stopping a node or server the tests started in a process of its own (ROS-free: the server tests
use it too)."""

from __future__ import annotations

import signal
import subprocess

# Set in a child's environment: a child that does not exit when asked is sent SIGABRT by
# ``stop_process``, and Python then writes every thread's stack to its log, which a failing test prints.
FAULT_HANDLER = {"PYTHONFAULTHANDLER": "1"}


def stop_process(process: subprocess.Popen, interrupt: int = signal.SIGINT, timeout_s: float = 15.0) -> int:
    """Send ``interrupt`` (SIGINT as Ctrl-C, SIGTERM as a service manager); if the process has not
    exited within ``timeout_s``, SIGABRT (its stacks to its log, with ``FAULT_HANDLER``), then kill.
    Returns the exit code."""
    if process.poll() is None:
        process.send_signal(interrupt)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGABRT)
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
    return process.returncode
