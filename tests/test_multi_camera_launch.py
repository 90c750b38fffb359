"""launch/multi_camera.launch.py and config/multi_camera.yaml, run against stand-ins for
``launch``/``launch_ros`` (not installable here; see test_launch_file.py): the processes it would
start, their command lines and parameters, and clear errors for a bad camera list."""

import shutil
import tempfile
import types
from pathlib import Path

import pytest
import yaml

from sam2_ros.multi_camera import MultiCameraConfigError, cameras_from_topics, load_config, tracker_parameters
from sam2_ros.node_parameters import parameter_names, parameters_from_values

from launch_stand_ins import LaunchConfiguration, Recorded, load_launch_file
from node_harness import model_files, one_torch_thread  # noqa: F401 - fixtures

REPO = Path(__file__).resolve().parents[1]
LAUNCH_FILE = REPO / "launch" / "multi_camera.launch.py"
CONFIG_FILE = REPO / "config" / "multi_camera.yaml"
SHARE = REPO  # the stand-in share directory: the source tree's config/ is what gets installed


@pytest.fixture
def launch_module(monkeypatch):
    fakes = {
        "launch": {"LaunchDescription": Recorded},
        "launch.actions": {"DeclareLaunchArgument": Recorded, "OpaqueFunction": Recorded,
                           "ExecuteProcess": Recorded},
        "launch.substitutions": {"LaunchConfiguration": LaunchConfiguration},
        "launch_ros": {},
        "launch_ros.actions": {"Node": Recorded},
        "launch_ros.substitutions": {"ExecutableInPackage": Recorded},
        "ament_index_python": {},
        "ament_index_python.packages": {"get_package_share_directory": lambda package: str(SHARE)},
    }
    return load_launch_file(LAUNCH_FILE, "multi_camera_launch", fakes, monkeypatch)


def _launch(launch_module, **given):
    description = launch_module["generate_launch_description"]()
    actions = description.args[0]
    declared = {a.args[0]: a.kwargs for a in actions if a.args}
    assert set(declared) == {"config", "cameras", "bind"}
    assert all(kwargs["description"] for kwargs in declared.values())
    defaults = {name: kwargs["default_value"] for name, kwargs in declared.items()}
    assert defaults["config"] == str(SHARE / "config" / "multi_camera.yaml")
    (opaque,) = [a for a in actions if "function" in a.kwargs]
    context = types.SimpleNamespace(launch_configurations={**defaults, **given})
    return opaque.kwargs["function"](context)


def test_one_server_and_one_node_per_camera_of_the_config_file(launch_module):
    server, *nodes = _launch(launch_module)
    executable = server.kwargs["cmd"][0]
    assert executable.kwargs == {"executable": "sam2-server", "package": "sam2_ros"}
    arguments = server.kwargs["cmd"][1:]
    assert arguments[arguments.index("--bind") + 1] == "ipc:///tmp/sam2.sock"
    assert arguments[arguments.index("--model") + 1] == "default"
    assert "--checkpoint" not in arguments  # empty: the bundled weights
    # The server would start with these arguments: its own parser and settings check take them.
    server_config(arguments).check()
    assert [(n.kwargs["namespace"], n.kwargs["remappings"]) for n in nodes] == [
        ("front", [("image", "/front/camera/color/image_raw")]),
        ("rear", [("image", "/rear/camera/color/image_raw")])]
    for node in nodes:
        assert (node.kwargs["package"], node.kwargs["executable"], node.kwargs["name"]) == \
            ("sam2_ros", "tracker_node", "tracker_node")
        (parameters,) = node.kwargs["parameters"]
        assert parameters["server"] == "ipc:///tmp/sam2.sock"
        # Every value is a real node parameter, and valid: the nodes would configure.
        assert set(parameters) <= set(parameter_names())
        assert parameters_from_values(parameters).server == "ipc:///tmp/sam2.sock"


def server_config(arguments):
    from sam2_server.cli import config_from_args, serve_parser

    return config_from_args(serve_parser().parse_args(arguments))


def test_server_options_a_config_leaves_out_are_the_servers_own_defaults(tmp_path):
    path = tmp_path / "cams.yaml"
    path.write_text("server: {bind: 'ipc:///tmp/s.sock'}\ncameras: [/x/image]\n")
    passed = server_config(load_config(str(path)).server.arguments())
    # The server started with no flag but --bind runs exactly as the launched one.
    assert passed == server_config(["--bind", "ipc:///tmp/s.sock"])


def test_cameras_and_bind_arguments_override_the_file(launch_module):
    server, *nodes = _launch(launch_module, cameras="left=/stereo/left/image_raw, /wrist/image_raw",
                             bind="tcp://127.0.0.1:5599")
    assert server.kwargs["cmd"][1:3] == ["--bind", "tcp://127.0.0.1:5599"]
    assert [(n.kwargs["namespace"], n.kwargs["remappings"][0][1]) for n in nodes] == [
        ("left", "/stereo/left/image_raw"), ("wrist", "/wrist/image_raw")]
    assert all(n.kwargs["parameters"][0]["server"] == "tcp://127.0.0.1:5599" for n in nodes)


