"""Settings of the automatic mask generator: one typed, self-checking source of their defaults.

Names, defaults and meaning are those of the official ``SAM2AutomaticMaskGenerator`` (sam2 1.1.0),
so code written for it can switch. ``AutomaticMaskGenerator`` takes them as keyword arguments;
other front ends (a ROS service, ``sam2-eval``) should build a ``MaskGeneratorOptions`` and pass it.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass
from typing import List, Optional, Sequence

import numpy as np

from .point_grids import layer_points_per_side, point_grid, validate_point_grids


class MaskGeneratorOptionsError(ValueError):
    """A generator setting out of its range, or settings that contradict each other."""


# Upper bounds that keep a request's cost finite (a server builds the grids on its I/O thread;
# 10**6 per side would ask for terabytes). Generous against the official defaults: 32 per side
# (SAM and SAM 2's generator), 64 in SAM 2's notebook example; 128 is 16 times 32's clicks.
MAX_POINTS_PER_SIDE = 128
# Layer i crops the image (2**i)**2 times: layers 0-4 are 341 crops (the official examples use 0 or 1).
MAX_CROP_N_LAYERS = 4

_INTEGER_SETTINGS = ("points_per_batch", "crop_n_layers", "crop_n_points_downscale_factor", "min_mask_region_area")
_NUMBER_SETTINGS = ("pred_iou_thresh", "stability_score_thresh", "stability_score_offset", "mask_threshold",
                    "box_nms_thresh", "crop_nms_thresh", "crop_overlap_ratio")
_SWITCHES = ("use_m2m", "multimask_output")


def _is_integer(value) -> bool:
    """An integer, numpy's included; not a bool, not a whole-number float (it breaks range() later)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def _is_number(value) -> bool:
    return (isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))
            and math.isfinite(value))


