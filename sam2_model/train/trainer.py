"""The training loop: clips -> ``ClipRollout`` -> AdamW, with resumable official-format checkpoints.

A checkpoint is ``{"model": state_dict, "train_state": {...}}``: the ``model`` entry uses the
official key names, so ``build_model`` and the official code load it as they load a released
checkpoint (both ignore the extra entry); ``train_state`` holds what resuming needs.
Every step draws its data from ``(seed, step)``, so a resumed run sees the clips an
uninterrupted run would have seen.

Under torchrun the step's clips are shared among the processes and gradients averaged by
``DistributedDataParallel`` (``distributed``): the weights after a step equal, within float
rounding, those of one process training on the whole batch.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import torch
from torch.nn.parallel import DistributedDataParallel

from ..checkpoint import CheckpointError, check_state_dict, load_checkpoint_file, read_checkpoint, save_checkpoint
from ..sam2 import SAM2Model
from . import distributed
from .clips import ClipSource, ModelClip, model_clip
from .distributed import SINGLE_PROCESS, World
from .losses import LossWeights
from .prompting import ObjectDraws
from .rollout import ClipRollout, RolloutResult
from .step_data import RolloutPlan, StepData, contiguous_block, draw_step_data
from .train_config import TrainConfig
from .validation import ValidationSet, validate

LAST_CHECKPOINT = "checkpoint_last.pt"
FINAL_WEIGHTS = "model.pt"
LOG_FILE = "log.jsonl"
NECK_PREFIX = "image_encoder.neck."


@dataclass
class StepReport:
    step: int
    losses: Dict[str, float]
    lr: float
    seconds: float
    num_objects: int
    image_step: bool = False
    # Seconds spent getting the step's data before it (drawing it, or waiting for the workers);
    # ``seconds`` is the step itself.
    data_seconds: float = 0.0


def learning_rate(config: TrainConfig, step: int) -> float:
    """Linear warm-up, then cosine decay to 1% of the peak."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    return config.lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


class _RolloutLoss(torch.nn.Module):
    """The rollout as a module's ``forward``, which is what DistributedDataParallel hooks into."""

    def __init__(self, model: SAM2Model, weights: LossWeights):
        super().__init__()
        self.model = model
        self.weights = weights

    def forward(self, images: torch.Tensor, truth: torch.Tensor, clip_of_object: torch.Tensor,
                plan: RolloutPlan, draws: ObjectDraws) -> Tuple[torch.Tensor, RolloutResult]:
        result = ClipRollout(self.model, draws, self.weights).run(images, truth, plan, clip_of_object)
        return result.losses.total, result