def test_a_custom_config_with_its_own_tracker_params(launch_module, tmp_path):
    params = tmp_path / "tracker.yaml"
    params.write_text("tracker_node:\n  ros__parameters:\n    max_objects: 5\n    overlay: false\n")
    config = tmp_path / "cams.yaml"
    config.write_text(f"server: {{bind: 'ipc:///tmp/x.sock', model: sam2.1_hiera_tiny, checkpoint: /c/t.pt, "
                      f"device: cuda}}\ncameras: [/a/image, /b/image]\ntracker_params_file: {params}\n")
    server, *nodes = _launch(launch_module, config=str(config))
    arguments = server.kwargs["cmd"][1:]
    assert arguments[arguments.index("--checkpoint") + 1] == "/c/t.pt"
    assert arguments[arguments.index("--device") + 1] == "cuda"
    assert server_config(arguments).check().device == "cuda"
    assert [n.kwargs["namespace"] for n in nodes] == ["a", "b"]
    assert nodes[0].kwargs["parameters"] == [{"max_objects": 5, "overlay": False, "server": "ipc:///tmp/x.sock"}]


PARAMS_FILES = [
    # Wildcards first, the node's own last (the order config files are usually written in).
    {"/**": {"max_objects": 1, "overlay": False, "qos_depth": 3},
     "/**/tracker_node": {"max_objects": 2, "overlay": True},
     "/front/tracker_node": {"max_objects": 3}},
    # The other way round: a later section wins, whatever its key.
    {"/front/tracker_node": {"max_objects": 3},
     "/**/tracker_node": {"max_objects": 2, "overlay": True},
     "/**": {"max_objects": 1}},
    # One token, sections for other nodes, nested names.
    {"/*/tracker_node": {"max_objects": 5, "robust": {"gate": 0.3}},
     "/rear/tracker_node": {"max_objects": 6},
     "/**/other_node": {"max_objects": 7},
     "/**": {"robust": {"floor": 0.1}}},
]


def _ros_reads(params_file, namespace):
    """What rclpy itself gives a node /<namespace>/tracker_node started with --params-file (the oracle)."""
    import rclpy
    from rclpy.node import Node

    context = rclpy.Context()
    rclpy.init(context=context, args=["--ros-args", "--params-file", str(params_file)])
    try:
        node = Node("tracker_node", namespace=namespace, context=context)
        values = {name: parameter.value for name, parameter in node._parameter_overrides.items()}
        node.destroy_node()
        return values
    finally:
        rclpy.shutdown(context=context)


@pytest.mark.parametrize("sections", PARAMS_FILES)
@pytest.mark.parametrize("namespace", ["front", "rear"])
def test_tracker_params_sections_merge_as_ros_merges_them(tmp_path, sections, namespace):
    params_file = tmp_path / "tracker.yaml"
    params_file.write_text(yaml.safe_dump({key: {"ros__parameters": values} for key, values in sections.items()},
                                          sort_keys=False))
    assert tracker_parameters(str(params_file), "tracker_node", namespace) == _ros_reads(params_file, namespace)


def test_tracker_params_key_tracker_node_applies_in_any_namespace_and_in_file_order(launch_module, tmp_path):
    params_file = tmp_path / "tracker.yaml"
    params_file.write_text("/**:\n  ros__parameters: {max_objects: 1, overlay: false}\n"
                           "tracker_node:\n  ros__parameters: {max_objects: 4}\n")
    assert tracker_parameters(str(params_file), "tracker_node", "front") == {"max_objects": 4, "overlay": False}
    # Through the launch file: a file keyed /**/tracker_node (as the README advises for namespaced nodes).
    params_file.write_text("/**/tracker_node:\n  ros__parameters: {max_objects: 9}\n")
    config = tmp_path / "cams.yaml"
    config.write_text(f"cameras: [/a/image, /b/image]\ntracker_params_file: {params_file}\n")
    _, *nodes = _launch(launch_module, config=str(config))
    assert [n.kwargs["parameters"] for n in nodes] == [[{"max_objects": 9, "server": "ipc:///tmp/sam2.sock"}]] * 2


@pytest.mark.parametrize("text, problem", [
    ("/**/other_node:\n  ros__parameters: {max_objects: 2}\n", "has no section for /front/tracker_node"),
    ("/rear/tracker_node:\n  ros__parameters: {max_objects: 2}\n", "has no section for /front/tracker_node"),
    ("", "has no section for /front/tracker_node"),
    ("/**:\n  max_objects: 2\n", "section '/**' must hold ros__parameters"),
    ("- tracker_node\n", "must map node names to their ros__parameters"),
])
def test_a_tracker_params_file_without_the_nodes_section_is_refused(tmp_path, text, problem):
    params_file = tmp_path / "tracker.yaml"
    params_file.write_text(text)
    with pytest.raises(MultiCameraConfigError) as error:
        tracker_parameters(str(params_file), "tracker_node", "front")
    assert problem in str(error.value) and str(params_file) in str(error.value)


