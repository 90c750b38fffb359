"""The generated sam2_ros interfaces work end to end: every field of every message and service
survives a real rclpy publisher -> subscriber and client -> service round trip over Fast DDS on
localhost (ROS isolated per test run by conftest.py).

Values are chosen to be exact in their wire types (float32 fields get values exact in float32),
so equality after the round trip is exact.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
import rclpy
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point, Vector3
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSDurabilityPolicy, QoSProfile, QoSReliabilityPolicy
from sensor_msgs.msg import Image, RegionOfInterest
from std_msgs.msg import Header

from sam2_ros.msg import Prompt, TrackedObject, TrackedObjects
from sam2_ros.srv import AddObject, Discover, RemoveObject

pytestmark = pytest.mark.ros

RELIABLE = QoSProfile(depth=10, reliability=QoSReliabilityPolicy.RELIABLE,
                      durability=QoSDurabilityPolicy.VOLATILE)


# --- fully populated messages -----------------------------------------------------------------

def make_header(sec=1_700_000_123, nanosec=456_789_012, frame_id="camera_optical_frame") -> Header:
    return Header(stamp=Time(sec=sec, nanosec=nanosec), frame_id=frame_id)


def make_mask(height=6, width=8, seed=1, frame_id="camera_optical_frame") -> Image:
    data = bytes(255 if (x * 7 + y * 3 + seed) % 5 < 2 else 0 for y in range(height) for x in range(width))
    return Image(header=make_header(frame_id=frame_id), height=height, width=width, encoding="mono8",
                 is_bigendian=0, step=width, data=data)


def make_tracked_object(object_id: int, visible: bool = True) -> TrackedObject:
    mask = make_mask(seed=object_id % 5)
    n = abs(object_id) % 64
    return TrackedObject(
        id=object_id,
        visible=visible,
        visibility=0.75 if visible else 0.125,
        occlusion=0.25 if visible else 0.875,
        iou_score=n / 64,
        bbox=RegionOfInterest(x_offset=1 + n, y_offset=2, height=3, width=4 + n,
                              do_rectify=n % 2 == 0) if visible else RegionOfInterest(),
        area=sum(1 for value in mask.data if value) if visible else 0,
        mask=mask,
        has_position=visible,
        position=Point(x=0.25 * n, y=-0.5, z=1.125) if visible else Point(),
        size=Vector3(x=0.5, y=0.25, z=0.0625) if visible else Vector3(),
        num_points=100 + n if visible else 0,
    )


def make_tracked_objects() -> TrackedObjects:
    return TrackedObjects(
        header=make_header(),
        frame_index=2**63 + 12345,  # uint64: beyond int64
        latency_ms=12.5,
        objects=[make_tracked_object(1), make_tracked_object(2, visible=False), make_tracked_object(2**31 - 1)],
    )


def make_prompt(object_id: int = 0) -> Prompt:
    return Prompt(
        object_id=object_id,
        points=[Point(x=10.5, y=20.25, z=0.0), Point(x=300.0, y=4.0, z=1.5), Point(x=0.0, y=479.0, z=-2.0)],
        labels=[1, 0, 1],
        use_box=True,
        box=[1.5, 2.5, 640.0, 480.0],
        mask=make_mask(seed=9),
        clear_old_points=True,
    )


def test_messages_have_the_documented_fields():
    assert TrackedObject.get_fields_and_field_types() == {
        "id": "int32", "visible": "boolean", "visibility": "float", "occlusion": "float", "iou_score": "float",
        "bbox": "sensor_msgs/RegionOfInterest", "area": "uint32", "mask": "sensor_msgs/Image",
        "has_position": "boolean", "position": "geometry_msgs/Point", "size": "geometry_msgs/Vector3",
        "num_points": "uint32",
        # memory_policy robust (issue 25)
        "box_predicted": "boolean", "predicted_bbox": "sensor_msgs/RegionOfInterest",
    }
    assert TrackedObjects.get_fields_and_field_types() == {
        "header": "std_msgs/Header", "frame_index": "uint64", "latency_ms": "float",
        "objects": "sequence<sam2_ros/TrackedObject>",
    }
    assert Prompt.get_fields_and_field_types() == {
        "object_id": "int32", "points": "sequence<geometry_msgs/Point>", "labels": "sequence<int8>",
        "use_box": "boolean", "box": "float[4]", "mask": "sensor_msgs/Image", "clear_old_points": "boolean",
    }
    assert AddObject.Request.get_fields_and_field_types() == {"prompt": "sam2_ros/Prompt"}
    assert AddObject.Response.get_fields_and_field_types() == {
        "success": "boolean", "message": "string", "object_id": "int32", "object": "sam2_ros/TrackedObject",
    }
    assert RemoveObject.Request.get_fields_and_field_types() == {"object_id": "int32"}
    assert RemoveObject.Response.get_fields_and_field_types() == {"success": "boolean", "message": "string"}
    assert Discover.Request.get_fields_and_field_types() == {
        "region": "sensor_msgs/RegionOfInterest", "max_new_objects": "int32", "min_area": "float"}
    assert Discover.Response.get_fields_and_field_types() == {
        "success": "boolean", "message": "string", "object_ids": "sequence<int32>"}


def test_runtime_dependencies_import():
    from diagnostic_msgs.msg import DiagnosticArray  # noqa: F401
    from lifecycle_msgs.msg import State  # noqa: F401
    from std_srvs.srv import Trigger  # noqa: F401


# --- pub/sub -----------------------------------------------------------------------------------

@pytest.mark.parametrize("msg_type, factory", [
    (TrackedObjects, make_tracked_objects),
    (TrackedObject, lambda: make_tracked_object(5)),
    (Prompt, lambda: make_prompt(3)),
])
def test_topic_round_trip(ros_context, spin_until, msg_type, factory):
    sent = factory()
    received = []
    pub_node = rclpy.create_node("sam2_test_publisher", context=ros_context)
    sub_node = rclpy.create_node("sam2_test_subscriber", context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    try:
        topic = f"sam2_test/{msg_type.__name__}"
        publisher = pub_node.create_publisher(msg_type, topic, RELIABLE)
        sub_node.create_subscription(msg_type, topic, received.append, RELIABLE)
        executor.add_node(pub_node)
        executor.add_node(sub_node)
        spin_until(executor, lambda: publisher.get_subscription_count() > 0, 15.0, "discovery")
        publisher.publish(sent)
        spin_until(executor, lambda: len(received) > 0, 10.0, f"a {msg_type.__name__} message")
    finally:
        executor.shutdown()
        pub_node.destroy_node()
        sub_node.destroy_node()
    assert len(received) == 1
    got = received[0]
    assert got is not sent
    assert got == sent
    if msg_type is TrackedObjects:
        assert got.frame_index == 2**63 + 12345
        assert [obj.id for obj in got.objects] == [1, 2, 2**31 - 1]
        assert bytes(got.objects[0].mask.data) == bytes(sent.objects[0].mask.data)
        assert got.objects[1].bbox == RegionOfInterest()
    if msg_type is Prompt:
        assert list(got.labels) == [1, 0, 1]
        assert [float(v) for v in got.box] == [1.5, 2.5, 640.0, 480.0]


# --- services ------------------------------------------------------------------------------------

def call(executor, spin_until, client, request, what):
    spin_until(executor, lambda: client.service_is_ready(), 15.0, f"{what} service discovery")
    future = client.call_async(request)
    spin_until(executor, future.done, 10.0, f"{what} response")
    return future.result()


def test_service_round_trips(ros_context, spin_until):
    requests = []

    def add_object(request, response):
        requests.append(request)
        response.success = True
        response.message = "added: 3 points, a box and a mask"
        response.object_id = request.prompt.object_id or 42
        response.object = make_tracked_object(response.object_id)
        return response

    def remove_object(request, response):
        requests.append(request)
        response.success = request.object_id == 42
        response.message = "removed" if response.success else f"no object {request.object_id}"
        return response

    def discover(request, response):
        requests.append(request)
        response.success = True
        response.message = f"added {request.max_new_objects} object(s)"
        response.object_ids = [7, -3, 65535][:request.max_new_objects]
        return response

    server_node = rclpy.create_node("sam2_test_server", context=ros_context)
    client_node = rclpy.create_node("sam2_test_client", context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    try:
        server_node.create_service(AddObject, "sam2_test/add_object", add_object)
        server_node.create_service(RemoveObject, "sam2_test/remove_object", remove_object)
        add_client = client_node.create_client(AddObject, "sam2_test/add_object")
        remove_client = client_node.create_client(RemoveObject, "sam2_test/remove_object")
        server_node.create_service(Discover, "sam2_test/discover", discover)
        discover_client = client_node.create_client(Discover, "sam2_test/discover")
        executor.add_node(server_node)
        executor.add_node(client_node)

        prompt = make_prompt(0)
        response = call(executor, spin_until, add_client, AddObject.Request(prompt=prompt), "AddObject")
        assert requests[-1].prompt == prompt
        assert response.success is True
        assert response.message == "added: 3 points, a box and a mask"
        assert response.object_id == 42
        assert response.object == make_tracked_object(42)

        response = call(executor, spin_until, add_client, AddObject.Request(prompt=make_prompt(-7)), "AddObject")
        assert requests[-1].prompt == make_prompt(-7)
        assert response.object_id == -7 and response.object == make_tracked_object(-7)

        response = call(executor, spin_until, remove_client, RemoveObject.Request(object_id=42), "RemoveObject")
        assert requests[-1] == RemoveObject.Request(object_id=42)
        assert (response.success, response.message) == (True, "removed")
        response = call(executor, spin_until, remove_client, RemoveObject.Request(object_id=-1), "RemoveObject")
        assert (response.success, response.message) == (False, "no object -1")

        discover_request = Discover.Request(
            region=RegionOfInterest(x_offset=3, y_offset=4, height=50, width=60, do_rectify=True),
            max_new_objects=3, min_area=0.125)
        response = call(executor, spin_until, discover_client, discover_request, "Discover")
        assert requests[-1] == discover_request
        assert (response.success, response.message) == (True, "added 3 object(s)")
        assert list(response.object_ids) == [7, -3, 65535]
    finally:
        executor.shutdown()
        server_node.destroy_node()
        client_node.destroy_node()


# --- across processes ----------------------------------------------------------------------------

RELAY_NODE = r'''
import sys
import rclpy
from rclpy.qos import QoSProfile, QoSReliabilityPolicy
from sam2_ros.msg import Prompt, TrackedObject, TrackedObjects
from sam2_ros.srv import AddObject, RemoveObject

rclpy.init()
node = rclpy.create_node("sam2_test_relay")
qos = QoSProfile(depth=10, reliability=QoSReliabilityPolicy.RELIABLE)
for msg_type in (TrackedObjects, Prompt):
    name = msg_type.__name__
    pub = node.create_publisher(msg_type, f"sam2_relay/out/{name}", qos)
    node.create_subscription(msg_type, f"sam2_relay/in/{name}", pub.publish, qos)

def add_object(request, response):
    response.success = True
    response.message = f"{len(request.prompt.points)} points"
    response.object_id = request.prompt.object_id
    response.object = TrackedObject(id=request.prompt.object_id, visible=True, mask=request.prompt.mask,
                                    area=sum(1 for v in request.prompt.mask.data if v))
    return response

def remove_object(request, response):
    response.success, response.message = True, f"removed {request.object_id}"
    return response

node.create_service(AddObject, "sam2_relay/add_object", add_object)
node.create_service(RemoveObject, "sam2_relay/remove_object", remove_object)
print("ready", flush=True)
try:
    rclpy.spin(node)
except KeyboardInterrupt:
    pass
'''


def test_round_trip_through_another_process(ros_context, spin_until, tmp_path):
    """Messages and services cross a process boundary (real Fast DDS transport, the other process
    importing sam2_ros the same way), and come back unchanged."""
    script = tmp_path / "relay.py"
    script.write_text(RELAY_NODE)
    relay = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, cwd=tmp_path)
    node = rclpy.create_node("sam2_test_relay_client", context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)

    def relay_alive():
        if relay.poll() is not None:
            pytest.fail(f"the relay process exited with {relay.returncode}:\n{relay.stdout.read()}")
        return True

    try:
        for msg_type, sent in ((TrackedObjects, make_tracked_objects()), (Prompt, make_prompt(11))):
            name = msg_type.__name__
            received = []
            node.create_subscription(msg_type, f"sam2_relay/out/{name}", received.append, RELIABLE)
            publisher = node.create_publisher(msg_type, f"sam2_relay/in/{name}", RELIABLE)
            def relay_matched(publisher=publisher, out_topic=f"sam2_relay/out/{name}"):
                return (relay_alive() and publisher.get_subscription_count() > 0
                        and node.count_publishers(out_topic) > 0)

            spin_until(executor, relay_matched, 30.0, f"the relay's {name} topics")
            # The relay's subscription may match before its publisher matches ours: publish until echoed.
            for _ in range(50):
                publisher.publish(sent)
                deadline = time.monotonic() + 0.2
                while not received and time.monotonic() < deadline:
                    executor.spin_once(timeout_sec=0.02)
                if received:
                    break
            assert received, f"no {name} came back from the relay process"
            assert received[0] == sent

        add_client = node.create_client(AddObject, "sam2_relay/add_object")
        remove_client = node.create_client(RemoveObject, "sam2_relay/remove_object")
        prompt = make_prompt(5)
        response = call(executor, spin_until, add_client, AddObject.Request(prompt=prompt), "relay AddObject")
        assert (response.success, response.message, response.object_id) == (True, "3 points", 5)
        assert response.object.mask == prompt.mask
        assert response.object.area == sum(1 for v in prompt.mask.data if v)
        response = call(executor, spin_until, remove_client, RemoveObject.Request(object_id=5), "relay RemoveObject")
        assert (response.success, response.message) == (True, "removed 5")
    finally:
        executor.shutdown()
        node.destroy_node()
        if relay.poll() is None:
            relay.send_signal(signal.SIGINT)
            try:
                relay.wait(timeout=10)
            except subprocess.TimeoutExpired:
                relay.kill()
        relay.stdout.close()
