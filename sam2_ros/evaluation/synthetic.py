"""A small synthetic sequence with known ground truth, for tests and quick end-to-end checks.

Object 1, a disk, moves right; object 2, a rectangle, moves down and is fully hidden
behind a grey bar for a few frames; object 3, a small square, enters later. Frames
listed in ``unannotated`` carry no ground truth (sparse annotation).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from .sequence import Frame, Sequence

COLORS = {1: (220, 60, 40), 2: (40, 90, 220), 3: (240, 200, 30)}
OCCLUDER_COLOR = (128, 128, 128)


def synthetic_sequence(
    num_frames: int = 12,
    height: int = 60,
    width: int = 80,
    occluded: Iterable[int] = (5, 6),
    late_object_from: int = 3,
    unannotated: Iterable[int] = (8,),
    fps: float = 10.0,
    name: str = "synthetic",
) -> Sequence:
    """Deterministic frames (textured background, three objects) with label images."""
    occluded, unannotated = set(occluded), set(unannotated)
    yy, xx = np.mgrid[0:height, 0:width]
    # A fixed texture so that images are not flat (JPEG and trackers behave more naturally).
    background = (
        np.stack([(xx * 3) % 97, (yy * 5) % 89, ((xx + yy) * 2) % 83], axis=-1).astype(np.uint8) + 60
    ).astype(np.uint8)
    frames = []
    for t in range(num_frames):
        labels = np.zeros((height, width), dtype=np.uint8)
        cy, cx, r = height * 0.35, width * 0.15 + t * width * 0.04, min(height, width) * 0.16
        labels[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = 1
        top = int(height * 0.15 + t * height * 0.03)
        left = int(width * 0.55)
        labels[top : top + int(height * 0.3), left : left + int(width * 0.2)] = 2
        if t >= late_object_from:
            s = max(2, int(min(height, width) * 0.12))
            y0, x0 = int(height * 0.7), int(width * 0.1 + (t - late_object_from) * 2)
            labels[y0 : y0 + s, x0 : x0 + s] = 3
        image = background.copy()
        for obj_id, color in COLORS.items():
            image[labels == obj_id] = color
        if t in occluded:
            # The bar covers all of object 2's possible positions: it is absent from these frames.
            bar = (xx >= left - 2) & (xx < left + int(width * 0.2) + 2)
            image[bar] = OCCLUDER_COLOR
            labels[bar] = 0
        frames.append(
            Frame(
                index=t,
                image=image,
                stamp_ns=round(t * 1e9 / fps),
                gt_labels=None if t in unannotated else labels,
            )
        )
    return Sequence.from_frames(name, frames, source="synthetic")
