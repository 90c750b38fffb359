"""The node's executor threads: a burst of prompts waiting for the tracker lock (held by the worker
for a long discovery, say) must not hold up image reception. The node runs in this process, so the
test can hold its lock; the prompts and the image come over DDS from a node in another context."""

import time

import numpy as np
import pytest
import rclpy
from rclpy.executors import MultiThreadedExecutor
from rclpy.lifecycle import TransitionCallbackReturn
from sensor_msgs.msg import Image

from sam2_ros.msg import Prompt
from sam2_ros.spin_teardown import SpinThread, stop_spinning
from sam2_ros.tracker_node import EXECUTOR_THREADS, PROMPT_QUEUE_DEPTH

from node_harness import make_header, model_files, node_in_this_process, prompt_msg, rgb_image  # noqa: F401

pytestmark = pytest.mark.ros

# More prompts than the executor has threads: each one that ran would wait for the lock.
PROMPTS = 2 * EXECUTOR_THREADS


def _wait(condition, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_prompts_waiting_for_the_tracker_lock_leave_image_reception_alone(model_files):  # noqa: F811
    with node_in_this_process(model_files.params(autostart=False)) as node:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        executor = MultiThreadedExecutor(num_threads=EXECUTOR_THREADS, context=node.context)
        executor.add_node(node)
        spinner = SpinThread(executor)
        context = rclpy.Context()
        rclpy.init(context=context, args=[])
        tester = rclpy.create_node("sam2_thread_tester", context=context)
        locked = False
        try:
            prompts = tester.create_publisher(Prompt, f"{node.get_fully_qualified_name()}/prompt", PROMPT_QUEUE_DEPTH)
            images = tester.create_publisher(Image, node.resolve_topic_name("image"), 10)
            assert _wait(lambda: prompts.get_subscription_count() > 0 and images.get_subscription_count() > 0, 30)

            node._tracker_lock.acquire()  # as the worker holds it while it tracks or discovers
            locked = True
            for _ in range(PROMPTS):
                prompts.publish(prompt_msg(points=[[10, 10]], labels=[1]))
            time.sleep(1.0)  # the prompts reach the node and wait for the lock
            images.publish(rgb_image(np.zeros((16, 16, 3), np.uint8), make_header(0)))
            received = _wait(lambda: node._stats.received_total >= 1, 10)
            node._tracker_lock.release()
            locked = False
            assert received, "the image was not received while prompts waited for the tracker lock"
            # Then the prompts are served (refused: no frame was tracked before them, or added).
            assert _wait(lambda: node._stats.rejected_prompts_total + len(node._backend.obj_ids) >= 1, 30)
        finally:
            if locked:
                node._tracker_lock.release()
            stop_spinning(None, None, [tester], context)
            spinner.request_stop()
            spinner.thread.join(30)
            executor.shutdown(timeout_sec=30)
            node.trigger_deactivate()
