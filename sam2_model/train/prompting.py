"""Simulated user prompts for training: first-frame click, box or mask, and correction clicks.

Everything here works at the model's input resolution, on ``[B, S, S]`` bool ground truth,
and returns points in model pixels (x, y), the convention of ``SAM2Model.predict_masks``.

Random draws are made for the step's whole object batch and sliced to the rows a rollout holds
(``ObjectDraws``), and every draw is per object: an object gets the same clicks whether it is
trained in one process with all the others or in one share of a distributed run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from ..prompt_encoder import LABEL_BACKGROUND, LABEL_BOX_BOTTOM_RIGHT, LABEL_BOX_TOP_LEFT, LABEL_FOREGROUND

@dataclass
class ObjectDraws:
    """Uniform random numbers for rows ``start .. start + count`` of a batch of ``total`` objects
    (``total`` None: the rollout holds the whole batch). Every call draws for all ``total`` rows
    from ``generator``, so that processes holding different rows stay in step."""

    generator: torch.Generator
    start: int = 0
    total: Optional[int] = None

    def uniform(self, count: int, *shape: int) -> torch.Tensor:
        total = count if self.total is None else self.total
        if self.start + count > total:
            raise ValueError(f"rows {self.start}..{self.start + count} lie outside a batch of {total} objects")
        return torch.rand((total, *shape), generator=self.generator)[self.start:self.start + count]


@dataclass
class PointPrompts:
    coords: torch.Tensor   # [B, N, 2] float, model pixels
    labels: torch.Tensor   # [B, N] int32

    def extend(self, coords: torch.Tensor, labels: torch.Tensor) -> "PointPrompts":
        return PointPrompts(torch.cat((self.coords, coords), dim=1), torch.cat((self.labels, labels), dim=1))

    @property
    def num_points(self) -> int:
        return int(self.labels.shape[1])


def _random_pixel(region: torch.Tensor, draws: ObjectDraws) -> torch.Tensor:
    """One uniformly random (x, y) pixel of each ``[B, H, W]`` region (any pixel if empty), by
    inverting each row's cumulative count with its own uniform number."""
    batch, height, width = region.shape
    weights = region.flatten(1).double()
    empty = weights.sum(dim=1) == 0
    weights[empty] = 1.0
    cumulative = weights.cumsum(dim=1)
    target = draws.uniform(batch).double().to(region.device) * cumulative[:, -1]
    # The first pixel whose cumulative count passes the target: never a pixel outside the region.
    index = torch.searchsorted(cumulative, target[:, None], right=True)[:, 0].clamp(max=height * width - 1)
    xy = torch.stack((index % width, index // width), dim=1).float() + 0.5
    return xy


def sample_click(truth: torch.Tensor, draws: ObjectDraws) -> PointPrompts:
    """One positive click at a random pixel of each object."""
    xy = _random_pixel(truth, draws)
    labels = torch.full((truth.shape[0], 1), LABEL_FOREGROUND, dtype=torch.int32, device=truth.device)
    return PointPrompts(xy[:, None], labels)


def sample_box(truth: torch.Tensor, draws: ObjectDraws, jitter: float = 0.1) -> PointPrompts:
    """Each object's bounding box, corners jittered by up to ``jitter`` of its side (as a user would draw it)."""
    boxes = []
    noises = (draws.uniform(truth.shape[0], 4) * 2 - 1) * jitter
    for mask, noise in zip(truth, noises):
        ys, xs = torch.nonzero(mask, as_tuple=True)
        if len(xs) == 0:
            x0, y0, x1, y1 = 0.0, 0.0, float(mask.shape[1]), float(mask.shape[0])
        else:
            x0, x1 = float(xs.min()), float(xs.max()) + 1
            y0, y1 = float(ys.min()), float(ys.max()) + 1
        w, h = x1 - x0, y1 - y0
        box = torch.tensor([x0 + noise[0] * w, y0 + noise[1] * h, x1 + noise[2] * w, y1 + noise[3] * h])
        box[0::2] = box[0::2].clamp(0, mask.shape[1])
        box[1::2] = box[1::2].clamp(0, mask.shape[0])
        boxes.append(box.reshape(2, 2))
    coords = torch.stack(boxes).to(truth.device)
    labels = torch.tensor([LABEL_BOX_TOP_LEFT, LABEL_BOX_BOTTOM_RIGHT], dtype=torch.int32, device=truth.device)
    return PointPrompts(coords, labels.expand(truth.shape[0], 2).contiguous())


def sample_correction(predicted: torch.Tensor, truth: torch.Tensor, draws: ObjectDraws) -> PointPrompts:
    """One click per object on its prediction's error: positive on a missed pixel, negative on a
    false one, the kind chosen in proportion to the two error areas. Always a click, even when
    no object has an error: whether a correction pass runs must not depend on which objects
    share a batch (a distributed run splits the batch)."""
    missed = truth & ~predicted
    spurious = predicted & ~truth
    missed_area = missed.flatten(1).sum(1).float()
    spurious_area = spurious.flatten(1).sum(1).float()
    pick_missed = draws.uniform(truth.shape[0]).to(truth.device) * (
        missed_area + spurious_area).clamp(min=1) < missed_area
    region = torch.where(pick_missed[:, None, None], missed, spurious)
    # Objects without any error get a positive click inside the object (harmless for the decoder).
    region = torch.where((missed_area + spurious_area == 0)[:, None, None], truth, region)
    xy = _random_pixel(region, draws)
    positive = pick_missed | (missed_area + spurious_area == 0)
    labels = torch.where(positive, LABEL_FOREGROUND, LABEL_BACKGROUND).to(torch.int32)[:, None]
    return PointPrompts(xy[:, None], labels)
