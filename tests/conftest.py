"""Shared pytest set-up for the sam2_ros test suite.

ROS isolation: every pytest run talks DDS on its own random ROS_DOMAIN_ID, discovery limited to
this machine, with Fast DDS, so concurrent test runs (or a robot on the same network) never see
each other's topics. The variables are set when this file is imported, before any test creates
an rclpy context, and subprocesses started by tests inherit them. Set SAM2_TEST_ROS_DOMAIN_ID to
pin the domain (e.g. to watch a test with `ros2 topic echo`).

Fixtures and helpers:
  ros_context   a fresh, initialised rclpy Context per test (shut down afterwards)
  spin_until    spin an executor until a condition holds, or fail after a timeout
"""

from __future__ import annotations

import os
import random
import tempfile
import time

import pytest


def _isolate_ros() -> None:
    domain = os.environ.get("SAM2_TEST_ROS_DOMAIN_ID") or str(random.SystemRandom().randint(1, 101))
    os.environ["ROS_DOMAIN_ID"] = domain
    # Jazzy and later: discovery on this host only. Humble knows only ROS_LOCALHOST_ONLY, which
    # later distributions deprecate (and warn about), so set it only there.
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    os.environ["ROS_STATIC_PEERS"] = ""
    if os.environ.get("ROS_DISTRO", "") in ("humble",):
        os.environ["ROS_LOCALHOST_ONLY"] = "1"
    else:
        os.environ.pop("ROS_LOCALHOST_ONLY", None)
    os.environ["RMW_IMPLEMENTATION"] = "rmw_fastrtps_cpp"
    # A discovery server or custom DDS profile from the user's shell would break isolation.
    for name in ("ROS_DISCOVERY_SERVER", "ROS_SUPER_CLIENT", "FASTRTPS_DEFAULT_PROFILES_FILE",
                 "FASTDDS_DEFAULT_PROFILES_FILE"):
        os.environ.pop(name, None)
    # Keep rclpy's log files out of ~/.ros.
    os.environ.setdefault("ROS_LOG_DIR", tempfile.mkdtemp(prefix="sam2_ros_test_logs_"))


_isolate_ros()


def pytest_report_header(config):
    return (f"ROS isolation: ROS_DOMAIN_ID={os.environ['ROS_DOMAIN_ID']} "
            f"ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST RMW_IMPLEMENTATION={os.environ['RMW_IMPLEMENTATION']}")


@pytest.fixture
def ros_context():
    """A fresh rclpy Context, initialised for this test and shut down after it."""
    import rclpy

    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        yield context
    finally:
        if context.ok():
            rclpy.shutdown(context=context)


def _spin_until(executor, condition, timeout_s: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}")
        executor.spin_once(timeout_sec=0.05)


@pytest.fixture
def spin_until():
    """spin_until(executor, condition, timeout_s=10, what="...") spins until condition() is true."""
    return _spin_until
