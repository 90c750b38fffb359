"""Training clips: short runs of frames with per-object ground truth, at the model's input size.

Two sources share one interface (``sample(rng) -> TrainingClip``): the procedural generator,
which makes a fresh video for every clip (endless data, never the same twice), and
DAVIS-format folders, read with the same reader as the evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from ..transforms import preprocess_video_frame
from .procedural import MIN_EVENT_VIDEO_FRAMES, ProceduralConfig, generate_video, generate_with_events


@dataclass
class TrainingClip:
    frames: np.ndarray   # uint8 [T, H, W, 3] RGB
    labels: np.ndarray   # uint8 [T, H, W] object ids (0 background; other ids are objects)
    name: str = ""


@dataclass
class ModelClip:
    """A clip ready for ``ClipRollout``: images normalised, masks of the chosen objects."""

    images: torch.Tensor   # [T, 3, S, S]
    truth: torch.Tensor    # [B, T, S, S] bool
    obj_ids: List[int]


class ClipSource(Protocol):
    def sample(self, rng: np.random.Generator) -> TrainingClip: ...


class ProceduralClips:
    """Clips cut from freshly generated videos (seeds drawn from ``rng``). ``with_events``: only
    videos in which a target hides for a few frames and comes back (as in the evaluation
    sequences), so that clips teach reporting a hidden object and finding it again."""

    def __init__(self, clip_length: int, config: Optional[ProceduralConfig] = None, with_events: bool = False):
        self.clip_length = clip_length
        self.with_events = with_events
        self.config = config or ProceduralConfig(num_frames=max(clip_length, 24))
        self.config.check()  # refused here, not at the first sample in the middle of a run
        if with_events and self.config.min_targets < 1:
            raise ValueError("videos with events need at least one target (min_targets >= 1)")
        if with_events and self.config.num_frames < MIN_EVENT_VIDEO_FRAMES:
            # Shorter videos rarely hold a whole hide-and-return: generation would give up.
            raise ValueError(f"videos with events need at least {MIN_EVENT_VIDEO_FRAMES} frames, "
                             f"not {self.config.num_frames}")
        if self.config.num_frames < clip_length:
            raise ValueError(f"generated videos ({self.config.num_frames} frames) are shorter than a clip "
                             f"({clip_length} frames)")

    def sample(self, rng: np.random.Generator) -> TrainingClip:
        seed = int(rng.integers(0, 2**31 - 1))
        video = generate_with_events(seed, self.config) if self.with_events else generate_video(seed, self.config)
        start = int(rng.integers(0, self.config.num_frames - self.clip_length + 1))
        stop = start + self.clip_length
        return TrainingClip(video.frames[start:stop], video.labels[start:stop], f"procedural_{seed}@{start}")


class DavisClips:
    """Clips from a DAVIS-format folder (JPEGImages/ + Annotations/); every frame of a clip must be annotated."""

    def __init__(self, root: "str | Path", clip_length: int):
        from ..davis_format import list_davis_sequences, read_davis_frames

        self.root = Path(root)
        self.clip_length = clip_length
        self._sequences = []
        for name in list_davis_sequences(self.root):
            files = read_davis_frames(self.root, name)
            if len(files.image_paths) >= clip_length and len(files.annotations) >= clip_length:
                self._sequences.append(files)
        if not self._sequences:
            raise ValueError(f"{self.root} has no sequence with at least {clip_length} annotated frames")

    def sample(self, rng: np.random.Generator) -> TrainingClip:
        from ..davis_format import load_labels, load_rgb

        files = self._sequences[int(rng.integers(0, len(self._sequences)))]
        # Windows of consecutive annotated frames where there are any. A sequence annotated only
        # sparsely (no such window) still gives clips: runs of its annotated frames in order, gaps
        # and all (larger motion between a clip's frames than its video has frame to frame).
        annotated = sorted(files.annotations)
        starts = [i for i in annotated if all(i + k in files.annotations for k in range(self.clip_length))]
        if not starts:
            starts = annotated[: max(1, len(annotated) - self.clip_length + 1)]
        start = starts[int(rng.integers(0, len(starts)))]
        indices = [i for i in annotated if i >= start][: self.clip_length]
        frames = [load_rgb(files.image_paths[i]) for i in indices]
        labels = [load_labels(files.annotations[i], frames[k].shape[:2]) for k, i in enumerate(indices)]
        return TrainingClip(np.stack(frames), np.stack(labels), f"{files.name}@{start}")


def choose_objects(labels: np.ndarray, image_size: int, rng: np.random.Generator, max_objects: int,
                   min_pixels: int = 16, void_label: int = 255) -> List[int]:
    """Up to ``max_objects`` object ids (sorted) among those covering at least ``min_pixels`` of the
    first frame at the model's input size (nearest-neighbour resize); empty when none does."""
    first = torch.from_numpy(np.ascontiguousarray(labels[0]))[None, None].float()
    first = F.interpolate(first, size=(image_size, image_size), mode="nearest")[0, 0].long()
    candidates = [int(i) for i in torch.unique(first).tolist()
                  if i not in (0, void_label) and int((first == i).sum()) >= min_pixels]
    rng.shuffle(candidates)
    return sorted(candidates[:max_objects])


def model_clip(clip: TrainingClip, obj_ids: List[int], image_size: int, device: torch.device) -> ModelClip:
    """The clip resized to the model's input on ``device``, with the masks of ``obj_ids`` (nearest)."""
    images = torch.cat([preprocess_video_frame(frame, image_size, device)[0] for frame in clip.frames])
    labels = torch.from_numpy(np.ascontiguousarray(clip.labels)).to(device)
    resized = F.interpolate(labels[:, None].float(), size=(image_size, image_size), mode="nearest")[:, 0].long()
    truth = torch.stack([resized == obj_id for obj_id in obj_ids])
    return ModelClip(images, truth, list(obj_ids))


def to_model_clip(clip: TrainingClip, image_size: int, device: torch.device, rng: np.random.Generator,
                  max_objects: int, min_pixels: int = 16, void_label: int = 255) -> Optional[ModelClip]:
    """Resize a clip to the model's input and pick up to ``max_objects`` objects visible on its
    first frame (None when none is). Object masks are resized with nearest neighbour."""
    chosen = choose_objects(clip.labels, image_size, rng, max_objects, min_pixels, void_label)
    return model_clip(clip, chosen, image_size, device) if chosen else None