@dataclass(frozen=True)
class MaskGeneratorOptions:
    """Args:
        points_per_side: clicks along each side of the image (``points_per_side**2`` in all);
            ``None`` when ``point_grids`` gives the clicks instead. At most ``MAX_POINTS_PER_SIDE``.
        points_per_batch: clicks decoded together (more: faster, more memory).
        pred_iou_thresh: keep masks whose predicted IoU is above this (0 disables the filter).
        stability_score_thresh: keep masks whose stability score is at least this (0 disables it).
        stability_score_offset: how far the mask threshold moves, up and down, to measure stability.
        mask_threshold: logit above which a pixel belongs to the mask.
        box_nms_thresh: box IoU above which the lower-scored of two masks of one crop is dropped.
        crop_n_layers: extra crop layers; layer ``i`` runs again on ``(2**i)**2`` overlapping crops.
            At most ``MAX_CROP_N_LAYERS``.
        crop_nms_thresh: box IoU above which duplicates between crops are dropped (smaller crops win).
        crop_overlap_ratio: overlap of neighbouring first-layer crops, as a fraction of the image's
            short side (later layers overlap less).
        crop_n_points_downscale_factor: layer ``i`` uses ``points_per_side / factor**i`` clicks per side.
        point_grids: explicit clicks, one ``N x 2`` array of normalised ``(x, y)`` per crop layer;
            exclusive with ``points_per_side``.
        min_mask_region_area: if > 0, holes and islands of at most this many pixels of the
            low-resolution mask are filled and removed before upsampling (the official image
            predictor's ``max_hole_area`` / ``max_sprinkle_area``).
        use_m2m: refine every mask once, giving the decoder its click and its own low-resolution mask.
        multimask_output: three candidate masks per click (else one).
    """

    points_per_side: Optional[int] = 32
    points_per_batch: int = 64
    pred_iou_thresh: float = 0.8
    stability_score_thresh: float = 0.95
    stability_score_offset: float = 1.0
    mask_threshold: float = 0.0
    box_nms_thresh: float = 0.7
    crop_n_layers: int = 0
    crop_nms_thresh: float = 0.7
    crop_overlap_ratio: float = 512 / 1500
    crop_n_points_downscale_factor: int = 1
    point_grids: Optional[Sequence[np.ndarray]] = None
    min_mask_region_area: int = 0
    use_m2m: bool = False
    multimask_output: bool = True

    def __post_init__(self) -> None:
        self._check()

    @classmethod
    def from_kwargs(cls, **settings) -> "MaskGeneratorOptions":
        """Options from keyword arguments, naming any that is not a setting."""
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(settings) - known)
        if unknown:
            raise TypeError(f"unknown mask generator setting(s) {unknown}; known: {sorted(known)}")
        return cls(**settings)

    def _check(self) -> None:
        def fail(message: str) -> None:
            raise MaskGeneratorOptionsError(message)

        if self.points_per_side is not None and self.point_grids is not None:
            fail("give either points_per_side or point_grids, not both (set points_per_side=None to use grids)")
        if self.points_per_side is None and self.point_grids is None:
            fail("give points_per_side or point_grids")
        if self.points_per_side is not None and (not _is_integer(self.points_per_side)
                                                 or self.points_per_side < 1):
            fail(f"points_per_side must be a positive integer, got {self.points_per_side!r}")
        for name in _INTEGER_SETTINGS:
            if not _is_integer(getattr(self, name)):
                fail(f"{name} must be an integer, got {getattr(self, name)!r}")
        for name in _NUMBER_SETTINGS:
            if not _is_number(getattr(self, name)):
                fail(f"{name} must be a finite number, got {getattr(self, name)!r}")
        for name in _SWITCHES:
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                fail(f"{name} must be true or false, got {getattr(self, name)!r}")
        if self.points_per_side is not None and self.points_per_side > MAX_POINTS_PER_SIDE:
            fail(f"points_per_side {self.points_per_side} is above the limit of {MAX_POINTS_PER_SIDE} "
                 f"({MAX_POINTS_PER_SIDE ** 2} clicks; the official default is 32)")
        if self.points_per_batch < 1:
            fail(f"points_per_batch must be a positive integer, got {self.points_per_batch!r}")
        if not 0 <= self.crop_n_layers <= MAX_CROP_N_LAYERS:
            fail(f"crop_n_layers must be an integer from 0 to {MAX_CROP_N_LAYERS}, got {self.crop_n_layers!r}")
        if self.crop_n_points_downscale_factor < 1:
            fail(f"crop_n_points_downscale_factor must be an integer >= 1, got {self.crop_n_points_downscale_factor!r}")
        if not 0.0 <= self.crop_overlap_ratio < 1.0:
            fail(f"crop_overlap_ratio must be in [0, 1), got {self.crop_overlap_ratio}")
        for name in ("pred_iou_thresh", "stability_score_thresh", "box_nms_thresh", "crop_nms_thresh"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                fail(f"{name} must be in [0, 1], got {value}")
        if not self.stability_score_offset >= 0.0:
            fail(f"stability_score_offset must be >= 0, got {self.stability_score_offset}")
        if self.min_mask_region_area < 0:
            fail(f"min_mask_region_area must be an integer >= 0, got {self.min_mask_region_area!r}")
        if self.points_per_side is not None:
            sides = layer_points_per_side(self.points_per_side, self.crop_n_layers,
                                          self.crop_n_points_downscale_factor)
            if min(sides) < 1:
                fail(f"points_per_side={self.points_per_side} leaves no click in crop layer {sides.index(0)} "
                     f"(divided by crop_n_points_downscale_factor**layer)")
        else:
            try:
                validate_point_grids(self.point_grids, self.crop_n_layers + 1)
            except ValueError as error:
                raise MaskGeneratorOptionsError(str(error)) from None

    def layer_grids(self) -> List[np.ndarray]:
        """The normalised clicks ``[N, 2]`` of each crop layer."""
        if self.point_grids is not None:
            return validate_point_grids(self.point_grids, self.crop_n_layers + 1)
        sides = layer_points_per_side(self.points_per_side, self.crop_n_layers, self.crop_n_points_downscale_factor)
        return [point_grid(side) for side in sides]
