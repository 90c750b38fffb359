"""The multi-camera set-up read by ``launch/multi_camera.launch.py``: one ``sam2-server`` and one
tracker node per camera topic, every node a client of that server (ROS-free, checked here so a
bad config file fails the launch with a sentence naming the problem).

Config file (config/multi_camera.yaml)::

    server:                      # the sam2-server command line (docs/node.md)
      bind: "ipc:///tmp/sam2.sock"
      model: "default"
      checkpoint: ""
      device: "auto"
      dtype: "float32"
      max_streams: 8
    cameras:                     # one tracker node per entry; name = its namespace
      - {name: front, image_topic: /front/camera/color/image_raw}
      - {name: rear, image_topic: /rear/camera/color/image_raw}
    tracker_params_file: ""      # parameters for every tracker node; "" = the installed config/tracker.yaml
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from typing import Any, Dict, List

import yaml

from sam2_server.config import ServerConfig as ServerSettings

# The server's own defaults (the one source its command line takes them from too): the options a
# config file leaves out are passed to the server as it would take them anyway.
SERVER_DEFAULTS = ServerSettings()
# A ROS name token: the camera's namespace.
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


class MultiCameraConfigError(ValueError):
    """A multi-camera config that cannot be launched (the message names the entry)."""


@dataclass
class ServerConfig:
    """The ``sam2-server`` command line: where it listens and which model it runs for every camera."""

    bind: str = SERVER_DEFAULTS.bind
    model: str = SERVER_DEFAULTS.model
    checkpoint: str = ""  # empty: not passed (the server's default: the bundled weights for "default")
    device: str = SERVER_DEFAULTS.device
    dtype: str = SERVER_DEFAULTS.dtype
    max_streams: int = SERVER_DEFAULTS.max_streams

    def arguments(self) -> List[str]:
        """Command-line arguments for ``sam2-server`` (empty values left to the server's defaults)."""
        args = ["--bind", self.bind, "--model", self.model, "--device", self.device, "--dtype", self.dtype,
                "--max-streams", str(self.max_streams)]
        if self.checkpoint:
            args += ["--checkpoint", self.checkpoint]
        return args


@dataclass
class Camera:
    """One camera: its tracker node runs in namespace ``name`` and subscribes to ``image_topic``."""

    name: str
    image_topic: str


@dataclass
class MultiCameraConfig:
    server: ServerConfig = field(default_factory=ServerConfig)
    cameras: List[Camera] = field(default_factory=list)
    tracker_params_file: str = ""


def camera_name(topic: str) -> str:
    """A namespace for a topic given without a name: its first segment (``/front/color/image_raw``
    -> ``front``), made a valid ROS name."""
    first = next((part for part in topic.split("/") if part), "")
    name = re.sub(r"[^A-Za-z0-9_]", "_", first)
    return name if _NAME.match(name) else f"camera_{name}".rstrip("_")


def cameras_from_topics(text: str) -> List[Camera]:
    """The ``cameras`` launch argument: comma-separated image topics, each optionally ``name=topic``."""
    cameras = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, _, topic = item.rpartition("=")
        cameras.append(Camera(name.strip() or camera_name(topic.strip()), topic.strip()))
    return cameras


def _server(values: Any) -> ServerConfig:
    if values is None:
        return ServerConfig()
    if not isinstance(values, dict):
        raise MultiCameraConfigError(f"server must be a mapping of sam2-server options, got {values!r}")
    known = {f.name: f.type for f in fields(ServerConfig)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise MultiCameraConfigError(f"server: unknown option(s) {unknown}; known: {sorted(known)}")
    server = ServerConfig(**{k: v for k, v in values.items() if v is not None})
    if not isinstance(server.max_streams, int) or isinstance(server.max_streams, bool) or server.max_streams < 1:
        raise MultiCameraConfigError(f"server.max_streams must be a positive integer, got {server.max_streams!r}")
    for name in ("bind", "model", "checkpoint", "device", "dtype"):
        setattr(server, name, str(getattr(server, name)).strip())
    if not server.bind:
        raise MultiCameraConfigError("server.bind is empty: give e.g. ipc:///tmp/sam2.sock or tcp://127.0.0.1:5555")
    return server


def _cameras(values: Any) -> List[Camera]:
    if not isinstance(values, list):
        raise MultiCameraConfigError(f"cameras must be a list of {{name, image_topic}}, got {values!r}")
    cameras = []
    for index, entry in enumerate(values):
        if isinstance(entry, str):
            entry = {"image_topic": entry}
        if not isinstance(entry, dict) or not str(entry.get("image_topic") or "").strip():
            raise MultiCameraConfigError(f"cameras[{index}] needs an image_topic, got {entry!r}")
        topic = str(entry["image_topic"]).strip()
        cameras.append(Camera(str(entry.get("name") or camera_name(topic)).strip(), topic))
    return cameras


def check_cameras(cameras: List[Camera]) -> List[Camera]:
    if not cameras:
        raise MultiCameraConfigError("no cameras: list them in the config file's cameras: or the cameras argument")
    seen: Dict[str, str] = {}
    for camera in cameras:
        if not camera.image_topic.strip():  # `cameras:=front=`: a node that would wait on no topic
            raise MultiCameraConfigError(f"camera {camera.name!r} has no image topic: give name=topic, "
                                         "e.g. front=/front/camera/color/image_raw")
        if not _NAME.match(camera.name):
            raise MultiCameraConfigError(f"camera name {camera.name!r} (topic {camera.image_topic}) is not a valid "
                                         "ROS namespace: letters, digits and _, starting with a letter")
        if camera.name in seen:
            raise MultiCameraConfigError(f"cameras {seen[camera.name]} and {camera.image_topic} both get the "
                                         f"namespace {camera.name!r}: give them distinct names (name=topic)")
        seen[camera.name] = camera.image_topic
    return cameras


def load_config(path: str, cameras_override: str = "", bind_override: str = "") -> MultiCameraConfig:
    """Read and check the config file; ``cameras_override`` (launch argument) replaces its camera list."""
    try:
        with open(path) as handle:
            values = yaml.safe_load(handle) or {}
    except (OSError, yaml.YAMLError) as error:
        raise MultiCameraConfigError(f"multi-camera config {path}: {error}") from None
    if not isinstance(values, dict):
        raise MultiCameraConfigError(f"multi-camera config {path} must be a mapping (server, cameras, ...)")
    unknown = sorted(set(values) - {"server", "cameras", "tracker_params_file"})
    if unknown:
        raise MultiCameraConfigError(f"multi-camera config {path}: unknown key(s) {unknown}")
    server = _server(values.get("server"))
    if bind_override.strip():
        server.bind = bind_override.strip()
    cameras = cameras_from_topics(cameras_override) if cameras_override.strip() else _cameras(values.get("cameras"))
    return MultiCameraConfig(server, check_cameras(cameras), str(values.get("tracker_params_file") or "").strip())


def _node_key_pattern(key: str) -> "re.Pattern[str]":
    """A params-file key as ROS matches it against a node's full name: ``*`` is one name token,
    ``**`` any number of them (none included); a key without a leading ``/`` is absolute all the same."""
    parts = {"**": "(/[^/]+)*", "*": "/[^/]+"}
    return re.compile("".join(parts.get(token, "/" + re.escape(token)) for token in key.split("/") if token))


def _flat(values: Dict[str, Any], prefix: str = "") -> Dict[str, Any]:
    """Nested parameter names as ROS reads them from a file (``a: {b: 1}`` is ``a.b``), so that two
    sections merge name by name."""
    flat: Dict[str, Any] = {}
    for name, value in values.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{name}."))
        else:
            flat[f"{prefix}{name}"] = value
    return flat


def tracker_parameters(params_file: str, node_name: str, namespace: str) -> Dict[str, Any]:
    """The parameters a tracker params file gives the node ``node_name`` in ``namespace``, as one dict.

    As ROS reads a params file: every section whose key matches the node's full name applies, in
    the file's order, a later one winning (``/**``, ``/**/tracker_node``, ``/front/tracker_node``,
    ``/*/tracker_node``). One difference: the key ``tracker_node``, which ROS reads as
    ``/tracker_node``, applies in any namespace here, as the single-camera launch file makes it
    do, so config/tracker.yaml serves every camera. A file with no section for the node is refused:
    the node would otherwise run on defaults without a word.
    """
    try:
        with open(params_file) as handle:
            sections = yaml.safe_load(handle) or {}
    except (OSError, yaml.YAMLError) as error:
        raise MultiCameraConfigError(f"tracker params file {params_file}: {error}") from None
    if not isinstance(sections, dict):
        raise MultiCameraConfigError(f"tracker params file {params_file} must map node names to their "
                                     f"ros__parameters, got {type(sections).__name__}")
    full_name = "/" + "/".join(part for part in (*namespace.split("/"), node_name) if part)
    merged: Dict[str, Any] = {}
    matched = False
    for key, section in sections.items():
        key = str(key)
        if key != node_name and not _node_key_pattern(key).fullmatch(full_name):
            continue
        values = section.get("ros__parameters") if isinstance(section, dict) else None
        if not isinstance(values, dict):
            raise MultiCameraConfigError(f"tracker params file {params_file}: section {key!r} must hold "
                                         "ros__parameters: a mapping of parameter names to values")
        merged.update(_flat(values))
        matched = True
    if not matched:
        raise MultiCameraConfigError(
            f"tracker params file {params_file} has no section for {full_name}: key its parameters "
            f"{node_name}, /**/{node_name} or /** (keys found: {', '.join(map(str, sections)) or 'none'})")
    return merged
