#!/usr/bin/env bash
# Development set-up without a ROS installation: `bash tools/setup_dev.sh` from anywhere.
#
# Creates .venv in the repository root with
#   - ROS 2 Kilted from the PyPI ros-kilted-* wheels (rclpy, Fast DDS, message packages, the
#     rosidl/ament CMake toolchain) and colcon, PyTorch (CPU) and the project's Python deps
#     (tools/requirements-dev.txt);
#   - this package's interfaces (msg/, srv/) built with CMake and installed into the venv's own
#     prefix (the venv is an ament prefix: lib/, share/, site-packages), so that
#     `.venv/bin/python -c "from sam2_ros.msg import TrackedObjects"` works with nothing sourced;
#   - sam2_ros and sam2_model as an editable install of the working tree (edits need no re-run).
#
# Idempotent: a re-run skips what is up to date (pip is skipped while tools/requirements-dev.txt
# is unchanged; CMake rebuilds only what changed). SAM2_SETUP_FORCE=1 forces the pip steps.
# Needs: Python >= 3.10 with its headers (Debian/Ubuntu: python3-dev python3-venv), a C/C++
# compiler, and access to PyPI. CMake >= 3.20 is taken from PATH or else installed from PyPI.
set -euo pipefail

START_S=$SECONDS
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
VPY="$VENV/bin/python"
PYTHON="${PYTHON:-python3}"
REQUIREMENTS="$ROOT/tools/requirements-dev.txt"
BUILD_DIR="$VENV/build/sam2_ros_interfaces"
JOBS="$(nproc 2>/dev/null || echo 2)"

log() { printf '[setup_dev] %s\n' "$*"; }
die() { printf '[setup_dev] ERROR: %s\n' "$*" >&2; exit 1; }

# A sourced ROS installation or another venv must not leak into the build or the venv's Python
# (e.g. /opt/ros/humble's PYTHONPATH holds rosidl modules for another Python version).
unset PYTHONPATH AMENT_PREFIX_PATH CMAKE_PREFIX_PATH COLCON_PREFIX_PATH LD_LIBRARY_PATH \
      _ROS_WHEELS_BOOTSTRAP_COMPLETE ROS_DISTRO ROS_VERSION ROS_PYTHON_VERSION VIRTUAL_ENV PYTHONHOME

# --- 1. the venv -----------------------------------------------------------------------------
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
  || die "$PYTHON is $("$PYTHON" --version 2>&1); Python >= 3.10 is needed (PYTHON=python3.x bash tools/setup_dev.sh)"
if ! "$VPY" -c 'pass' >/dev/null 2>&1; then
  log "creating $VENV"
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV" || die "python3 -m venv failed (Debian/Ubuntu: apt install python3-venv)"
fi
export PATH="$VENV/bin:$PATH"

STAMP_PIP="$VENV/.sam2_setup_pip"
want_pip="$(cat "$REQUIREMENTS"; "$VPY" --version)"
if [[ "${SAM2_SETUP_FORCE:-0}" != 0 || ! -f "$STAMP_PIP" || "$(cat "$STAMP_PIP")" != "$want_pip" ]]; then
  log "installing Python packages (ROS 2 Kilted wheels, torch, tools): tools/requirements-dev.txt"
  "$VPY" -m pip install --quiet --disable-pip-version-check --upgrade pip
  "$VPY" -m pip install --quiet --disable-pip-version-check -r "$REQUIREMENTS"
  printf '%s' "$want_pip" > "$STAMP_PIP"
else
  log "Python packages up to date"
fi

# --- 2. make the ROS wheels' CMake files usable here -----------------------------------------
# The wheels were built in a manylinux image: their CMake targets name that image's Python and
# NumPy include directories (/opt/python/cp3XX-cp3XX/...). Point them at this interpreter's.
"$VPY" - <<'EOF'
import pathlib, re, sys, sysconfig
import numpy

prefix = pathlib.Path(sys.prefix)
numpy_inc = numpy.get_include()
python_inc = sysconfig.get_paths()["include"]
if not (pathlib.Path(python_inc) / "Python.h").exists():
    sys.exit(f"[setup_dev] ERROR: {python_inc}/Python.h is missing: install this Python's headers "
             "(Debian/Ubuntu: apt install python3-dev)")
numpy_re = re.compile(r"/opt/python/cp3\d+-cp3\d+t?/lib/python3\.\d+t?/site-packages/numpy/(?:_core|core)/include")
python_re = re.compile(r"/opt/python/cp3\d+-cp3\d+t?/include/python3\.\d+t?")
changed = 0
for path in list(prefix.glob("share/*/cmake/*.cmake")) + list(prefix.glob("lib/cmake/**/*.cmake")):
    text = path.read_text()
    if "/opt/python/" not in text:
        continue
    new = python_re.sub(python_inc, numpy_re.sub(numpy_inc, text))
    if new != text:
        path.write_text(new)
        changed += 1
