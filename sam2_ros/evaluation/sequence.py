"""The typed frame stream every reader produces and every runner consumes."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from collections.abc import Sequence as SequenceType
from dataclasses import dataclass, field

import numpy as np

from sam2_model.object_3d import PinholeIntrinsics

from .errors import EvaluationInputError

# DAVIS marks "don't care" pixels (object borders, ambiguous regions) with 255.
DAVIS_VOID_LABEL = 255


@dataclass(frozen=True)
class Frame:
    """One camera frame with its optional ground truth.

    gt_labels is an HxW integer label image (0 = background, k = object k, the
    sequence's void label = ignored) or None when this frame has no annotation.
    depth_m is an HxW float32 depth image in metres aligned to the image (0 or NaN = no
    reading), or None when the data has none.
    """

    index: int
    image: np.ndarray  # HxWx3 uint8 RGB
    stamp_ns: int
    gt_labels: np.ndarray | None = None
    depth_m: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.image.ndim != 3 or self.image.shape[2] != 3 or self.image.dtype != np.uint8:
            raise EvaluationInputError(
                f"frame {self.index}: image must be HxWx3 uint8 RGB, got {self.image.dtype} {self.image.shape}"
            )
        if self.gt_labels is not None and self.gt_labels.shape != self.image.shape[:2]:
            raise EvaluationInputError(
                f"frame {self.index}: ground truth is {self.gt_labels.shape[1]}x{self.gt_labels.shape[0]} "
                f"but the image is {self.image.shape[1]}x{self.image.shape[0]}"
            )
        if self.depth_m is not None and self.depth_m.shape != self.image.shape[:2]:
            raise EvaluationInputError(
                f"frame {self.index}: depth is {self.depth_m.shape[1]}x{self.depth_m.shape[0]} "
                f"but the image is {self.image.shape[1]}x{self.image.shape[0]} (depth must be aligned to it)"
            )

    @property
    def size(self) -> tuple[int, int]:
        """(height, width)"""
        return int(self.image.shape[0]), int(self.image.shape[1])


def object_ids_in(labels: np.ndarray, void_label: int | None) -> list[int]:
    """Object ids present in a label image, ascending (background 0 and void excluded)."""
    ids = np.unique(labels)
    return [int(i) for i in ids if i != 0 and (void_label is None or i != void_label)]


@dataclass(frozen=True)
class Sequence:
    """A named, ordered, re-iterable stream of frames.

    Frames are produced lazily by ``load`` so that long recordings are never held in
    memory whole; readers validate everything they can (topics, stamps, file names)
    before building one, so that a bad input fails before any tracking starts.
    ``annotated`` lists the indices of frames that carry ground truth; knowing it up
    front lets scoring leave out the last annotated frame while streaming.
    """

    name: str
    num_frames: int
    annotated: tuple[int, ...]
    load: Callable[[], Iterator[Frame]] = field(repr=False, compare=False)
    source: str = ""
    void_label: int | None = DAVIS_VOID_LABEL
    intrinsics: PinholeIntrinsics | None = None  # the camera of the frames' depth; None without depth

    def __iter__(self) -> Iterator[Frame]:
        count = 0
        for frame in self.load():
            if frame.index != count:
                raise EvaluationInputError(
                    f"{self.name}: frame {count} came out as index {frame.index} (reader bug)"
                )
            count += 1
            yield frame
            if count == self.num_frames:
                return
        if count != self.num_frames:
            raise EvaluationInputError(
                f"{self.name}: expected {self.num_frames} frames from {self.source or 'the source'}, got {count}"
            )

    def __len__(self) -> int:
        return self.num_frames

    def truncated(self, max_frames: int | None) -> Sequence:
        """The first max_frames frames (all of them when None or not fewer)."""
        if max_frames is None or max_frames >= self.num_frames:
            return self
        if max_frames < 1:
            raise EvaluationInputError(f"--max-frames must be at least 1, got {max_frames}")
        load = self.load
        return Sequence(
            name=self.name,
            num_frames=max_frames,
            annotated=tuple(i for i in self.annotated if i < max_frames),
            load=lambda: itertools.islice(load(), max_frames),
            source=self.source,
            void_label=self.void_label,
            intrinsics=self.intrinsics,
        )

    @classmethod
    def from_frames(
        cls,
        name: str,
        frames: SequenceType[Frame],
        source: str = "memory",
        void_label: int | None = DAVIS_VOID_LABEL,
        intrinsics: PinholeIntrinsics | None = None,
    ) -> Sequence:
        """A sequence over frames already in memory (tests, synthetic data)."""
        frames = list(frames)
        for i, frame in enumerate(frames):
            if frame.index != i:
                raise EvaluationInputError(f"{name}: frame at position {i} has index {frame.index}")
        return cls(
            name=name,
            num_frames=len(frames),
            annotated=tuple(f.index for f in frames if f.gt_labels is not None),
            load=lambda: iter(frames),
            source=source,
            void_label=void_label,
            intrinsics=intrinsics,
        )
