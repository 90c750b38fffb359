"""`colcon build` of this repository, as on a robot, installs a complete ROS 2 package.

The repository is symlinked into a temporary workspace (ws/src/sam2_ros) and built with the colcon
and ROS 2 of the environment running the tests: the dev venv's PyPI Kilted (the venv is the
underlay), or a sourced ROS installation when AMENT_PREFIX_PATH is set. Then the install space is
checked file by file, and used: `source install/setup.bash`, import the interfaces and the
executables' modules from it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def console_scripts() -> dict[str, str]:
    """name -> "module:function", as declared in setup.py (the single list CMake mirrors)."""
    text = (REPO / "setup.py").read_text()
    return dict(re.findall(r'"([\w.-]+)\s*=\s*([\w.]+:\w+)"', text))


def build_env() -> dict[str, str]:
    env = dict(os.environ)
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    if not env.get("AMENT_PREFIX_PATH"):
        # The dev venv is the ament prefix of ROS 2 Kilted from PyPI.
        env["AMENT_PREFIX_PATH"] = sys.prefix
        env["CMAKE_PREFIX_PATH"] = sys.prefix
    env.pop("COLCON_PREFIX_PATH", None)
    env.setdefault("CMAKE_BUILD_PARALLEL_LEVEL", str(os.cpu_count() or 2))
    return env


@pytest.fixture(scope="module")
def colcon_install(tmp_path_factory):
    colcon = shutil.which("colcon", path=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""))
    assert colcon, "colcon not found (tools/setup_dev.sh installs it into .venv)"
    ws = tmp_path_factory.mktemp("colcon_ws")
    (ws / "src").mkdir()
    (ws / "src" / "sam2_ros").symlink_to(REPO, target_is_directory=True)
    command = [
        colcon, "--log-base", str(ws / "log"), "build",
        "--base-paths", str(ws / "src"),
        "--build-base", str(ws / "build"),
        "--install-base", str(ws / "install"),
        "--event-handlers", "console_cohesion+",
        "--cmake-args", "-DBUILD_TESTING=OFF", f"-DPython3_EXECUTABLE={sys.executable}",
    ]
    result = subprocess.run(command, cwd=ws, env=build_env(), capture_output=True, text=True, timeout=540)
    assert result.returncode == 0, f"colcon build failed:\n{result.stdout[-6000:]}\n{result.stderr[-3000:]}"
    return ws / "install"


@pytest.mark.timeout(600)
def test_install_space_has_everything(colcon_install):
    prefix = colcon_install / "sam2_ros"
    share = prefix / "share" / "sam2_ros"
    for relative in ["package.xml", "launch/tracker.launch.py", "config/tracker.yaml",
                     "msg/TrackedObject.msg", "msg/TrackedObjects.msg", "msg/Prompt.msg",
                     "srv/AddObject.srv", "srv/RemoveObject.srv", "srv/Discover.srv"]:
        assert (share / relative).is_file(), f"missing share/sam2_ros/{relative}"
    for name in ["launch", "config"]:
        source = sorted(p.relative_to(REPO / name) for p in (REPO / name).rglob("*") if p.is_file()
                        and "__pycache__" not in p.parts)
        installed = sorted(p.relative_to(share / name) for p in (share / name).rglob("*") if p.is_file()
                           and "__pycache__" not in p.parts)
        assert installed == source, f"share/sam2_ros/{name} differs from {name}/"
    assert (prefix / "share" / "ament_index" / "resource_index" / "packages" / "sam2_ros").is_file()
    assert (colcon_install / "setup.bash").is_file()

    # ros2 run sam2_ros <name>: executables in lib/sam2_ros, one per console script of setup.py.
    scripts = console_scripts()
    assert set(scripts) == {"tracker_node", "sam2-eval", "sam2-eval-compare", "sam2-make-bag", "sam2-train",
                            "sam2-server"}
    lib = prefix / "lib" / "sam2_ros"
    assert sorted(p.name for p in lib.iterdir()) == sorted(scripts)
    for name, target in scripts.items():
        script = lib / name
        assert os.access(script, os.X_OK), f"lib/sam2_ros/{name} is not executable"
        text = script.read_text()
        module, function = target.split(":")
        assert text.startswith("#!/") and f"from {module} import {function}" in text, text
        compile(text, str(script), "exec")
        # `colcon build --symlink-install` links lib/sam2_ros/<name> to the build tree's copy.
        built = colcon_install.parent / "build" / "sam2_ros" / "scripts" / name
        assert os.access(built, os.X_OK), f"{built} is not executable (breaks --symlink-install)"

    # The Python packages: ours and rosidl's in one sam2_ros directory, our __init__.py on top.
    purelib = sysconfig.get_path("purelib", vars={"base": str(prefix), "platbase": str(prefix)})
    site = Path(purelib)
    assert site.is_dir(), f"no {site}: {sorted(str(p.relative_to(prefix)) for p in prefix.glob('lib/*/*'))}"
    assert "extend_path" in (site / "sam2_ros" / "__init__.py").read_text()
    for relative in ["sam2_ros/msg/__init__.py", "sam2_ros/srv/__init__.py", "sam2_model/__init__.py"]:
        assert (site / relative).is_file(), f"missing {relative} in {site}"
    assert list((site / "sam2_ros").glob("sam2_ros_s__rosidl_typesupport_c*.so"))
    for package in ["sam2_ros", "sam2_model", "sam2_server"]:
        source = {p.relative_to(REPO) for p in (REPO / package).rglob("*.py") if "__pycache__" not in p.parts}
        installed = {p.relative_to(site) for p in (site / package).rglob("*.py") if "__pycache__" not in p.parts}
        assert source <= installed, f"not installed: {sorted(map(str, source - installed))}"
    for name, target in scripts.items():
        module = target.split(":")[0]
        assert (site / (module.replace(".", "/") + ".py")).is_file(), f"{name}: no module {module} installed"


@pytest.mark.timeout(600)
def test_sourced_install_space_works(colcon_install, tmp_path):
    """With install/setup.bash sourced, the interfaces and the executables' modules import from the
    install space (not from the working tree or the dev venv), and messages serialise."""
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import importlib, sys\n"
        "from rclpy.serialization import deserialize_message, serialize_message\n"
        "import sam2_ros, sam2_ros.msg\n"
        "from sam2_ros.msg import TrackedObject, TrackedObjects\n"
        "from sam2_ros.srv import AddObject, RemoveObject\n"
        "from geometry_msgs.msg import Point, Vector3\n"
        "obj = TrackedObject(id=3, area=12, has_position=True, position=Point(x=0.5, y=-0.25, z=1.5),\n"
        "                    size=Vector3(x=0.2, y=0.1, z=0.05), num_points=40)\n"
        "msg = TrackedObjects(frame_index=7, objects=[obj])\n"
        "assert deserialize_message(serialize_message(msg), TrackedObjects) == msg\n"
        "for target in sys.argv[1:]:\n"
        "    module, function = target.split(':')\n"
        "    assert callable(getattr(importlib.import_module(module), function)), target\n"
        "print(sam2_ros.__file__)\n"
        "print(sam2_ros.msg.__file__)\n"
        "print(importlib.import_module('sam2_model').__file__)\n"
    )
    env = build_env()
    env.pop("PYTHONPATH", None)
    targets = " ".join(console_scripts().values())
    result = subprocess.run(
        ["bash", "-c", f'source "{colcon_install}/setup.bash" && "{sys.executable}" "{probe}" {targets}'],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    files = result.stdout.split()[-3:]
    for file in files:
        assert Path(file).resolve().is_relative_to(colcon_install.resolve()), (file, colcon_install)
