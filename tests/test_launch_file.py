"""launch/tracker.launch.py and config/tracker.yaml, checked without ROS launch (not installable here).

The launch file is parsed with ``ast`` for its declared arguments, then executed against small
stand-ins for ``launch`` / ``launch_ros`` to check the node it would start; the YAML must hold
exactly the node's parameters, with valid values.
"""

import ast
import types
from pathlib import Path

import pytest
import yaml

from sam2_model.tracker_options import model_option_names
from sam2_ros.node_parameters import TrackerParameters, parameter_names, parameters_from_values

from launch_stand_ins import LaunchConfiguration, Recorded, load_launch_file

REPO = Path(__file__).resolve().parents[1]
LAUNCH_FILE = REPO / "launch" / "tracker.launch.py"
CONFIG_FILE = REPO / "config" / "tracker.yaml"
EXPECTED_ARGUMENTS = {"image_topic", "model", "checkpoint", "device", "compressed", "params_file", "click_topic",
                      "namespace", "use_depth", "depth_topic", "camera_info_topic", "server"}


def _declared_arguments():
    """name -> (default, description) of every DeclareLaunchArgument(...) in the launch file."""
    found = {}
    for node in ast.walk(ast.parse(LAUNCH_FILE.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "DeclareLaunchArgument":
            name = ast.literal_eval(node.args[0])
            keywords = {k.arg: k.value for k in node.keywords}
            default = keywords.get("default_value")
            description = keywords.get("description")
            found[name] = (ast.literal_eval(default) if isinstance(default, ast.Constant) else default,
                           ast.literal_eval(description) if description is not None else None)
    return found


def test_launch_file_declares_the_documented_arguments():
    arguments = _declared_arguments()
    assert set(arguments) == EXPECTED_ARGUMENTS
    for name, (_, description) in arguments.items():
        assert description, f"launch argument {name} has no description"
    assert arguments["image_topic"][0] == "/camera/color/image_raw"
    assert arguments["click_topic"][0] == "~/overlay_mouse_left"
    for name in ("model", "checkpoint", "device", "compressed", "use_depth", "depth_topic", "camera_info_topic",
                 "server"):
        assert arguments[name][0] == "", f"{name} must default to the params file's value"


# ------------------------------------------------------------------------- stand-ins for launch
@pytest.fixture
def launch_module(monkeypatch):
    """Import the launch file with fake launch, launch_ros and ament_index_python modules."""
    fakes = {
        "launch": {"LaunchDescription": Recorded},
        "launch.actions": {"DeclareLaunchArgument": Recorded, "OpaqueFunction": Recorded},
        "launch.substitutions": {"LaunchConfiguration": LaunchConfiguration},
        "launch_ros": {},
        "launch_ros.actions": {"Node": Recorded},
        "ament_index_python": {},
        "ament_index_python.packages": {"get_package_share_directory": lambda package: f"/opt/share/{package}"},
    }
    return load_launch_file(LAUNCH_FILE, "tracker_launch", fakes, monkeypatch)


def _start(launch_module, **given):
    description = launch_module["generate_launch_description"]()
    actions = description.args[0]
    defaults = {a.args[0]: a.kwargs["default_value"] for a in actions if a.args}
    assert defaults["params_file"] == "/opt/share/sam2_ros/config/tracker.yaml"
    opaque = [a for a in actions if "function" in a.kwargs]
    assert len(opaque) == 1
    context = types.SimpleNamespace(launch_configurations={**defaults, **given})
    (node,) = opaque[0].kwargs["function"](context)
    return node.kwargs


def test_launch_file_starts_the_node_with_remappings_and_overrides(launch_module):
    node = _start(launch_module)
    assert (node["package"], node["executable"], node["name"]) == ("sam2_ros", "tracker_node", "tracker_node")
    assert node["parameters"] == ["/opt/share/sam2_ros/config/tracker.yaml"]  # nothing overridden
    assert node["remappings"] == [("image", "/camera/color/image_raw"), ("~/click", "~/overlay_mouse_left")]

    node = _start(launch_module, image_topic="/robot/camera/image", model="sam2.1_hiera_small",
                  checkpoint="/ckpt/small.pt", device="cuda", compressed="true", click_topic="",
                  params_file=str(CONFIG_FILE))
    assert node["parameters"] == [str(CONFIG_FILE), {"model": "sam2.1_hiera_small", "checkpoint": "/ckpt/small.pt",
                                                     "device": "cuda", "compressed": True}]
    assert node["remappings"] == [("image", "/robot/camera/image")]

    # A RealSense's aligned depth: use_depth on, depth and camera_info remapped.
    node = _start(launch_module, use_depth="true", depth_topic="/cam/aligned_depth_to_color/image_raw",
                  camera_info_topic="/cam/color/camera_info", click_topic="")
    assert node["parameters"][1:] == [{"use_depth": True}]
    assert node["remappings"] == [("image", "/camera/color/image_raw"),
                                  ("depth", "/cam/aligned_depth_to_color/image_raw"),
                                  ("camera_info", "/cam/color/camera_info")]

    # The model in a server.
    node = _start(launch_module, server="ipc:///tmp/sam2.sock")
    assert node["parameters"][1:] == [{"server": "ipc:///tmp/sam2.sock"}]


@pytest.mark.parametrize("name", ["compressed", "use_depth"])
def test_boolean_launch_arguments_take_true_false_1_0_and_refuse_anything_else(launch_module, name):
    for text, value in [("true", True), ("True", True), (" TRUE ", True), ("1", True),
                        ("false", False), ("False", False), ("0", False)]:
        assert _start(launch_module, **{name: text})["parameters"][1:] == [{name: value}], text
    for typo in ("ture", "on", "yes", "no", "2", "true1"):
        with pytest.raises(ValueError) as error:
            _start(launch_module, **{name: typo})
        assert str(error.value) == f"launch argument {name} must be true or false (or 1 / 0), got {typo!r}"


def test_launch_file_applies_the_params_file_to_a_namespaced_node(launch_module, tmp_path):
    # A `tracker_node:` key means /tracker_node to ROS: in a namespace its values are passed as a dict.
    params_file = tmp_path / "params.yaml"
    params_file.write_text("tracker_node:\n  ros__parameters:\n    max_objects: 7\n    overlay: false\n")
    node = _start(launch_module, params_file=str(params_file), namespace="robot", device="cpu")
    assert node["namespace"] == "robot"
    assert node["parameters"] == [str(params_file), {"max_objects": 7, "overlay": False}, {"device": "cpu"}]
    # Every override is a real node parameter.
    overridable = set(launch_module["OVERRIDES"])
    assert overridable <= set(parameter_names())


def test_config_file_holds_exactly_the_node_parameters_with_valid_values():
    config = yaml.safe_load(CONFIG_FILE.read_text())
    assert list(config) == ["tracker_node"]
    values = config["tracker_node"]["ros__parameters"]
    # Every parameter, except the tracking options the model's YAML gives: those are documented
    # in comments, so that a model's own values (e.g. fill_hole_area: 0) take effect.
    commented = set(model_option_names())
    assert set(values) == set(parameter_names()) - commented
    for name in commented:
        assert f"# {name}:" in CONFIG_FILE.read_text()
    params = parameters_from_values(values)
    # The file documents the defaults: a node without it behaves the same.
    assert params == TrackerParameters()
