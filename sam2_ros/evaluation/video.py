"""A video file plus a folder of per-frame label PNGs, as frames (read with PyAV).

Mask files are matched to frames by the number at the end of their name
(``00012.png``, ``frame_12.png`` -> frame 12, counting from 0); frames without a
mask file carry no ground truth.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from sam2_model.depth_format import DepthFiles

from .davis import depth_for, read_annotation_for
from .errors import EvaluationInputError
from .sequence import Frame

_INDEX_AT_END = re.compile(r"(\d+)$")


def mask_files_by_frame(masks_dir: Path) -> dict[int, Path]:
    """frame index -> label PNG in masks_dir."""
    masks_dir = Path(masks_dir)
    if not masks_dir.is_dir():
        raise EvaluationInputError(f"mask folder not found: {masks_dir}")
    by_frame: dict[int, Path] = {}
    for png in sorted(masks_dir.glob("*.png")):
        match = _INDEX_AT_END.search(png.stem)
        if match is None:
            raise EvaluationInputError(f"mask file {png} has no frame number at the end of its name")
        index = int(match.group(1))
        if index in by_frame:
            raise EvaluationInputError(f"mask files {by_frame[index]} and {png} are both for frame {index}")
        by_frame[index] = png
    if not by_frame:
        raise EvaluationInputError(f"{masks_dir} has no PNG mask files")
    return by_frame


def video_frames(video: Path, masks_dir: Path, fps: float | None = None,
                 depth: DepthFiles | None = None) -> Iterator[Frame]:
    """Decode the video's first video stream as frames with their masks (and depth, from a depth
    folder read with ``davis.read_depth``).

    Stamps are index / fps, with fps the video's average frame rate unless given, so
    they are evenly spaced and deterministic whatever the container's timestamps.
    """
    import av

    video = Path(video)
    masks = mask_files_by_frame(masks_dir)
    if not video.is_file():
        raise EvaluationInputError(f"video not found: {video}")
    try:
        container = av.open(str(video))
    except (av.error.FFmpegError, OSError) as exc:
        raise EvaluationInputError(f"cannot open video {video}: {exc}") from None
    with container:
        if not container.streams.video:
            raise EvaluationInputError(f"{video} has no video stream")
        stream = container.streams.video[0]
        rate = fps if fps is not None else (float(stream.average_rate) if stream.average_rate else None)
        if rate is None or rate <= 0:
            raise EvaluationInputError(f"{video} does not state its frame rate; pass --fps")
        index = -1
        try:
            for index, decoded in enumerate(container.decode(stream)):
                image = decoded.to_ndarray(format="rgb24")
                labels = None
                if index in masks:
                    labels = read_annotation_for(masks[index], image, f"frame {index} of {video}")
                yield Frame(index=index, image=image, stamp_ns=round(index * 1e9 / rate), gt_labels=labels,
                            depth_m=depth_for(depth, index))
        except av.error.FFmpegError as exc:
            raise EvaluationInputError(f"cannot decode frame {index + 1} of {video}: {exc}") from None
    beyond = sorted(i for i in masks if i > index)
    if beyond:
        raise EvaluationInputError(
            f"{len(beyond)} mask files are for frames past the end of {video} ({index + 1} frames): "
            f"first {masks[beyond[0]]}"
        )