class Trainer:
    def __init__(self, model: SAM2Model, source: ClipSource, config: TrainConfig, out_dir: "str | Path",
                 weights: LossWeights = LossWeights(), config_yaml: Optional[str] = None,
                 image_source: Optional[ClipSource] = None, validation: Optional[ValidationSet] = None,
                 world: World = SINGLE_PROCESS):
        """``image_source`` gives the single frames of image steps (clips of one frame);
        ``validation`` the held-out clips scored every ``config.validate_every`` steps;
        ``world``: this process's place in a distributed run (its process group started)."""
        config.validate()
        passes = world.world_size * config.accumulation_steps
        if config.clips_per_step < passes or (config.image_step_probability > 0 and config.images_per_step < passes):
            raise ValueError(f"{world.world_size} process(es) x {config.accumulation_steps} accumulation step(s) "
                             f"need at least {passes} clips per step (clips_per_step {config.clips_per_step}"
                             + (f", images_per_step {config.images_per_step}"
                                if config.image_step_probability > 0 else "") + ")")
        self.world = world
        if config.image_step_probability > 0 and image_source is None:
            raise ValueError("image_step_probability > 0 needs an image_source")
        if config.validate_every > 0 and validation is None and world.is_main:
            raise ValueError("validate_every > 0 needs a validation set")
        self.validation = validation
        self.model = model
        self.source = source
        self.image_source = image_source
        self.config = config
        self.out_dir = Path(out_dir)
        self.weights = weights
        self.config_yaml = config_yaml
        for name, parameter in model.named_parameters():
            parameter.requires_grad_(not name.startswith(tuple(config.freeze)))
        trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        if not trainable:
            raise ValueError(f"--freeze {' '.join(config.freeze)} leaves nothing to train")
        # The feature cap scales the whole FPN neck (exact only if all of it is scaled); a neck
        # that is entirely frozen keeps the scale it has.
        neck = [p for n, p in model.named_parameters() if n.startswith(NECK_PREFIX)]
        capped = config.max_feature_rms > 0 and any(p.requires_grad for p in neck)
        self._capped_neck = neck if capped else []
        decay = [p for n, p in trainable if p.ndim > 1 and "pos" not in n]
        no_decay = [p for n, p in trainable if not (p.ndim > 1 and "pos" not in n)]
        self.optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                                            {"params": no_decay, "weight_decay": 0.0}], lr=config.lr)
        self.step = 0
        self._rollout = _RolloutLoss(model, weights)
        # Image steps leave the memory path unused, and a mask prompt the decoder: unused
        # parameters must be looked for. device_ids=None: the inputs are already on the device.
        self._ddp = DistributedDataParallel(self._rollout, device_ids=None, find_unused_parameters=True) \
            if world.distributed else None

    # ------------------------------------------------------------------ checkpoints
    def save(self, path: Optional[Path] = None) -> Path:
        path = path or self.out_dir / LAST_CHECKPOINT
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {"model": self.model.state_dict(),
                   "train_state": {"step": self.step, "optimizer": self.optimizer.state_dict(),
                                   "train_config": dataclasses.asdict(self.config),
                                   "loss_weights": dataclasses.asdict(self.weights)}}
        temporary = path.with_suffix(".tmp")
        torch.save(payload, temporary)
        os.replace(temporary, path)  # never leave a half-written checkpoint behind
        return path

    def resume(self, path: "str | Path") -> None:
        """Continue from a checkpoint written by ``save`` (weights, optimizer, step).

        Raises ``CheckpointError`` (a ValueError) naming the file and the problem: unreadable, a
        plain model checkpoint, another model (--config) or other frozen parts (--freeze). Everything
        is checked before anything is loaded, so a refusal leaves the trainer as it was."""
        path = os.fspath(path)
        payload = load_checkpoint_file(path, map_location=self.model.device)
        state = payload.get("train_state") if isinstance(payload, dict) else None
        if state is None:
            raise CheckpointError(f"{path} has no train_state: it is a plain model checkpoint; "
                                  "pass it as --checkpoint to start from its weights instead")
        try:
            step, optimizer_state = int(state["step"]), state["optimizer"]
            frozen = tuple(state.get("train_config", {}).get("freeze", self.config.freeze))
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise CheckpointError(f"{path}: its train_state is incomplete ({error!r}); it was not written by "
                                  "sam2-train") from None
        if frozen != tuple(self.config.freeze):
            # Other trainable parameters: the optimizer's state would not fit them.
            raise CheckpointError(f"{path} was trained with --freeze {' '.join(frozen) or '(none)'}, this run "
                                  f"has --freeze {' '.join(self.config.freeze) or '(none)'}: resume with the same")
        weights = read_checkpoint(payload)
        try:
            check_state_dict(self.model, weights)
        except CheckpointError as error:
            raise CheckpointError(f"{path}: {error} (resume with the --config it was trained with)") from None
        try:
            self.optimizer.load_state_dict(optimizer_state)  # checks the groups before it changes anything
        except (ValueError, KeyError, TypeError) as error:
            raise CheckpointError(f"{path}: its optimizer state does not fit this run: {error}") from None
        self.model.load_state_dict(weights, strict=True)
        self.step = step

    def export(self) -> Path:
        """The final weights alone, as an official checkpoint (and the config beside it)."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / FINAL_WEIGHTS
        save_checkpoint(self.model, path)
        if self.config_yaml is not None:
            (self.out_dir / "model.yaml").write_text(self.config_yaml)
        return path

    # ------------------------------------------------------------------ training
    def _autocast(self):
        if self.model.device.type == "cuda":
            return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def draw_step_data(self, step: int) -> StepData:
        return draw_step_data(self.config, step, self.source, self.image_source, self.model.image_size,
                              self.world.share)

    def train_step(self, data: Optional[StepData] = None) -> StepReport:
        """One optimiser step on ``clips_per_step`` clips (this process's share of them in a
        distributed run); ``data``: this step's, drawn elsewhere (by default here, from ``(seed, step)``)."""
        config = self.config
        model = self.model.train()
        started = time.perf_counter()
        if data is None:
            data = self.draw_step_data(self.step)
        lr = learning_rate(config, self.step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        clips = [model_clip(clip, ids, model.image_size, model.device) for clip, ids in zip(data.clips, data.obj_ids)]
        counts = distributed.gather_counts(sum(len(clip.obj_ids) for clip in clips), model.device)
        objects, first_object = sum(counts), sum(counts[:self.world.rank])
        sums: Dict[str, float] = {}
        # Mean square of the image features times the number of images, and that number.
        feature_squares = torch.zeros(2, dtype=torch.float64)
        passes = config.accumulation_steps
        for index in range(passes):
            batch = [clips[k] for k in contiguous_block(len(clips), index, passes)]
            # Every pass replays the step's random draws and takes its own objects' rows.
            draws = ObjectDraws(torch.Generator().manual_seed(data.generator_seed), first_object, objects)
            first_object += sum(len(clip.obj_ids) for clip in batch)
            synchronise = index == passes - 1 or self._ddp is None
            with contextlib.nullcontext() if synchronise else self._ddp.no_sync():
                result = self._pass(batch, data.plan, draws, objects, sums)
            images = sum(clip.images.shape[0] for clip in batch)
            feature_squares += torch.tensor([result.feature_rms ** 2 * images, images], dtype=torch.float64)
        # The whole step's figures (for logs and the feature cap), whichever process holds what.
        names = sorted(sums)
        summed = distributed.sum_across(torch.tensor([sums[name] for name in names] + feature_squares.tolist(),
                                                     dtype=torch.float64, device=model.device)).cpu()
        totals = dict(zip(names, summed[:len(names)].tolist()))
        feature_rms = math.sqrt(float(summed[-2] / summed[-1]))
        if config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], config.grad_clip)
        self.optimizer.step()
        self._cap_feature_scale(feature_rms)
        self.step += 1
        return StepReport(self.step, totals, lr, time.perf_counter() - started, objects, data.image_step)

    def _pass(self, clips: List[ModelClip], plan: RolloutPlan, draws: ObjectDraws, objects: int,
              sums: Dict[str, float]) -> RolloutResult:
        """Forward and backward on some clips of the step; their loss terms added to ``sums``."""
        images = torch.stack([clip.images for clip in clips])
        truth = torch.cat([clip.truth for clip in clips])
        clip_of_object = torch.cat([torch.full((len(clip.obj_ids),), k, dtype=torch.long)
                                    for k, clip in enumerate(clips)])
        with self._autocast():
            total, result = (self._ddp or self._rollout)(images, truth, clip_of_object, plan, draws)
        # Normalise per object of the whole step and per supervised decoder pass, so the scale does
        # not depend on how many objects, clips or corrections a step had, nor on how they are
        # shared: DDP averages the processes' gradients, so each process's part is scaled back up.
        scale = 1.0 / max(1, result.num_supervised * objects)
        (total * (scale * self.world.world_size)).backward()
        for name, value in result.losses.as_floats().items():
            sums[name] = sums.get(name, 0.0) + value * scale
        return result

    def _cap_feature_scale(self, feature_rms: float) -> None:
        """A max-norm constraint on the image features: the neck's outputs are linear in its
        weights and biases together, so scaling all of them scales the features exactly."""
        limit = self.config.max_feature_rms
        if not self._capped_neck or feature_rms <= limit:
            return
        with torch.no_grad():
            for parameter in self._capped_neck:
                parameter.mul_(limit / feature_rms)

    def _log_validation(self, log) -> None:
        """Held-out J into the log, and one line on stderr (infrequent, so even with no progress bar)."""
        scores = validate(self.model, self.validation)
        log.write(json.dumps({"step": self.step, "validation_j_per_frame": scores}) + "\n")
        log.flush()
        summary = ", ".join(f"{kind} prompt: frame 0 {j[0]:.3f}, last {j[-1]:.3f}, mean {sum(j) / len(j):.3f}"
                            for kind, j in scores.items())
        print(f"step {self.step}: held-out J ({summary})", file=sys.stderr, flush=True)

    def run(self, progress: bool = True, on_step: Optional[Callable[[StepReport], None]] = None,
            data_workers: int = 0) -> Optional[Path]:
        """Train until ``config.steps``; checkpoint every ``checkpoint_every`` steps and at the end.
        ``data_workers`` > 0: draw the data in that many worker processes (same data, same result).
        Returns the final weights' path (None on the other processes of a distributed run: rank 0
        alone writes files)."""
        main = self.world.is_main
        if main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        with contextlib.ExitStack() as stack:
            next_data = self.draw_step_data
            if data_workers > 0:
                from .prefetch import StepDataPrefetcher

                prefetcher = stack.enter_context(StepDataPrefetcher(
                    data_workers, self.config, self.source, self.image_source, self.model.image_size,
                    share=self.world.share))
                next_data = prefetcher.get
            self._run_steps(progress and main, on_step, next_data)
        if not main:
            return None
        self.save()
        return self.export()

    def _run_steps(self, progress: bool, on_step: Optional[Callable[[StepReport], None]],
                   next_data: Callable[[int], StepData]) -> None:
        main = self.world.is_main
        bar = _progress_bar(self.config.steps, self.step, enabled=progress)
        smoothed = None
        with open(self.out_dir / LOG_FILE, "a", encoding="utf-8") if main else contextlib.nullcontext() as log:
            while self.step < self.config.steps:
                waited = time.perf_counter()
                data = next_data(self.step)
                waited = time.perf_counter() - waited
                report = dataclasses.replace(self.train_step(data), data_seconds=waited)
                if on_step is not None:
                    on_step(report)
                if not main:
                    continue
                total = report.losses["total"]
                smoothed = total if smoothed is None else 0.95 * smoothed + 0.05 * total
                bar.update(1, f"loss {smoothed:.4f} lr {report.lr:.2e} {report.seconds:.2f}s/step")
                if report.step % self.config.log_every == 0 or report.step == self.config.steps:
                    log.write(json.dumps(dataclasses.asdict(report)) + "\n")
                    log.flush()
                if report.step % self.config.checkpoint_every == 0:
                    self.save()
                if self.config.validate_every > 0 and report.step % self.config.validate_every == 0:
                    self._log_validation(log)
        bar.close()


class _progress_bar:
    """tqdm when it is installed, else a line every few percent."""

    def __init__(self, total: int, initial: int, enabled: bool):
        self._bar = None
        self._enabled = enabled
        self._total, self._done, self._last_print = total, initial, 0.0
        if enabled:
            try:
                from tqdm import tqdm
                self._bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True)
            except ImportError:
                pass

    def update(self, count: int, text: str) -> None:
        self._done += count
        if self._bar is not None:
            self._bar.update(count)
            self._bar.set_postfix_str(text, refresh=False)
        elif self._enabled and time.monotonic() - self._last_print > 10:
            self._last_print = time.monotonic()
            print(f"step {self._done}/{self._total}: {text}", flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
