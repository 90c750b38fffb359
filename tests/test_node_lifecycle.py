"""Lifecycle: configure / activate / deactivate / cleanup / configure again / shutdown, parameter
checks at configure, autostart, and a clean exit on Ctrl-C."""

import gc
import weakref

import pytest
from lifecycle_msgs.msg import Transition
from rclpy.lifecycle import TransitionCallbackReturn

from node_harness import GraphClient, NodeProcess, model_files, node_in_this_process, prompt_msg  # noqa: F401 - fixture

pytestmark = pytest.mark.ros

BOX = [128.0, 133.12, 212.48, 199.68]

# Bad parameter values and what the log must say about each.
BAD_PARAMETERS = [
    ({"device": "tpu"}, "device 'tpu' must be one of auto, cuda, cpu"),
    ({"max_objects": 0}, "max_objects 0 must be at least 1"),
    ({"max_objects": "many"}, "max_objects must be an integer, got 'many'"),
    ({"dtype": "float64"}, "dtype 'float64' must be one of float32, bfloat16, float16"),
    ({"qos_reliability": "sometimes"}, "qos_reliability 'sometimes' must be one of best_effort, reliable"),
    ({"model": "/nonexistent/sam2.yaml"}, "model '/nonexistent/sam2.yaml': no such config file"),
    ({"model": "sam3_hiera_huge"}, "sam3_hiera_huge"),
    ({"checkpoint": "/nonexistent/sam2.pt"}, "checkpoint '/nonexistent/sam2.pt': no such file"),
]


def _has_service(client, suffix):
    """Whether the tracker node offers the service (the graph's plain service list would also
    show our own clients of it)."""
    # The lifecycle services can answer before this process's graph cache lists the node itself;
    # asking for a node's services before then raises, so wait for discovery first.
    target = (client.target.name, client.target.namespace)
    client.wait_until(lambda: target in client.node.get_node_names_and_namespaces(), 10,
                      "the tracker node to appear in the ROS graph")
    services = client.node.get_service_names_and_types_by_node(*target)
    return any(name == f"{client.target.fqn}/{suffix}" for name, _ in services)


