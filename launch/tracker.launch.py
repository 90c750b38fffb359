"""Launch the SAM 2 tracker node on a camera topic.

    # on a robot: an official SAM 2.1 checkpoint
    ros2 launch sam2_ros tracker.launch.py image_topic:=/camera/color/image_raw \\
        model:=sam2.1_hiera_tiny checkpoint:=$HOME/checkpoints/sam2.1_hiera_tiny.pt device:=cuda
    # trying it out: the small model bundled with the package (model "default", the params file's default)
    ros2 launch sam2_ros tracker.launch.py image_topic:=/camera/color/image_raw
    # with 3D from a RealSense's aligned depth (rs_launch.py align_depth.enable:=true)
    ros2 launch sam2_ros tracker.launch.py use_depth:=true image_topic:=/camera/camera/color/image_raw \
        depth_topic:=/camera/camera/aligned_depth_to_color/image_raw \
        camera_info_topic:=/camera/camera/color/camera_info
    # the model in a running sam2-server (this node then imports no PyTorch; docs/node.md)
    ros2 launch sam2_ros tracker.launch.py image_topic:=/camera/color/image_raw server:=ipc:///tmp/sam2.sock

Parameters come from ``params_file`` (default: the installed config/tracker.yaml); ``model``,
``checkpoint``, ``device``, ``compressed``, ``use_depth`` and ``server`` override it when given (non-empty).

Clicks: the node listens on ``~/click`` remapped to ``click_topic``. The default is where
rqt_image_view publishes clicks on the node's own overlay (``<overlay topic>_mouse_left``), so
``ros2 run rqt_image_view rqt_image_view /tracker_node/overlay`` with "publish click location"
ticked tracks whatever you click.
"""

import os

import yaml
from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

NODE_NAME = "tracker_node"


def _boolean(text):
    """true / false (any case) or 1 / 0; anything else is refused, so that a typo (ture, on)
    stops the launch instead of quietly meaning false."""
    value = text.strip().lower()
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise ValueError(f"must be true or false (or 1 / 0), got {text!r}")


# Launch argument -> parameter it overrides (when non-empty), and how to read the text.
OVERRIDES = {
    "model": str,
    "checkpoint": str,
    "device": str,
    "compressed": _boolean,
    "use_depth": _boolean,
    "server": str,
}


def _overrides(arg):
    """The parameters the launch arguments given (non-empty) override; a bad value is named."""
    overrides = {}
    for name, parse in OVERRIDES.items():
        text = arg(name)
        if text.strip() == "":
            continue
        try:
            overrides[name] = parse(text)
        except ValueError as error:
            raise ValueError(f"launch argument {name} {error}") from None
    return overrides


def _parameters_from_file(params_file, namespace):
    """The params file, plus (for a namespaced node) its ``tracker_node:`` section as a dict.

    A params-file key ``tracker_node`` means ``/tracker_node`` to ROS, so a node in a namespace
    would silently ignore it; values given as a dict apply whatever the namespace.
    """
    parameters = [params_file]
    if namespace.strip("/"):
        with open(params_file) as handle:
            sections = yaml.safe_load(handle) or {}
        own = (sections.get(NODE_NAME) or {}).get("ros__parameters")
        if own:
            parameters.append(own)
    return parameters


def _tracker_node(context, *args, **kwargs):
    def arg(name):
        return LaunchConfiguration(name).perform(context)

    overrides = _overrides(arg)
    parameters = _parameters_from_file(arg("params_file"), arg("namespace")) + ([overrides] if overrides else [])
    # "image" is the base topic; with compressed:=true the node subscribes to <image>/compressed,
    # as image_transport does, so one remapping serves both.
    remappings = [("image", arg("image_topic"))]
    if arg("click_topic").strip():
        remappings.append(("~/click", arg("click_topic")))
    # use_depth's inputs (docs/node.md, 3D from depth); "depth" also moves depth/compressedDepth.
    remappings += [(name, arg(f"{name}_topic")) for name in ("depth", "camera_info") if arg(f"{name}_topic").strip()]
    return [
        Node(
            package="sam2_ros",
            executable="tracker_node",
            name=NODE_NAME,
            namespace=arg("namespace"),
            output="screen",
            emulate_tty=True,
            parameters=parameters,
            remappings=remappings,
        )
    ]


def generate_launch_description():
    default_params = os.path.join(get_package_share_directory("sam2_ros"), "config", "tracker.yaml")
    return LaunchDescription([
        DeclareLaunchArgument("image_topic", default_value="/camera/color/image_raw",
                              description="camera image topic (sensor_msgs/Image; with compressed:=true the "
                                          "node subscribes to <image_topic>/compressed)"),
        DeclareLaunchArgument("model", default_value="",
                              description="default (the bundled small model), a released model name "
                                          "(sam2.1_hiera_tiny, ...) or a YAML config path; empty: from params_file"),
        DeclareLaunchArgument("checkpoint", default_value="",
                              description="official checkpoint .pt path (for model default: none needed); "
                                          "empty: from params_file"),
        DeclareLaunchArgument("device", default_value="",
                              description="auto, cpu, cuda or cuda:N; empty: from params_file"),
        DeclareLaunchArgument("compressed", default_value="",
                              description="true: subscribe to <image_topic>/compressed; empty: from params_file"),
        DeclareLaunchArgument("params_file", default_value=default_params,
                              description="YAML parameter file for the node"),
        DeclareLaunchArgument("click_topic", default_value="~/overlay_mouse_left",
                              description="geometry_msgs/PointStamped clicks that start a new object "
                                          "(rqt_image_view's <image topic>_mouse_left); empty: ~/click"),
        DeclareLaunchArgument("namespace", default_value="", description="namespace of the node"),
        DeclareLaunchArgument("server", default_value="",
                              description="address of a running sam2-server (ipc:///tmp/sam2.sock, tcp://host:5555) "
                                          "that runs the model; empty: from params_file (default: in the node)"),
        DeclareLaunchArgument("use_depth", default_value="",
                              description="true: 3D of each object from depth_topic and camera_info_topic; "
                                          "empty: from params_file"),
        DeclareLaunchArgument("depth_topic", default_value="",
                              description="depth aligned to the colour image (sensor_msgs/Image 16UC1/32FC1); "
                                          "empty: the node's relative 'depth'"),
        DeclareLaunchArgument("camera_info_topic", default_value="",
                              description="the colour camera's sensor_msgs/CameraInfo; empty: the node's relative "
                                          "'camera_info'"),
        OpaqueFunction(function=_tracker_node),
    ])
