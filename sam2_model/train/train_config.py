"""``TrainConfig``: the settings of a training run (``sam2-train``'s flags are views of it).

A plain dataclass with no heavy imports, read by the trainer and by the data workers
(``step_data``, ``prefetch``) alike.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TrainConfig:
    steps: int = 1000
    clip_length: int = 8
    max_objects: int = 3
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 100
    grad_clip: float = 1.0
    # First-frame prompt kinds, sampled with these probabilities (official training mixes them too).
    click_probability: float = 0.4
    box_probability: float = 0.3      # the rest: mask prompts
    max_initial_corrections: int = 2
    tracked_correction_probability: float = 0.25
    seed: int = 0
    # Modules (name prefixes, e.g. "image_encoder") kept fixed: fine-tuning only the memory
    # path of a model whose image features are already good is much cheaper.
    freeze: tuple = ()
    # Clips per optimiser step, run as one batch (one prompt plan for all): less noisy steps, and
    # on small models far more objects per second than one clip at a time.
    clips_per_step: int = 1
    # Each process's share of a step's clips is run in this many passes, gradients summed before
    # the optimiser step: a global batch larger than fits in memory at once (same result).
    accumulation_steps: int = 1
    # Cap on the root mean square of the stride-16 image features (0: none). Unchecked, training
    # from scratch grows them far past the sine position encodings (RMS 0.7) and the prompt and
    # mask embeddings added to them, until the decoder can no longer locate a click and memory
    # encoding drowns the mask: a model that answers "the salient objects" whatever the prompt.
    max_feature_rms: float = 0.0
    # Share of steps that train on single images instead of clips (SAM 2 mixes image and video
    # data as well): an image step costs a fraction of a clip step, so segmentation quality
    # improves far faster per second, while the clip steps keep training memory.
    image_step_probability: float = 0.0
    images_per_step: int = 32
    # Held-out per-frame J every this many steps (0: never), written to log.jsonl.
    validate_every: int = 0
    checkpoint_every: int = 200
    log_every: int = 10

    def validate(self) -> None:
        # A clip of one frame is an image: the prompted frame alone, with its correction clicks
        # (SAM 2's image data), which trains segmentation without paying for memory.
        if self.steps < 1 or self.clip_length < 1 or self.max_objects < 1:
            raise ValueError("steps >= 1, clip_length >= 1 and max_objects >= 1 are required")
        if not 0 <= self.click_probability + self.box_probability <= 1:
            raise ValueError("click_probability + box_probability must lie in [0, 1]")
        if not 0 <= self.image_step_probability <= 1 or self.images_per_step < 1:
            raise ValueError("image_step_probability must lie in [0, 1] and images_per_step be >= 1")
        if self.log_every < 1 or self.checkpoint_every < 1:
            raise ValueError("log_every and checkpoint_every must be >= 1")
        if self.accumulation_steps < 1:
            raise ValueError("accumulation_steps must be >= 1")
        if self.validate_every < 0:
            raise ValueError("validate_every must be >= 0 (0: no validation)")
