"""Which masks of the automatic mask generator are new objects to track (ROS-free).

The generator segments everything in a frame; ``discover_objects`` keeps the masks worth tracking
as new objects: not too small, not background-sized, inside the region asked for, and not already
covered by a tracked object nor by a mask picked before it (the generator returns overlapping
masks of one thing: a part, the whole, the whole with a neighbour). Masks are taken largest first
(or most confident first), so a whole object wins over its parts, up to a limit.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import TYPE_CHECKING, List, Optional, Sequence, Tuple

import numpy as np

from .errors import DiscoveryError  # noqa: F401 - re-exported
from .mask_generator_options import MaskGeneratorOptions

if TYPE_CHECKING:  # torch-free at run time: the ROS node imports DiscoveryOptions without a model
    from .automatic_mask_generator import GeneratedMask

ORDERS = ("area", "score")

# The generator settings for discovery: the tracker node's discover_* defaults, also used by
# sam2-eval --prompt auto and the demo. They differ from MaskGeneratorOptions' (official) defaults:
# 16 points per side costs a quarter of 32's time, and the bundled model's scores are lower than a
# released model's (docs/node.md).
DISCOVERY_GENERATOR_OPTIONS = MaskGeneratorOptions(points_per_side=16, pred_iou_thresh=0.7,
                                                   stability_score_thresh=0.9)
Region = Tuple[int, int, int, int]  # (x, y, width, height) in image pixels


@dataclass(frozen=True)
class DiscoveryOptions:
    """Args:
        min_area: smallest mask kept, as a fraction of the frame's pixels.
        max_area: largest mask kept, as a fraction of the frame (bigger ones are background or
            groups of objects).
        max_overlap: a mask with more than this fraction of its pixels already covered by tracked
            objects (or by masks picked before it) is not new; nor is one holding more than this
            fraction of any one of them (a group of objects, or an object with its neighbour).
        order: ``area`` (largest first) or ``score`` (highest predicted IoU first).
        min_inside: fraction of a mask's pixels that must lie inside the requested region.
    """

    min_area: float = 0.002
    max_area: float = 0.5
    max_overlap: float = 0.5
    order: str = "area"
    min_inside: float = 0.5

    def problems(self) -> List[str]:
        """Every invalid value, as sentences naming the option; empty when all is well."""
        found = []
        fractions = ("min_area", "max_area", "max_overlap", "min_inside")
        badly_typed = set()
        for name in fractions:
            value = getattr(self, name)
            # Typed first: a string or None would otherwise fail the comparisons below unnamed.
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
                found.append(f"{name} must be a number, got {value!r}")
                badly_typed.add(name)
            elif not 0.0 <= value <= 1.0:  # NaN fails this too
                found.append(f"{name} {value} must be in [0, 1]")
        if not badly_typed & {"min_area", "max_area"} and self.min_area > self.max_area:
            found.append(f"min_area {self.min_area} is above max_area {self.max_area}")
        if not isinstance(self.order, str) or self.order not in ORDERS:
            found.append(f"order {self.order!r} must be one of {', '.join(ORDERS)}")
        return found

    def check(self) -> "DiscoveryOptions":
        problems = self.problems()
        if problems:
            raise DiscoveryError("invalid discovery options: " + "; ".join(problems))
        return self


def check_region(region: Optional[Region], frame_hw: Tuple[int, int]) -> Optional[Region]:
    """``region`` if it lies inside the frame; None for an empty region (the whole frame)."""
    if region is None:
        return None
    x, y, width, height = (int(v) for v in region)
    if (x, y, width, height) == (0, 0, 0, 0):
        return None
    frame_h, frame_w = frame_hw
    if min(x, y) < 0 or width <= 0 or height <= 0 or x + width > frame_w or y + height > frame_h:
        raise DiscoveryError(f"region x={x} y={y} width={width} height={height} is not inside the "
                             f"{frame_w}x{frame_h} frame (all zeros = the whole frame)")
    return x, y, width, height


def discover_objects(tracked: Optional[np.ndarray], generated: Sequence[GeneratedMask],
                     options: DiscoveryOptions = DiscoveryOptions(), region: Optional[Region] = None,
                     limit: Optional[int] = None) -> List[GeneratedMask]:
    """The generated masks to add as new objects, in the order to add them.

    Args:
        tracked: ``[N, H, W]`` bool masks of the tracked objects on the same frame (None or N = 0:
            nothing tracked yet).
        generated: the generator's masks of that frame (``AutomaticMaskGenerator.generate``).
        options: size, overlap and ordering rules.
        region: ``(x, y, width, height)`` to look in (``check_region``); None = the whole frame.
        limit: most masks returned; None = no limit.
    """
    options.check()
    if limit is not None and limit < 0:
        raise DiscoveryError(f"limit must be >= 0, got {limit}")
    if not generated or limit == 0:
        return []
    frame_hw = generated[0].segmentation.shape
    frame_pixels = frame_hw[0] * frame_hw[1]
    covered = np.zeros(frame_hw, dtype=bool)
    existing: List[np.ndarray] = []  # each tracked or picked mask, for the "holds most of one" test
    if tracked is not None and len(tracked):
        tracked = np.asarray(tracked, dtype=bool)
        if tracked.shape[1:] != frame_hw:
            raise DiscoveryError(f"tracked masks are {tracked.shape[2]}x{tracked.shape[1]} but the generated "
                                 f"ones {frame_hw[1]}x{frame_hw[0]}: both must be of the same frame")
        covered = tracked.any(axis=0)
        existing = [m for m in tracked if m.any()]
    inside = None
    if region is not None:
        x, y, width, height = check_region(region, frame_hw) or (0, 0, frame_hw[1], frame_hw[0])
        inside = np.zeros(frame_hw, dtype=bool)
        inside[y:y + height, x:x + width] = True

    def rank(mask: GeneratedMask):
        return -mask.area if options.order == "area" else -mask.predicted_iou

    picked: List[GeneratedMask] = []
    for mask in sorted(generated, key=rank):  # sorted() is stable: ties keep the generator's order
        fraction = mask.area / frame_pixels
        if mask.area == 0 or not options.min_area <= fraction <= options.max_area:
            continue
        segmentation = mask.segmentation
        if inside is not None and np.count_nonzero(segmentation & inside) < options.min_inside * mask.area:
            continue
        if np.count_nonzero(segmentation & covered) > options.max_overlap * mask.area:
            continue
        if any(np.count_nonzero(segmentation & other) > options.max_overlap * np.count_nonzero(other)
               for other in existing):
            continue
        picked.append(mask)
        existing.append(segmentation)
        covered |= segmentation
        if limit is not None and len(picked) >= limit:
            break
    return picked
