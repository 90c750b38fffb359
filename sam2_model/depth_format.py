"""Depth beside a DAVIS-format folder: ``Depth/<sequence>/%05d.png`` and its camera; written by the
procedural generator, read by sam2-eval and sam2-make-bag (numpy + Pillow, no ROS).

Each PNG is a 16-bit greyscale image in millimetres, aligned to the colour image of the same
number (0 = no reading), as RealSense and most depth cameras record it. ``camera_info.json`` in
the same folder holds the colour camera's pinhole model: ``{"fx", "fy", "cx", "cy", "width",
"height"}`` in pixels (sensor_msgs/CameraInfo's K). A video's depth folder is any folder laid out
the same way (``sam2-make-bag --video ... --depth DIR``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .davis_format import DavisFormatError
from .object_3d import PinholeIntrinsics

DEPTH_DIR = "Depth"
CAMERA_FILE = "camera_info.json"
MM_PER_M = 1000.0
MAX_MM = 65535


@dataclass(frozen=True)
class DepthFiles:
    """A depth folder: PNG paths by frame number and the camera."""

    directory: Path
    paths: dict[int, Path]
    intrinsics: PinholeIntrinsics


def sequence_depth_dir(root: str | Path, name: str) -> Path:
    return Path(root) / DEPTH_DIR / name


def save_depth_png(path: Path, depth_m: np.ndarray) -> None:
    """Metres -> 16-bit millimetre PNG; NaN, inf, <= 0 and beyond 65.535 m become 0 (no reading)."""
    depth = np.asarray(depth_m, np.float64)
    valid = np.isfinite(depth) & (depth > 0) & (depth * MM_PER_M <= MAX_MM)
    millimetres = np.where(valid, np.round(np.where(valid, depth, 0) * MM_PER_M), 0).astype(np.uint16)
    Image.fromarray(millimetres).save(path)


def load_depth_png(path: Path) -> np.ndarray:
    """A 16-bit millimetre PNG -> float32 metres (0 stays 0: no reading)."""
    try:
        with Image.open(path) as image:
            image.load()
            if not image.mode.startswith("I"):
                raise DavisFormatError(f"{path}: a depth PNG must be 16-bit greyscale (millimetres), got {image.mode}")
            return np.asarray(image).astype(np.float32) / np.float32(MM_PER_M)
    except (OSError, UnidentifiedImageError) as error:
        raise DavisFormatError(f"{path}: not a readable depth PNG: {error}") from None


def write_depth_sequence(root: str | Path, name: str, depths: Iterable[tuple[int, np.ndarray]],
                         intrinsics: PinholeIntrinsics) -> int:
    """Write ``(index, depth in metres)`` as Depth/<name>/%05d.png plus camera_info.json; the count."""
    directory = sequence_depth_dir(root, name)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / CAMERA_FILE).write_text(json.dumps(asdict(intrinsics), indent=1) + "\n")
    count = 0
    for index, depth in depths:
        save_depth_png(directory / f"{index:05d}.png", depth)
        count += 1
    return count


def read_depth_folder(directory: str | Path) -> DepthFiles:
    """A depth folder's PNGs (named by frame number) and camera; DavisFormatError saying what is wrong."""
    directory = Path(directory)
    camera = directory / CAMERA_FILE
    if not camera.is_file():
        raise DavisFormatError(f"{directory}: no {CAMERA_FILE} (the colour camera's fx, fy, cx, cy, width, height)")
    try:
        values = json.loads(camera.read_text())
    except ValueError as error:  # UnicodeDecodeError too
        raise DavisFormatError(f"{camera}: not JSON ({error})") from None
    if not isinstance(values, dict):
        raise DavisFormatError(f"{camera}: needs an object with numbers fx, fy, cx, cy, width, height")
    intrinsics = PinholeIntrinsics(*(_camera_number(camera, values, name, whole=False)
                                     for name in ("fx", "fy", "cx", "cy")),
                                   *(_camera_number(camera, values, name, whole=True) for name in ("width", "height")))
    problems = intrinsics.problems()
    if problems:
        raise DavisFormatError(f"{camera}: " + "; ".join(problems))
    paths = {}
    for path in directory.glob("*.png"):
        if not path.stem.isdigit():
            raise DavisFormatError(f"{path}: depth PNGs are named by frame number (00000.png, ...)")
        paths[int(path.stem)] = path
    if not paths:
        raise DavisFormatError(f"{directory}: no depth PNGs")
    return DepthFiles(directory, paths, intrinsics)


def _camera_number(camera: Path, values: dict, name: str, whole: bool) -> float | int:
    """A camera_info.json field: a finite number; a whole one for the image size (640.7 is not a
    size, and 1e400 reads as infinity, which int() cannot take)."""
    if name not in values:
        raise DavisFormatError(f"{camera}: needs numbers fx, fy, cx, cy, width, height; {name} is missing")
    value = values[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise DavisFormatError(f"{camera}: {name} must be a finite number, got {value!r}")
    if not whole:
        return float(value)
    if value != int(value):
        raise DavisFormatError(f"{camera}: {name} must be a whole number of pixels, got {value!r}")
    return int(value)


def procedural_intrinsics(height: int, width: int) -> PinholeIntrinsics:
    """The camera the procedural generator's layered depth is seen with: f = the larger side
    (about 53 degrees across it), principal point at the centre."""
    focal = float(max(height, width))
    return PinholeIntrinsics(focal, focal, (width - 1) / 2.0, (height - 1) / 2.0, int(width), int(height))
