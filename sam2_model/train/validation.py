"""Held-out validation during training: per-frame J on fixed clips the run never trains on.

The clips are tracked by ``ClipRollout`` (the tracker's own memory) without gradients, once
prompted with each object's box and once with its mask on the first frame. J comes from the
low-resolution logits at the model's input size, and a frame where both the truth and the
prediction are empty scores 1 (the object was correctly reported absent), as in sam2-eval.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List

import numpy as np
import torch
import torch.nn.functional as F

from ..sam2 import SAM2Model
from .clips import DavisClips, ModelClip, TrainingClip, to_model_clip
from .losses import mask_iou
from .procedural import MIN_EVENT_VIDEO_FRAMES, ProceduralConfig, generate_with_events
from .rollout import ClipRollout
from .step_data import RolloutPlan

# Validation videos come from generate_with_events at these seeds; training draws its seeds at
# random from [0, 2**31), so it meets one of them with a chance of about clips / 2**31.
FIRST_VALIDATION_SEED = 5000
VALIDATION_MAX_OBJECTS = 4


@dataclass
class ValidationSet:
    images: torch.Tensor          # [C, T, 3, S, S]
    truth: torch.Tensor           # [B, T, S, S] bool
    clip_of_object: torch.Tensor  # [B]

    @classmethod
    def from_clips(cls, clips: List[ModelClip]) -> "ValidationSet":
        if not clips:
            raise ValueError("a validation set needs at least one clip with an object on its first frame")
        return cls(torch.stack([clip.images for clip in clips]), torch.cat([clip.truth for clip in clips]),
                   torch.cat([torch.full((len(clip.obj_ids),), k, dtype=torch.long) for k, clip in enumerate(clips)]))


def _model_clips(clips: List[TrainingClip], model: SAM2Model) -> List[ModelClip]:
    rng = np.random.default_rng(0)
    chosen = [to_model_clip(clip, model.image_size, model.device, rng, VALIDATION_MAX_OBJECTS) for clip in clips]
    return [clip for clip in chosen if clip is not None]


def procedural_validation_set(model: SAM2Model, clip_length: int, count: int = 12,
                              config: ProceduralConfig = ProceduralConfig()) -> ValidationSet:
    """The first ``clip_length`` frames of ``count`` generated videos with a hide-and-return."""
    frames = max(clip_length, MIN_EVENT_VIDEO_FRAMES)
    config = dataclasses.replace(config, num_frames=frames)
    clips = []
    for seed in range(FIRST_VALIDATION_SEED, FIRST_VALIDATION_SEED + count):
        video = generate_with_events(seed, config)
        clips.append(TrainingClip(video.frames[:clip_length], video.labels[:clip_length], f"validation_{seed}"))
    return ValidationSet.from_clips(_model_clips(clips, model))


def davis_validation_set(model: SAM2Model, root: "str | Path", clip_length: int, count: int = 12) -> ValidationSet:
    """``count`` clips drawn (with a fixed seed) from a DAVIS-format folder."""
    source = DavisClips(root, clip_length)
    rng = np.random.default_rng(0)
    return ValidationSet.from_clips(_model_clips([source.sample(rng) for _ in range(count)], model))


@torch.no_grad()
def frame_j(model: SAM2Model, validation: ValidationSet, prompt_kind: str) -> List[float]:
    """Mean J over objects, per frame (frame 0 is the prompted one)."""
    was_training = model.training
    model.eval()
    try:
        result = ClipRollout(model, torch.Generator().manual_seed(0)).run(
            validation.images, validation.truth, RolloutPlan(prompt_kind, 0, ()), validation.clip_of_object)
    finally:
        model.train(was_training)
    size = validation.truth.shape[-2:]
    logits = F.interpolate(result.low_res_logits.float(), size=size, mode="bilinear", align_corners=False)
    j = mask_iou(logits, validation.truth)  # [B, T]
    return [round(float(value), 4) for value in j.mean(0)]


def validate(model: SAM2Model, validation: ValidationSet) -> Dict[str, List[float]]:
    """Per-frame J with a box prompt and, for clips longer than one frame, with a mask prompt
    (a mask prompt on a single frame would only score its own resizing)."""
    scores = {"box": frame_j(model, validation, "box")}
    if validation.truth.shape[1] > 1:
        scores["mask"] = frame_j(model, validation, "mask")
    return scores
