"""DAVIS-format folders as evaluation ``Sequence``s, and written back from frames.

The format itself (folder layout incl. the official 480p nesting, frame order, label
PNGs, the palette) lives in ``sam2_model.davis_format``, shared with training; this
module adapts it to the evaluation tools: lazily loaded ``Frame`` streams with stamps,
and ``EvaluationInputError`` (exit status 2, one line) instead of ``DavisFormatError``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from sam2_model import davis_format, depth_format
from sam2_model.davis_format import IMAGE_SUFFIXES, davis_palette, write_label_png

from .errors import EvaluationInputError
from .sequence import DAVIS_VOID_LABEL, Frame, Sequence

__all__ = [
    "DAVIS_FPS",
    "IMAGE_SUFFIXES",
    "davis_palette",
    "list_sequences",
    "read_annotation_for",
    "read_label_png",
    "read_rgb",
    "read_sequence",
    "write_label_png",
    "write_sequence",
]

DAVIS_FPS = 24.0  # DAVIS videos are 24 frames per second


@contextmanager
def _input_errors() -> Iterator[None]:
    # The tools' error contract catches EvaluationInputError only; the message stays the same.
    try:
        yield
    except davis_format.DavisFormatError as exc:
        raise EvaluationInputError(str(exc)) from None


def list_sequences(root: Path) -> list[str]:
    """Names of the sequences in a DAVIS-format folder, sorted."""
    with _input_errors():
        return davis_format.list_davis_sequences(root)


def read_label_png(path: Path) -> np.ndarray:
    """An annotation PNG as an integer label image (pixel value = object id)."""
    with _input_errors():
        return davis_format.read_label_png(path)


def read_rgb(path: Path) -> np.ndarray:
    """An image file as HxWx3 uint8 RGB."""
    with _input_errors():
        return davis_format.load_rgb(path)


def read_annotation_for(path: Path, image: np.ndarray, image_name: str) -> np.ndarray:
    """The label PNG at ``path``, which must have the size of ``image`` (``image_name`` in errors)."""
    with _input_errors():
        return davis_format.load_labels(path, image.shape[:2], image_name)


def read_sequence(
    root: Path,
    name: str,
    fps: float = DAVIS_FPS,
    void_label: int | None = DAVIS_VOID_LABEL,
) -> Sequence:
    """Open one sequence of a DAVIS-format folder (frames load lazily).

    Stamps are index / fps, since a folder of images has no clock of its own. Frames
    without an annotation PNG are tracked but not scored (sparse annotation, as in SA-V).
    A ``Depth/<name>/`` folder beside them (``sam2_model.depth_format``) gives the frames
    their depth and the sequence its camera.
    """
    if fps <= 0:
        raise EvaluationInputError(f"fps must be positive, got {fps}")
    with _input_errors():
        files = davis_format.read_davis_frames(root, name)
        depth = read_depth(depth_format.sequence_depth_dir(root, name))

    def load() -> Iterator[Frame]:
        for index, image_path in enumerate(files.image_paths):
            image = read_rgb(image_path)
            labels = None
            if index in files.annotations:
                labels = read_annotation_for(files.annotations[index], image, f"image {image_path}")
            yield Frame(index=index, image=image, stamp_ns=round(index * 1e9 / fps), gt_labels=labels,
                        depth_m=depth_for(depth, index))

    return Sequence(
        name=name,
        num_frames=len(files.image_paths),
        annotated=tuple(sorted(files.annotations)),
        load=load,
        source=str(files.image_dir),
        void_label=void_label,
        intrinsics=depth.intrinsics if depth else None,
    )


def read_depth(directory: Path) -> depth_format.DepthFiles | None:
    """A depth folder (None when there is none), its problems as EvaluationInputError."""
    if not Path(directory).is_dir():
        return None
    with _input_errors():
        return depth_format.read_depth_folder(directory)


def depth_for(depth: depth_format.DepthFiles | None, index: int) -> np.ndarray | None:
    """Frame ``index``'s depth in metres, None without a depth folder or a PNG for it."""
    if depth is None or index not in depth.paths:
        return None
    with _input_errors():
        return depth_format.load_depth_png(depth.paths[index])


def write_sequence(root: Path, name: str, frames: Iterable[Frame], image_format: str = "jpg") -> int:
    """Write frames as JPEGImages/<name>/%05d.<image_format> and Annotations/<name>/%05d.png.

    Only frames with ground truth get an annotation PNG. Returns the number of frames.
    image_format "png" keeps the images lossless.
    """
    return davis_format.write_davis_sequence(root, name, ((f.index, f.image, f.gt_labels) for f in frames),
                                             image_format)