if changed:
    print(f"[setup_dev] pointed {changed} CMake files at {python_inc} and {numpy_inc}")
EOF

# --- 3. build the interfaces into the venv prefix --------------------------------------------
command -v cc >/dev/null 2>&1 || command -v gcc >/dev/null 2>&1 \
  || die "no C compiler (Debian/Ubuntu: apt install build-essential)"
command -v c++ >/dev/null 2>&1 || command -v g++ >/dev/null 2>&1 \
  || die "no C++ compiler (Debian/Ubuntu: apt install build-essential)"
cmake_ok() {
  command -v cmake >/dev/null 2>&1 && "$VPY" -c '
import re, subprocess, sys
v = re.search(r"(\d+)\.(\d+)", subprocess.run(["cmake", "--version"], capture_output=True, text=True).stdout)
sys.exit(not v or (int(v[1]), int(v[2])) < (3, 20))'
}
if ! cmake_ok; then
  log "no CMake >= 3.20 on PATH: installing cmake from PyPI into the venv"
  "$VPY" -m pip install --quiet --disable-pip-version-check "cmake>=3.20"
fi

export AMENT_PREFIX_PATH="$VENV" CMAKE_PREFIX_PATH="$VENV"
log "building msg/ and srv/ (CMake, $JOBS jobs) into $VENV"
cmake -S "$ROOT" -B "$BUILD_DIR" -Wno-dev --log-level=WARNING \
  -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_INSTALL_PREFIX="$VENV" \
  -DCMAKE_PREFIX_PATH="$VENV" \
  -DCMAKE_INSTALL_RPATH="$VENV/lib" \
  -DPython3_EXECUTABLE="$VPY" \
  -DPython3_FIND_VIRTUALENV=ONLY \
  -DBUILD_TESTING=OFF \
  -DSAM2_ROS_INTERFACES_ONLY=ON \
  >/dev/null
cmake --build "$BUILD_DIR" --parallel "$JOBS" >"$BUILD_DIR/build.log" 2>&1 \
  || { tail -n 60 "$BUILD_DIR/build.log" >&2; die "building the interfaces failed (log: $BUILD_DIR/build.log)"; }
cmake --install "$BUILD_DIR" >"$BUILD_DIR/install.log" 2>&1 \
  || { tail -n 30 "$BUILD_DIR/install.log" >&2; die "installing the interfaces failed"; }

# --- 4. the working tree, editable -----------------------------------------------------------
# `pip install -e` registers the distribution and puts the console scripts (tracker_node,
# sam2-eval, sam2-make-bag) into .venv/bin. Its import hook alone is not enough: it is consulted
# only after the normal path search, which would find the venv's site-packages/sam2_ros (the
# generated msg/srv) first. So sam2_ros_worktree.pth also puts the repository root on sys.path,
# after site-packages: there the working tree's sam2_ros is a regular package, the venv's
# site-packages/sam2_ros (no __init__.py, see SAM2_ROS_INTERFACES_ONLY in CMakeLists.txt) only
# a namespace portion, so the working tree's package is imported and its pkgutil.extend_path
# adds the generated modules.
SITE="$("$VPY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
STAMP_EDITABLE="$VENV/.sam2_setup_editable"
want_editable="$ROOT $(cat "$ROOT/setup.py" "$ROOT/pyproject.toml" "$ROOT/package.xml" | cksum)"
if [[ "${SAM2_SETUP_FORCE:-0}" != 0 || ! -f "$STAMP_EDITABLE" || "$(cat "$STAMP_EDITABLE")" != "$want_editable" ]] \
   || ! compgen -G "$SITE/__editable__.sam2_ros-*.pth" >/dev/null; then
  log "editable install of the working tree (sam2_ros, sam2_model)"
  "$VPY" -m pip install --disable-pip-version-check --no-deps --no-build-isolation -e "$ROOT" \
    >"$VENV/.sam2_setup_editable.log" 2>&1 \
    || { cat "$VENV/.sam2_setup_editable.log" >&2; die "pip install -e failed"; }
  printf '%s' "$want_editable" > "$STAMP_EDITABLE"
else
  log "editable install up to date"
fi
printf '%s\n' "$ROOT" > "$SITE/sam2_ros_worktree.pth"

# --- 5. check ----------------------------------------------------------------------------------
(cd / && "$VPY" -c "import rclpy, sam2_model; from sam2_ros.msg import TrackedObjects; from sam2_ros.srv import AddObject") \
  || die "the venv does not import rclpy, sam2_model and sam2_ros.msg"
log "done in $((SECONDS - START_S)) s. Tests: .venv/bin/python -m pytest -q tests"
