"""Several cameras, one SAM 2 model: one ``sam2-server`` plus one tracker node per camera topic.

    ros2 launch sam2_ros multi_camera.launch.py                        # cameras from config/multi_camera.yaml
    ros2 launch sam2_ros multi_camera.launch.py cameras:=front=/front/image_raw,/rear/image_raw
    ros2 launch sam2_ros multi_camera.launch.py config:=/path/to/multi_camera.yaml bind:=tcp://127.0.0.1:5555

The server loads the model once (its options: the config's ``server:`` section); every tracker
node runs in its camera's namespace (``/<name>/tracker_node``) with the parameter ``server`` set
to the server's address, so the nodes import no PyTorch and share the GPU through the server. A
node started before the server is up waits for it (docs/node.md, "Model in a server").
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.substitutions import ExecutableInPackage

from sam2_ros.multi_camera import load_config, tracker_parameters

NODE_NAME = "tracker_node"


def _processes(context, *args, **kwargs):
    def arg(name):
        return LaunchConfiguration(name).perform(context)

    config = load_config(arg("config"), cameras_override=arg("cameras"), bind_override=arg("bind"))
    share = get_package_share_directory("sam2_ros")
    params_file = config.tracker_params_file or os.path.join(share, "config", "tracker.yaml")
    # Each node's parameters as a dict (the file's /**, /**/tracker_node, ... sections merged as ROS
    # merges them): a file key `tracker_node` would mean /tracker_node and miss the namespaced nodes.
    parameters = {camera.name: {**tracker_parameters(params_file, NODE_NAME, camera.name),
                                "server": config.server.bind} for camera in config.cameras}
    server = ExecuteProcess(
        cmd=[ExecutableInPackage(executable="sam2-server", package="sam2_ros"), *config.server.arguments()],
        name="sam2_server", output="screen", emulate_tty=True)
    nodes = [
        Node(package="sam2_ros", executable="tracker_node", name=NODE_NAME, namespace=camera.name,
             output="screen", emulate_tty=True, parameters=[parameters[camera.name]],
             remappings=[("image", camera.image_topic)])
        for camera in config.cameras
    ]
    return [server, *nodes]


def generate_launch_description():
    default_config = os.path.join(get_package_share_directory("sam2_ros"), "config", "multi_camera.yaml")
    return LaunchDescription([
        DeclareLaunchArgument("config", default_value=default_config,
                              description="multi-camera YAML: server options, cameras, the nodes' params file"),
        DeclareLaunchArgument("cameras", default_value="",
                              description="comma-separated camera image topics, each optionally name=topic "
                                          "(the node's namespace); empty: the config file's cameras"),
        DeclareLaunchArgument("bind", default_value="",
                              description="the server's address (ipc:///tmp/sam2.sock, tcp://host:port); "
                                          "empty: the config file's server.bind"),
        OpaqueFunction(function=_processes),
    ])
