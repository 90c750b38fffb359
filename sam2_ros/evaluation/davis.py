"""DAVIS-format folders: JPEGImages/<seq>/*.jpg and Annotations/<seq>/*.png.

Annotations are indexed (palette) or grayscale PNGs where the pixel value is the
object id (0 = background, 255 = void). The official DAVIS release nests both
folders one level deeper by resolution (JPEGImages/480p/<seq>); that layout is
recognised too. Frames without an annotation PNG are tracked but not scored
(sparse annotation, as in SA-V).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import EvaluationInputError
from .sequence import DAVIS_VOID_LABEL, Frame, Sequence

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
DAVIS_FPS = 24.0  # DAVIS videos are 24 frames per second
_RESOLUTION_SUBDIR = "480p"


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


def _frame_sort_key(path: Path) -> tuple[float, str]:
    # Numeric stems in numeric order (frame 10 after frame 9 even without zero padding).
    return (int(path.stem) if path.stem.isdigit() else math.inf, path.stem)


def _folders(root: Path) -> tuple[Path, Path]:
    root = Path(root)
    images, annotations = root / "JPEGImages", root / "Annotations"
    if not images.is_dir():
        raise EvaluationInputError(f"{root} is not a DAVIS-format folder: {images} does not exist")
    nested = images / _RESOLUTION_SUBDIR
    if nested.is_dir() and any(p.is_dir() for p in nested.iterdir()):
        images, annotations = nested, annotations / _RESOLUTION_SUBDIR
    return images, annotations


def list_sequences(root: Path) -> list[str]:
    """Names of the sequences in a DAVIS-format folder, sorted."""
    images, _ = _folders(root)
    names = sorted(p.name for p in images.iterdir() if p.is_dir())
    if not names:
        raise EvaluationInputError(f"{images} has no sequence folders")
    return names


def read_label_png(path: Path) -> np.ndarray:
    """An annotation PNG as an integer label image (pixel value = object id)."""
    try:
        with Image.open(path) as img:
            img.load()
            mode = img.mode
            if mode in ("P", "L", "1"):
                # Palette PNGs hold ids as indices; np.array returns the indices, not colours.
                return np.array(img, dtype=np.uint8)
            if mode in ("I;16", "I;16B", "I;16L", "I"):
                labels = np.array(img)
                if labels.min() < 0 or labels.max() > np.iinfo(np.uint16).max:
                    raise EvaluationInputError(f"{path}: label values must lie in 0..65535")
                return labels.astype(np.uint16)
    except (UnidentifiedImageError, OSError) as exc:
        raise EvaluationInputError(f"cannot read annotation {path}: {exc}") from None
    raise EvaluationInputError(
        f"{path} is a {mode} image; annotations must be indexed (palette) or grayscale PNGs "
        "where the pixel value is the object id"
    )


def read_annotation_for(path: Path, image: np.ndarray, image_name: str) -> np.ndarray:
    """The label PNG at ``path``, which must have the size of ``image`` (``image_name`` in errors)."""
    labels = read_label_png(path)
    if labels.shape != image.shape[:2]:
        raise EvaluationInputError(
            f"annotation {path} is {labels.shape[1]}x{labels.shape[0]} "
            f"but {image_name} is {image.shape[1]}x{image.shape[0]}"
        )
    return labels


def read_rgb(path: Path) -> np.ndarray:
    """An image file as HxWx3 uint8 RGB."""
    try:
        with Image.open(path) as img:
            return np.array(img.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as exc:
        raise EvaluationInputError(f"cannot read image {path}: {exc}") from None


def write_label_png(path: Path, labels: np.ndarray) -> None:
    """Write a label image as a DAVIS palette PNG (16-bit grayscale when an id exceeds 255)."""
    labels = np.asarray(labels)
    if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be a 2-D integer array, got {labels.dtype} {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() > np.iinfo(np.uint16).max):
        raise ValueError("label values must lie in 0..65535")
    if labels.size == 0 or labels.max() <= 255:
        img = Image.fromarray(labels.astype(np.uint8), mode="P")
        img.putpalette(davis_palette())
    else:
        img = Image.fromarray(labels.astype(np.uint16))
    img.save(path)


def read_sequence(
    root: Path,
    name: str,
    fps: float = DAVIS_FPS,
    void_label: int | None = DAVIS_VOID_LABEL,
) -> Sequence:
    """Open one sequence of a DAVIS-format folder (frames load lazily).

    Stamps are index / fps, since a folder of images has no clock of its own.
    """
    if fps <= 0:
        raise EvaluationInputError(f"fps must be positive, got {fps}")
    images_root, annotations_root = _folders(Path(root))
    image_dir = images_root / name
    if not image_dir.is_dir():
        available = ", ".join(sorted(p.name for p in images_root.iterdir() if p.is_dir())) or "none"
        raise EvaluationInputError(f"sequence {name!r} not found in {images_root} (sequences: {available})")
    image_paths = sorted(
        (p for p in image_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=_frame_sort_key
    )
    if not image_paths:
        raise EvaluationInputError(f"{image_dir} has no images ({', '.join(IMAGE_SUFFIXES)})")
    annotation_dir = annotations_root / name
    if not annotation_dir.is_dir():
        raise EvaluationInputError(f"sequence {name!r} has no ground truth: {annotation_dir} does not exist")
    stems = {p.stem: i for i, p in enumerate(image_paths)}
    annotations: dict[int, Path] = {}
    for png in sorted(annotation_dir.glob("*.png")):
        if png.stem not in stems:
            raise EvaluationInputError(f"annotation {png} has no image {png.stem}.* in {image_dir}")
        annotations[stems[png.stem]] = png
    if not annotations:
        raise EvaluationInputError(f"sequence {name!r} has no ground truth: {annotation_dir} has no PNG files")

    def load() -> Iterator[Frame]:
        for index, image_path in enumerate(image_paths):
            image = read_rgb(image_path)
            labels = None
            if index in annotations:
                labels = read_annotation_for(annotations[index], image, f"image {image_path}")
            yield Frame(index=index, image=image, stamp_ns=round(index * 1e9 / fps), gt_labels=labels)

    return Sequence(
        name=name,
        num_frames=len(image_paths),
        annotated=tuple(sorted(annotations)),
        load=load,
        source=str(image_dir),
        void_label=void_label,
    )


def write_sequence(root: Path, name: str, frames: Iterable[Frame], image_format: str = "jpg") -> int:
    """Write frames as JPEGImages/<name>/%05d.<image_format> and Annotations/<name>/%05d.png.

    Only frames with ground truth get an annotation PNG. Returns the number of frames.
    image_format "png" keeps the images lossless.
    """
    if image_format not in ("jpg", "png"):
        raise ValueError(f"image_format must be 'jpg' or 'png', got {image_format!r}")
    image_dir = Path(root) / "JPEGImages" / name
    annotation_dir = Path(root) / "Annotations" / name
    image_dir.mkdir(parents=True, exist_ok=True)
    annotation_dir.mkdir(parents=True, exist_ok=True)
    count = 0
    for frame in frames:
        stem = f"{frame.index:05d}"
        options = {"quality": 95} if image_format == "jpg" else {}
        Image.fromarray(frame.image).save(image_dir / f"{stem}.{image_format}", **options)
        if frame.gt_labels is not None:
            write_label_png(annotation_dir / f"{stem}.png", frame.gt_labels)
        count += 1
    return count
