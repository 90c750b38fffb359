"""DAVIS-format folders: JPEGImages/<seq>/*.jpg and Annotations/<seq>/*.png.

Annotations are indexed (palette) or grayscale PNGs where the pixel value is the
object id (0 = background, 255 = void). The official DAVIS release nests both
folders one level deeper by resolution (JPEGImages/480p/<seq>); that layout is
recognised too. Frames without an annotation PNG carry no ground truth (sparse
annotation, as in SA-V).

This is the one reader of the format, shared by training (``sam2_model.train``) and
the ROS package's evaluation tools, so it depends on numpy and PIL only. Bad input
raises ``DavisFormatError`` with a message naming the file or folder and the problem,
meant to be shown to the user as it is.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
RESOLUTION_SUBDIR = "480p"
_MAX_LABEL = int(np.iinfo(np.uint16).max)


class DavisFormatError(ValueError):
    """A DAVIS-format folder or file that cannot be read; the message says which and why."""


@dataclass(frozen=True)
class DavisSequenceFiles:
    """The files of one sequence; nothing is read until ``load_rgb`` / ``load_labels``."""

    name: str
    image_dir: Path
    annotation_dir: Path
    image_paths: tuple[Path, ...]  # in frame order; frame index = position
    annotations: dict[int, Path]   # frame index -> label PNG, for annotated frames only


def davis_palette() -> list[int]:
    """The PASCAL VOC / DAVIS colour map as a flat 768-entry PIL palette (id 1 = dark red, ...)."""
    palette = []
    for label in range(256):
        r = g = b = 0
        c = label
        for bit in range(8):
            r |= ((c >> 0) & 1) << (7 - bit)
            g |= ((c >> 1) & 1) << (7 - bit)
            b |= ((c >> 2) & 1) << (7 - bit)
            c >>= 3
        palette += [r, g, b]
    return palette


def frame_sort_key(path: Path) -> tuple[float, str]:
    """Sort key for frame files: numeric stems in numeric order (frame 10 after frame 9 even
    without zero padding), other names after them by name."""
    return (int(path.stem) if path.stem.isdigit() else math.inf, path.stem)


def davis_folders(root: str | Path) -> tuple[Path, Path]:
    """The folders holding the sequence folders: (images, annotations), below 480p/ if nested."""
    root = Path(root)
    images, annotations = root / "JPEGImages", root / "Annotations"
    if not images.is_dir():
        raise DavisFormatError(f"{root} is not a DAVIS-format folder: {images} does not exist")
    nested = images / RESOLUTION_SUBDIR
    # A sequence could itself be called "480p"; only a folder of folders is the nested layout.
    if nested.is_dir() and any(p.is_dir() for p in nested.iterdir()):
        images, annotations = nested, annotations / RESOLUTION_SUBDIR
    return images, annotations


def _sequence_names(images_root: Path) -> list[str]:
    return sorted(p.name for p in images_root.iterdir() if p.is_dir())


def list_davis_sequences(root: str | Path) -> list[str]:
    """Names of the sequences in a DAVIS-format folder, sorted."""
    images, _ = davis_folders(root)
    names = _sequence_names(images)
    if not names:
        raise DavisFormatError(f"{images} has no sequence folders")
    return names


def _image_paths(image_dir: Path) -> tuple[Path, ...]:
    paths = sorted((p for p in image_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=frame_sort_key)
    if not paths:
        raise DavisFormatError(f"{image_dir} has no images ({', '.join(IMAGE_SUFFIXES)})")
    return tuple(paths)


def _annotation_paths(
    name: str, annotation_dir: Path, image_dir: Path, image_paths: tuple[Path, ...]
) -> dict[int, Path]:
    # An annotation is matched to its image by file stem (00012.png annotates 00012.jpg).
    if not annotation_dir.is_dir():
        raise DavisFormatError(f"sequence {name!r} has no ground truth: {annotation_dir} does not exist")
    index_of_stem = {p.stem: i for i, p in enumerate(image_paths)}
    annotations: dict[int, Path] = {}
    for png in sorted(annotation_dir.glob("*.png")):
        if png.stem not in index_of_stem:
            raise DavisFormatError(f"annotation {png} has no image {png.stem}.* in {image_dir}")
        annotations[index_of_stem[png.stem]] = png
    if not annotations:
        raise DavisFormatError(f"sequence {name!r} has no ground truth: {annotation_dir} has no PNG files")
    return annotations


def read_davis_frames(root: str | Path, name: str) -> DavisSequenceFiles:
    """The image and annotation files of sequence ``name``; it must have at least one annotation."""
    images_root, annotations_root = davis_folders(root)
    image_dir = images_root / name
    if not image_dir.is_dir():
        available = ", ".join(_sequence_names(images_root)) or "none"
        raise DavisFormatError(f"sequence {name!r} not found in {images_root} (sequences: {available})")
    image_paths = _image_paths(image_dir)
    annotation_dir = annotations_root / name
    annotations = _annotation_paths(name, annotation_dir, image_dir, image_paths)
    return DavisSequenceFiles(name, image_dir, annotation_dir, image_paths, annotations)


def load_rgb(path: str | Path) -> np.ndarray:
    """An image file as HxWx3 uint8 RGB."""
    try:
        with Image.open(path) as img:
            return np.array(img.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as exc:
        raise DavisFormatError(f"cannot read image {path}: {exc}") from None


def read_label_png(path: str | Path) -> np.ndarray:
    """An annotation PNG as an integer label image (pixel value = object id): uint8, or uint16
    for 16-bit grayscale PNGs."""
    try:
        with Image.open(path) as img:
            img.load()
            mode = img.mode
            if mode in ("P", "L", "1"):
                # Palette PNGs hold ids as indices; np.array returns the indices, not colours.
                return np.array(img, dtype=np.uint8)
            if mode in ("I;16", "I;16B", "I;16L", "I"):
                labels = np.array(img)
                if labels.min() < 0 or labels.max() > _MAX_LABEL:
                    raise DavisFormatError(f"{path}: label values must lie in 0..65535")
                return labels.astype(np.uint16)
    except (UnidentifiedImageError, OSError) as exc:
        raise DavisFormatError(f"cannot read annotation {path}: {exc}") from None
    raise DavisFormatError(
        f"{path} is a {mode} image; annotations must be indexed (palette) or grayscale PNGs "
        "where the pixel value is the object id"
    )


def check_label_size(labels: np.ndarray, path: str | Path, image_hw: tuple[int, int], image_name: str) -> None:
    """Raise unless the labels read from ``path`` are ``image_hw`` (height, width) like their image."""
    height, width = image_hw
    if tuple(labels.shape) != (height, width):
        raise DavisFormatError(
            f"annotation {path} is {labels.shape[1]}x{labels.shape[0]} but {image_name} is {width}x{height}"
        )


def load_labels(path: str | Path, expected_hw: tuple[int, int], image_name: str = "its image") -> np.ndarray:
    """The label PNG at ``path``, which must be ``expected_hw`` (height, width), the size of its
    image (``image_name`` names that image in the error)."""
    labels = read_label_png(path)
    check_label_size(labels, path, expected_hw, image_name)
    return labels


def write_label_png(path: str | Path, labels: np.ndarray) -> None:
    """Write a label image as a DAVIS palette PNG (16-bit grayscale when an id exceeds 255).

    Bad arrays are the caller's bug, not bad input, so they raise a plain ValueError.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be a 2-D integer array, got {labels.dtype} {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() > _MAX_LABEL):
        raise ValueError("label values must lie in 0..65535")
    if labels.size == 0 or labels.max() <= 255:
        img = Image.fromarray(labels.astype(np.uint8), mode="P")
        img.putpalette(davis_palette())
    else:
        img = Image.fromarray(labels.astype(np.uint16))
    img.save(path)


def write_davis_sequence(root: str | Path, name: str,
                         frames: "Iterable[tuple[int, np.ndarray, np.ndarray | None]]",
                         image_format: str = "jpg") -> int:
    """Write ``(index, rgb, labels or None)`` frames as JPEGImages/<name>/%05d.<image_format> and
    Annotations/<name>/%05d.png. Only frames with labels get an annotation PNG (sparse
    annotation). Returns the number of frames; "png" keeps the images lossless."""
    if image_format not in ("jpg", "png"):
        raise ValueError(f"image_format must be 'jpg' or 'png', got {image_format!r}")
    image_dir = Path(root) / "JPEGImages" / name
    annotation_dir = Path(root) / "Annotations" / name
    image_dir.mkdir(parents=True, exist_ok=True)
    annotation_dir.mkdir(parents=True, exist_ok=True)
    options = {"quality": 95} if image_format == "jpg" else {}
    count = 0
    for index, image, labels in frames:
        stem = f"{index:05d}"
        Image.fromarray(image).save(image_dir / f"{stem}.{image_format}", **options)
        if labels is not None:
            write_label_png(annotation_dir / f"{stem}.png", labels)
        count += 1
    return count
