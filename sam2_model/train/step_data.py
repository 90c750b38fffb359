"""What one training step trains on (``StepData``), drawn from ``(seed, step)`` alone.

Used by the trainer and by the data workers of ``prefetch``; it imports neither the trainer nor
the model, so a worker process loads only the data side (clips, generator, numpy, torch).

Each clip of a step has its own random stream, ``(seed, step, clip)``: a process of a
distributed run draws only its share of the step's clips and still gets exactly the clips a
single process would have drawn at those positions (``ClipShare``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np

from .clips import ClipSource, TrainingClip, choose_objects
from .train_config import TrainConfig


@dataclass(frozen=True)
class RolloutPlan:
    """How one clip is prompted."""

    prompt_kind: str = "click"                 # first frame: "click", "box" or "mask"
    initial_corrections: int = 2               # correction clicks on the first frame, one at a time
    corrected_frames: Tuple[int, ...] = ()     # later frames that get one correction click


def sample_plan(config: TrainConfig, rng: np.random.Generator) -> RolloutPlan:
    draw = rng.random()
    kind = "click" if draw < config.click_probability else \
        "box" if draw < config.click_probability + config.box_probability else "mask"
    corrections = int(rng.integers(0, config.max_initial_corrections + 1)) if kind != "mask" else 0
    corrected = ()
    if rng.random() < config.tracked_correction_probability and config.clip_length > 1:
        corrected = (int(rng.integers(1, config.clip_length)),)
    return RolloutPlan(kind, corrections, corrected)


def sample_image_plan(config: TrainConfig, rng: np.random.Generator) -> RolloutPlan:
    """An image is prompted by a click or a box (a mask prompt would be its own answer), in the
    same proportion as clips are."""
    points = config.click_probability + config.box_probability
    kind = "click" if points == 0 or rng.random() < config.click_probability / points else "box"
    return RolloutPlan(kind, int(rng.integers(0, config.max_initial_corrections + 1)), ())


@dataclass(frozen=True)
class ClipShare:
    """Which of a step's clips one process trains on: a contiguous block of the global batch
    (every clip on a single process). Ranks get ``floor`` or ``ceil`` of ``total / world``."""

    rank: int = 0
    world_size: int = 1

    def clips(self, total: int) -> range:
        if total < self.world_size:
            raise ValueError(f"{total} clip(s) per step cannot be shared by {self.world_size} processes: "
                             f"give at least one per process (--clips-per-step / --images-per-step >= "
                             f"{self.world_size})")
        return contiguous_block(total, self.rank, self.world_size)


def contiguous_block(total: int, index: int, parts: int) -> range:
    """Block ``index`` of ``total`` items cut into ``parts`` contiguous blocks whose sizes differ
    by at most one (the first ``total % parts`` blocks are the longer)."""
    base, extra = divmod(total, parts)
    start = index * base + min(index, extra)
    return range(start, start + base + (1 if index < extra else 0))


EVERY_CLIP = ClipShare()


@dataclass
class StepData:
    """What one step trains on, drawn from ``(seed, step)`` alone and on the CPU, so that a worker
    process makes exactly what the training process would have (``sam2-train --data-workers``)."""

    image_step: bool
    clips: List[TrainingClip]
    obj_ids: List[List[int]]  # the objects trained on, per clip
    plan: RolloutPlan
    generator_seed: int       # seeds the rollout's torch generator (prompt and correction clicks)


def _draw_clip(rng: np.random.Generator, source: ClipSource, image_size: int, max_objects: int):
    for _ in range(20):  # a clip whose first frame shows no object is skipped
        clip = source.sample(rng)
        chosen = choose_objects(clip.labels, image_size, rng, max_objects)
        if chosen:
            return clip, chosen
    raise RuntimeError("20 clips in a row had no object on their first frame; check the training data")


def draw_step_data(config: TrainConfig, step: int, source: ClipSource, image_source: Optional[ClipSource],
                   image_size: int, share: ClipShare = EVERY_CLIP) -> StepData:
    """The step's plan (the same on every process) and ``share``'s clips of its global batch."""
    rng = np.random.default_rng([config.seed, step])
    generator_seed = int(rng.integers(0, 2**62))
    # Drawn only when image steps are on, so runs without them see the data they always did.
    image_step = config.image_step_probability > 0 and rng.random() < config.image_step_probability
    if image_step:
        clip_source, total, plan = image_source, config.images_per_step, sample_image_plan(config, rng)
    else:
        clip_source, total, plan = source, config.clips_per_step, sample_plan(config, rng)
    mine = share.clips(total)
    drawn = [_draw_clip(np.random.default_rng([config.seed, step, index]), clip_source, image_size,
                        config.max_objects) for index in mine]
    return StepData(image_step, [clip for clip, _ in drawn], [ids for _, ids in drawn], plan, generator_seed)
