"""Packaging and the dev environment.

- `pip install .` (here: the wheel pip builds) carries sam2_model and sam2_ros with every module,
  the console scripts and the declared requirements, and sam2_model imports from it.
- The dev venv made by tools/setup_dev.sh works with nothing sourced: rclpy, sam2_model and the
  generated interfaces import; sam2_ros comes from the working tree (a module added there imports
  at once, no reinstall) while its msg/srv come from the venv.
"""

from __future__ import annotations

import email
import os
import shutil
import subprocess
import sys
import uuid
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DEV_VENV = REPO / ".venv"
EXPECTED_SCRIPTS = {
    "tracker_node": "sam2_ros.tracker_node:main",
    "sam2-eval": "sam2_ros.evaluation.cli:main",
    "sam2-make-bag": "sam2_ros.evaluation.make_bag:main",
    "sam2-eval-compare": "sam2_ros.evaluation.compare:main",
    "sam2-train": "sam2_model.train.cli:main",
    "sam2-server": "sam2_server.cli:main",
}


def python_sources(package: str) -> set[str]:
    return {p.relative_to(REPO).as_posix() for p in (REPO / package).rglob("*.py") if "__pycache__" not in p.parts}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    # Build from a copy, so that setuptools' build/ and *.egg-info stay out of the working tree.
    src = tmp_path_factory.mktemp("src")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ["setup.py", "pyproject.toml", "package.xml", "MANIFEST.in", "README.md"]:
        if (REPO / name).exists():
            shutil.copy2(REPO / name, src / name)
    for name in ["sam2_model", "sam2_ros", "sam2_server"]:
        shutil.copytree(REPO / name, src / name, ignore=ignore)
    out = tmp_path_factory.mktemp("wheel")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--disable-pip-version-check",
         "-w", str(out), str(src)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (built,) = out.glob("sam2_ros-*.whl")
    return built


def test_wheel_contents_and_metadata(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        (metadata_name,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        metadata = email.message_from_bytes(archive.read(metadata_name))
        (entry_points_name,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        entry_points = archive.read(entry_points_name).decode()
    for package in ["sam2_model", "sam2_ros", "sam2_server"]:
        missing = python_sources(package) - names
        assert not missing, f"not in the wheel: {sorted(missing)}"
    assert not any(n.startswith(("tests/", "tools/", "launch/", "msg/")) for n in names)
    assert metadata["Requires-Python"] == ">=3.10"
    requires = {r.split(";")[0].replace(" ", "") for r in metadata.get_all("Requires-Dist")}
    assert {"torch>=2.1", "numpy", "pyyaml"} <= requires
    for name, target in EXPECTED_SCRIPTS.items():
        assert f"{name} = {target}" in entry_points


def test_installed_wheel_gives_sam2_model(wheel, tmp_path):
    target = tmp_path / "site"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--disable-pip-version-check", "--target",
         str(target), str(wheel)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(target)
    result = subprocess.run([sys.executable, "-c", "import sam2_model; print(sam2_model.__file__)"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.split()[-1]).resolve().is_relative_to(target.resolve())


# --- the dev venv --------------------------------------------------------------------------------

dev_venv_only = pytest.mark.skipif(
    Path(sys.prefix).resolve() != DEV_VENV.resolve(),
    reason=f"checks the dev venv made by tools/setup_dev.sh; this is {sys.prefix}")


def bare_env() -> dict[str, str]:
    """The environment of a fresh shell: nothing ROS sourced or exported."""
    drop = {"PYTHONPATH", "AMENT_PREFIX_PATH", "CMAKE_PREFIX_PATH", "COLCON_PREFIX_PATH", "LD_LIBRARY_PATH",
            "_ROS_WHEELS_BOOTSTRAP_COMPLETE", "VIRTUAL_ENV", "ROS_DISTRO"}
    return {k: v for k, v in os.environ.items() if k not in drop}


@dev_venv_only
def test_dev_venv_imports_with_nothing_sourced(tmp_path):
    code = (
        "import rclpy, sam2_model\n"
        "from sam2_ros.msg import TrackedObjects, TrackedObject, Prompt\n"
        "from sam2_ros.srv import AddObject, RemoveObject\n"
        "from rclpy.serialization import serialize_message, deserialize_message\n"
        "msg = TrackedObjects(frame_index=3, objects=[TrackedObject(id=1)])\n"
        "assert deserialize_message(serialize_message(msg), TrackedObjects) == msg\n"
        "import sam2_ros, sam2_ros.msg\n"
        "print(sam2_ros.__file__); print(sam2_ros.msg.__file__); print(sam2_model.__file__)\n"
    )
    result = subprocess.run([str(DEV_VENV / "bin" / "python"), "-c", code], cwd=tmp_path, env=bare_env(),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    package, msg, model = (Path(p) for p in result.stdout.split()[-3:])
    assert package.resolve() == (REPO / "sam2_ros" / "__init__.py").resolve()  # the working tree's code ...
    assert model.resolve() == (REPO / "sam2_model" / "__init__.py").resolve()
    assert msg.resolve().is_relative_to(DEV_VENV.resolve())  # ... with the venv's generated msg
    assert not (REPO / "sam2_ros" / "msg").exists(), "a sam2_ros/msg in the working tree would shadow the interfaces"


@dev_venv_only
def test_new_working_tree_module_imports_without_reinstall(tmp_path):
    name = f"_probe_{uuid.uuid4().hex[:12]}"
    module = REPO / "sam2_ros" / f"{name}.py"
    module.write_text("VALUE = 42\n")
    try:
        code = (f"from sam2_ros import {name}\n"
                f"from sam2_ros.msg import TrackedObjects\n"
                f"print({name}.VALUE, {name}.__file__)\n")
        result = subprocess.run([str(DEV_VENV / "bin" / "python"), "-c", code], cwd=tmp_path, env=bare_env(),
                                capture_output=True, text=True, timeout=120)
    finally:
        module.unlink()
    assert result.returncode == 0, result.stderr
    value, file = result.stdout.split()[-2:]
    assert value == "42" and Path(file).resolve() == module.resolve()


@dev_venv_only
def test_dev_venv_console_scripts():
    for name, target in EXPECTED_SCRIPTS.items():
        script = DEV_VENV / "bin" / name
        assert os.access(script, os.X_OK), f"{script} missing"
        module, function = target.split(":")
        assert module in script.read_text() and function in script.read_text()


@dev_venv_only
def test_dev_venv_is_an_ament_prefix_for_sam2_ros(tmp_path):
    """With AMENT_PREFIX_PATH=.venv, ament finds sam2_ros: its share/ (launch/ and config/ linked to
    the working tree, never stale) and its lib/sam2_ros executables."""
    code = ("from ament_index_python.packages import get_package_prefix, get_package_share_directory\n"
            "print(get_package_share_directory('sam2_ros')); print(get_package_prefix('sam2_ros'))\n")
    env = bare_env()
    env["AMENT_PREFIX_PATH"] = str(DEV_VENV)
    result = subprocess.run([str(DEV_VENV / "bin" / "python"), "-c", code], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    share, prefix = (Path(p) for p in result.stdout.split()[-2:])
    for name in ["launch", "config"]:
        assert (share / name).resolve() == (REPO / name).resolve()
    assert (share / "config" / "tracker.yaml").is_file()
    for name in EXPECTED_SCRIPTS:
        assert os.access(prefix / "lib" / "sam2_ros" / name, os.X_OK)