def test_lifecycle_transitions_and_parameter_checks(model_files, tmp_path):  # noqa: F811
    frames = model_files.frames()
    process = NodeProcess(model_files.params(autostart=False), tmp_path / "node.log", namespace="/sam2_lifecycle")
    client = GraphClient(process)
    try:
        assert client.lifecycle_state() == "unconfigured"
        assert client.image_pub.get_subscription_count() == 0 and not _has_service(client, "add_object")

        # Invalid values: configure fails, says why, and the node stays unconfigured.
        good = model_files.params()
        for values, fragment in BAD_PARAMETERS:
            assert all(client.set_parameters(**values))
            assert not client.transition(Transition.TRANSITION_CONFIGURE), values
            client.wait_until(lambda fragment=fragment: fragment in process.log(), 5, f"the log to say {fragment!r}")
            assert client.lifecycle_state() == "unconfigured"
            name = next(iter(values))
            assert all(client.set_parameters(**{name: good.get(name, {"dtype": "float32",
                                                                      "qos_reliability": "best_effort",
                                                                      "max_objects": 64}.get(name))}))
        assert "configure failed" in process.log()

        # configure: the model is loaded, services exist, but nothing is processed yet.
        assert client.transition(Transition.TRANSITION_CONFIGURE)
        assert client.lifecycle_state() == "inactive"
        client.wait_until(lambda: _has_service(client, "add_object"), 10, "the add_object service")
        refused = client.add_object(prompt_msg(box=BOX))
        assert not refused.success and "not active" in refused.message
        assert client.image_pub.get_subscription_count() == 0

        # activate: tracking.
        assert client.transition(Transition.TRANSITION_ACTIVATE)
        assert client.lifecycle_state() == "active"
        client.wait_active()
        client.track(frames[0], 0)
        assert client.add_object(prompt_msg(box=BOX)).success
        assert client.track(frames[1], 1).ids() == [1]

        # deactivate: no processing, prompts refused, objects kept.
        assert client.transition(Transition.TRANSITION_DEACTIVATE)
        assert client.lifecycle_state() == "inactive"
        client.wait_until(lambda: client.image_pub.get_subscription_count() == 0, 10, "the image subscription to go")
        assert client.try_outputs(client.publish_frame(frames[2], 2), 1.0) is None
        refused = client.add_object(prompt_msg(points=[[10, 10]], labels=[1]))
        assert not refused.success and "not active" in refused.message

        assert client.transition(Transition.TRANSITION_ACTIVATE)
        client.wait_until(lambda: client.image_pub.get_subscription_count() > 0, 10, "the image subscription")
        # (no wait_active here: its handshake resets the tracker; frames until one comes back)
        for attempt in range(20):
            out = client.try_outputs(client.publish_frame(frames[3], 3 + 100 * attempt), 1.0)
            if out is not None:
                break
        assert out is not None and out.ids() == [1], "the object tracked before deactivate is kept"
        assert out.objects.frame_index >= 2

        # cleanup: the model is freed, the services go; then configure again with new values.
        assert client.transition(Transition.TRANSITION_DEACTIVATE)
        assert client.transition(Transition.TRANSITION_CLEANUP)
        assert client.lifecycle_state() == "unconfigured"
        client.wait_until(lambda: not _has_service(client, "add_object"), 10, "the services to go")
        assert all(client.set_parameters(max_objects=1))
        assert client.transition(Transition.TRANSITION_CONFIGURE)
        assert client.transition(Transition.TRANSITION_ACTIVATE)
        client.wait_active()
        assert client.track(frames[0], 500).ids() == []
        assert client.add_object(prompt_msg(box=BOX)).object_id == 1
        full = client.add_object(prompt_msg(points=[[10, 10]], labels=[1]))
        assert not full.success and "maximum of 1 objects" in full.message

        # shutdown from active: finalized, and the process still exits cleanly on Ctrl-C.
        assert client.transition(Transition.TRANSITION_ACTIVE_SHUTDOWN)
        assert client.lifecycle_state() == "finalized"
    finally:
        client.close()
        code = process.stop()
    assert code == 0, process.log()[-6000:]
    assert "Traceback" not in process.log()


def test_autostart_reaches_active_and_ctrl_c_exits_cleanly(model_files, tmp_path):  # noqa: F811
    process = NodeProcess(model_files.params(), tmp_path / "node.log", namespace="/sam2_autostart")
    client = GraphClient(process)
    try:
        client.wait_active()
        assert client.lifecycle_state() == "active"
        client.track(model_files.frames()[0], 0)
    finally:
        client.close()
        code = process.stop()
    assert code == 0, process.log()[-6000:]
    assert "Traceback" not in process.log()


def test_cleanup_frees_the_model(model_files):  # noqa: F811
    """In-process: after cleanup nothing references the model any more (GPU memory would be freed)."""
    with node_in_this_process(model_files.params(autostart=False)) as node:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        model = weakref.ref(node._backend.model)
        tracker = weakref.ref(node._backend.session.tracker)
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
        gc.collect()
        assert model() is None and tracker() is None
        # ... and configure loads it again.
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node._backend is not None


def test_an_exception_in_a_transition_ends_unconfigured_with_everything_freed(model_files, monkeypatch):  # noqa: F811
    """Error processing (on_error's SUCCESS) takes the node to unconfigured, not finalized: the
    model and outputs are freed and the node can be configured again."""
    with node_in_this_process(model_files.params(autostart=False)) as node:
        create_outputs = node._create_outputs

        def failing(params):
            create_outputs(params)
            raise RuntimeError("simulated failure after the outputs were created")

        monkeypatch.setattr(node, "_create_outputs", failing)
        assert node.trigger_configure() == TransitionCallbackReturn.ERROR
        assert node._state_machine.current_state[1] == "unconfigured"
        assert node._backend is None and node._outputs == {} and node._prompt_services == []
        monkeypatch.setattr(node, "_create_outputs", create_outputs)
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        assert node._backend is not None and node._active
        node.trigger_deactivate()