@pytest.mark.parametrize("text, problem", [
    ("cameras: []\n", "no cameras"),
    ("cameras: [{name: front}]\n", "needs an image_topic"),
    ("cameras: [/front/a, /front/b]\n", "both get the namespace 'front'"),
    ("cameras: [{name: 2cam, image_topic: /x}]\n", "not a valid ROS namespace"),
    ("server: {bind: ipc:///tmp/s, gpu: 1}\ncameras: [/x]\n", "unknown option(s) ['gpu']"),
    ("server: {max_streams: 0}\ncameras: [/x]\n", "max_streams must be a positive integer"),
    ("camera: [/x]\n", "unknown key(s) ['camera']"),
])
def test_bad_configs_are_refused_with_the_problem_named(tmp_path, text, problem):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(MultiCameraConfigError) as error:
        load_config(str(path))
    assert problem in str(error.value)


def test_camera_list_argument():
    cameras = cameras_from_topics("/front/color/image_raw,,side=/x/y")
    assert [(c.name, c.image_topic) for c in cameras] == [("front", "/front/color/image_raw"), ("side", "/x/y")]
    assert load_config(str(CONFIG_FILE), cameras_override="/cam9/image").cameras[0].name == "cam9"


@pytest.mark.parametrize("cameras", ["front=", "front= ,/rear/image", "/rear/image,side=  "])
def test_a_camera_argument_without_a_topic_is_refused(cameras):
    with pytest.raises(MultiCameraConfigError, match="has no image topic: give name=topic"):
        load_config(str(CONFIG_FILE), cameras_override=cameras)


# ------------------------------------------------------------------------- the launch, run for real
@pytest.mark.ros
@pytest.mark.usefixtures("one_torch_thread")
def test_launched_processes_track_two_cameras_on_one_server(launch_module, model_files, tmp_path):  # noqa: F811
    """The processes the launch file describes, started for real (the server as ``python -m
    sam2_server``, each node as the harness's node process with the launch's namespace, remapping
    and parameters): two cameras share one server, each with its own objects and ids."""
    from node_harness import GraphClient, NodeProcess
    from parity_sessions import make_tracker
    from server_harness import ServerProcess
    from test_node_server import PATIENT, SEEDING_EVENTS, replay

    directory = Path(tempfile.mkdtemp(prefix="s2m", dir="/tmp"))
    endpoint = f"ipc://{directory}/sam2.sock"
    tracker_params = tmp_path / "tracker.yaml"
    node_params = {k: v for k, v in model_files.params(**PATIENT).items() if k not in ("model", "checkpoint", "device")}
    tracker_params.write_text(yaml.safe_dump({"tracker_node": {"ros__parameters": node_params}}))
    config = tmp_path / "cameras.yaml"
    config.write_text(yaml.safe_dump({
        "server": {"bind": endpoint, "model": str(model_files.config), "checkpoint": str(model_files.checkpoint),
                   "device": "cpu"},
        "cameras": [{"name": "cam_a", "image_topic": "/cam_a/image_raw"},
                    {"name": "cam_b", "image_topic": "/cam_b/image_raw"}],
        "tracker_params_file": str(tracker_params)}))
    server_action, *node_actions = _launch(launch_module, config=str(config))
    server = ServerProcess.from_command_line(server_action.kwargs["cmd"][1:], tmp_path / "server.log").launch()
    nodes, clients = [], []
    try:
        server.wait_ready()
        for action in node_actions:
            (params,) = action.kwargs["parameters"]
            (remapping,) = action.kwargs["remappings"]
            assert remapping[0] == "image"
            nodes.append(NodeProcess(params, tmp_path / f"{action.kwargs['namespace']}.log",
                                     namespace="/" + action.kwargs["namespace"], image_topic=remapping[1]))
        clients = [GraphClient(node) for node in nodes]
        for client in clients:
            client.wait_active()
        frames = model_files.frames()
        # Camera A: the session's prompts (objects 1, 2, 3); camera B: only its first click (object 1).
        reference_a, reference_b = make_tracker(model_files.session), make_tracker(model_files.session)
        seeded = replay(clients[0], model_files.session, SEEDING_EVENTS, reference_a)
        replay(clients[1], model_files.session, 1, reference_b)
        for index in range(1, seeded + 1):
            clients[1].track(frames[index], index)
            reference_b.track(frames[index])
        for index in range(seeded + 1, seeded + 4):
            # Both frames published before either answer is awaited: the server serves both streams at once.
            stamps = [client.publish_frame(frames[index], index) for client in clients]
            for client, stamp, reference, ids in zip(clients, stamps, (reference_a, reference_b), ([1, 2, 3], [1])):
                out = client.outputs(stamp)
                assert out.ids() == ids, client.target.fqn
                expected = reference.track(frames[index]).masks.cpu().numpy()
                for row, object_id in enumerate(ids):
                    got = out.masks()[object_id]
                    # Frames of two streams may be encoded in one batch: float sums in another order
                    # can move a pixel on a mask's edge, nothing more.
                    agreement = (got == expected[row]).mean()
                    assert agreement > 0.999, f"{client.target.fqn} object {object_id} frame {index}: {agreement}"
            assert expected.any()
    finally:
        for client in clients:
            client.close()
        for node in nodes:
            node.stop()
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)
