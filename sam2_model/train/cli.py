"""``sam2-train`` / ``python -m sam2_model.train``: train or fine-tune a SAM 2 model.

Examples::

    # fine-tune an official checkpoint on a DAVIS-format folder
    sam2-train --config sam2.1_hiera_tiny --checkpoint sam2.1_hiera_tiny.pt --davis my_videos/ --out runs/ft
    # train the bundled default architecture from scratch on the procedural generator
    sam2-train --config sam2_model/weights/default.yaml --procedural --steps 6000 --out runs/default
    # the same on 4 GPUs of one machine (DistributedDataParallel; each GPU takes a quarter of the clips)
    torchrun --standalone --nproc_per_node 4 -m sam2_model.train --config ... --clips-per-step 32 ...

Bad input (unknown config, unreadable checkpoint or folder) prints one line and exits 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import List, Optional

import torch
from torch.distributed.elastic.multiprocessing.errors import record

from ..build import build_model
from ..checkpoint import CheckpointError
from ..config import DEFAULT_CONFIG_PATH, DEFAULT_MODEL, ConfigError
from . import distributed
from .clips import ClipSource, DavisClips, ProceduralClips
from .losses import LossWeights
from .procedural import ProceduralConfig
from .train_config import TrainConfig
from .trainer import LAST_CHECKPOINT, Trainer
from .validation import ValidationSet, davis_validation_set, procedural_validation_set


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sam2-train", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    model = parser.add_argument_group("model")
    model.add_argument("--config", required=True,
                       help="released name (sam2.1_hiera_tiny, ...), 'default', or an official-format YAML")
    model.add_argument("--checkpoint", help="official checkpoint to start from (default: fresh weights; "
                                            "for --config default, the bundled weights)")
    model.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    data = parser.add_argument_group("data (one of)")
    which = data.add_mutually_exclusive_group(required=True)
    which.add_argument("--procedural", action="store_true", help="endless generated videos")
    which.add_argument("--davis", type=Path, metavar="DIR", help="DAVIS-format folder (JPEGImages/, Annotations/)")
    data.add_argument("--events", action="store_true",
                      help="--procedural: only videos in which a target hides for 3+ frames and comes back")
    data.add_argument("--frame-size", type=int, default=128, help="generated video side in pixels")
    generated = ProceduralConfig()
    data.add_argument("--min-targets", type=int, default=generated.min_targets,
                      help="labelled objects per generated video, at least (default: %(default)s)")
    data.add_argument("--max-targets", type=int, default=generated.max_targets,
                      help="labelled objects per generated video, at most (default: %(default)s)")
    data.add_argument("--max-distractors", type=int, default=generated.max_distractors,
                      help="unlabelled shapes per generated video, at most, some coloured like a target "
                           "(default: %(default)s)")
    run = parser.add_argument_group("training")
    defaults = TrainConfig()
    run.add_argument("--out", type=Path, required=True, help="run folder (checkpoints, log.jsonl, model.pt)")
    run.add_argument("--steps", type=int, default=defaults.steps)
    run.add_argument("--clip-length", type=int, default=defaults.clip_length)
    run.add_argument("--max-objects", type=int, default=defaults.max_objects)
    run.add_argument("--lr", type=float, default=defaults.lr)
    official = LossWeights()
    run.add_argument("--focal-weight", type=float, default=official.mask_focal,
                     help="weight of the focal mask loss (official: %(default)s)")
    run.add_argument("--dice-weight", type=float, default=official.dice,
                     help="weight of the dice loss (official: %(default)s); small models trained from scratch "
                          "collapse to empty masks under the official 20:1 ratio, see docs/benchmarks.md")
    run.add_argument("--object-score-weight", type=float, default=official.object_score,
                     help="weight of the object-score (present / absent) loss (official: %(default)s)")
    run.add_argument("--clips-per-step", type=int, default=defaults.clips_per_step,
                     help="clips per optimiser step, run as one batch: on small models far more objects per "
                          "second than one clip at a time (default: %(default)s)")
    run.add_argument("--accumulation-steps", type=int, default=defaults.accumulation_steps, metavar="K",
                     help="run each process's clips of a step in K passes, gradients summed (a larger batch than "
                          "fits in memory; same result; default: %(default)s)")
    run.add_argument("--dist-timeout", type=float, default=distributed.DEFAULT_TIMEOUT_S, metavar="S",
                     help="under torchrun: seconds a process waits for the others at a gradient exchange before "
                          "failing (default: %(default)s)")
    run.add_argument("--max-feature-rms", type=float, default=defaults.max_feature_rms, metavar="RMS",
                     help="keep the image features' root mean square at most this (0: no cap; 1 is a good "
                          "value when training an image encoder from scratch, see docs/benchmarks.md)")
    run.add_argument("--video-frames", type=int, default=24, metavar="N",
                     help="--procedural: frames per generated video, each clip cut from one (default: "
                          "%(default)s; clip length + 2 makes generation several times cheaper)")
    run.add_argument("--click-probability", type=float, default=defaults.click_probability,
                     help="first-frame prompt is a click with this probability (default: %(default)s)")
    run.add_argument("--box-probability", type=float, default=defaults.box_probability,
                     help="... a box with this one; otherwise the true mask (default: %(default)s)")
    run.add_argument("--image-step-probability", type=float, default=defaults.image_step_probability, metavar="P",
                     help="share of steps trained on single frames (click or box prompts) instead of clips: "
                          "cheap steps that improve segmentation (default: %(default)s)")
    run.add_argument("--images-per-step", type=int, default=defaults.images_per_step,
                     help="frames per image step, run as one batch (default: %(default)s)")
    run.add_argument("--validate-every", type=int, default=defaults.validate_every, metavar="N",
                     help="every N steps, per-frame J on held-out clips (box and mask prompts) into log.jsonl "
                          "(default: %(default)s = never)")
    run.add_argument("--validation-davis", type=Path, metavar="DIR",
                     help="held-out DAVIS-format folder for --validate-every (needed with --davis; with "
                          "--procedural the default is generated videos with events at fixed seeds)")
    run.add_argument("--validation-clips", type=int, default=12, metavar="K",
                     help="held-out clips of --clip-length frames (default: %(default)s)")
    run.add_argument("--warmup", type=int, default=defaults.warmup_steps)
    run.add_argument("--seed", type=int, default=defaults.seed)
    run.add_argument("--checkpoint-every", type=int, default=defaults.checkpoint_every)
    run.add_argument("--log-every", type=int, default=defaults.log_every, metavar="N",
                     help="write the step's losses and timing to log.jsonl every N steps (default: %(default)s)")
    run.add_argument("--freeze", nargs="+", default=[], metavar="MODULE",
                     help="keep these modules fixed (name prefixes, e.g. image_encoder sam_mask_decoder)")
    run.add_argument("--resume", action="store_true", help=f"continue from OUT/{LAST_CHECKPOINT}")
    run.add_argument("--threads", type=int, help="torch CPU threads")
    run.add_argument("--data-workers", type=int, default=0, metavar="N",
                     help="draw the training data in N worker processes, a few steps ahead (default: 0, in "
                          "the training process); the data and the result are the same. For GPUs, whose steps "
                          "are short: a step's generated videos take about 0.1 s of one core")
    run.add_argument("--no-progress", action="store_true")
    return parser


class TrainInputError(ValueError):
    pass


def _config_yaml_text(config: str) -> Optional[str]:
    path = DEFAULT_CONFIG_PATH if config == DEFAULT_MODEL else config
    return Path(path).read_text(encoding="utf-8") if os.path.isfile(path) else None


def _clip_source(args: argparse.Namespace, clip_length: int) -> ClipSource:
    if args.davis is not None:
        return DavisClips(args.davis, clip_length)
    # A single frame needs a one-frame video (generation costs per frame).
    frames = max(args.video_frames, clip_length) if clip_length > 1 else 1
    return ProceduralClips(clip_length, _generated_videos(args, frames, args.min_targets),
                           with_events=args.events and clip_length > 1)


def _generated_videos(args: argparse.Namespace, frames: int, min_targets: int) -> ProceduralConfig:
    return ProceduralConfig(height=args.frame_size, width=args.frame_size, num_frames=frames,
                            min_targets=min_targets, max_targets=args.max_targets,
                            max_distractors=args.max_distractors)


def _validation_set(args: argparse.Namespace, model) -> ValidationSet:
    if args.validation_clips < 1:
        raise ValueError("--validation-clips must be >= 1")
    if args.validation_davis is not None:
        return davis_validation_set(model, args.validation_davis, args.clip_length, args.validation_clips)
    if args.davis is not None:
        raise ValueError("--validate-every with --davis needs --validation-davis DIR (a held-out folder)")
    # Validation videos hold an event, so at least one target (their length is set by the set).
    generated = _generated_videos(args, args.clip_length, max(1, args.min_targets))
    return procedural_validation_set(model, args.clip_length, args.validation_clips, generated)


def run(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        world = distributed.world_from_environment()
        device = distributed.process_device(world, args.device)
        distributed.start(world, device, args.dist_timeout)  # refuses a timeout <= 0
    except distributed.DistributedSetupError as error:
        raise TrainInputError(str(error)) from None
    try:
        return _train(args, world, device)
    finally:
        distributed.stop()


def _train(args: argparse.Namespace, world: distributed.World, device: str) -> int:
    try:
        model = build_model(args.config, args.checkpoint, device=device)
    except (ConfigError, CheckpointError, OSError) as error:
        raise TrainInputError(str(error)) from None
    train_config = TrainConfig(steps=args.steps, clip_length=args.clip_length, max_objects=args.max_objects,
                               lr=args.lr, warmup_steps=args.warmup, seed=args.seed,
                               checkpoint_every=args.checkpoint_every, freeze=tuple(args.freeze),
                               clips_per_step=args.clips_per_step, max_feature_rms=args.max_feature_rms,
                               click_probability=args.click_probability, box_probability=args.box_probability,
                               image_step_probability=args.image_step_probability,
                               images_per_step=args.images_per_step, validate_every=args.validate_every,
                               accumulation_steps=args.accumulation_steps, log_every=args.log_every)
    try:
        train_config.validate()
        if args.data_workers < 0:
            raise ValueError("--data-workers must be >= 0")
        source = _clip_source(args, args.clip_length)
        # Image steps read single frames from the same data.
        image_source = _clip_source(args, 1) if train_config.image_step_probability > 0 else None
        validation = _validation_set(args, model) if train_config.validate_every > 0 and world.is_main else None
        weights = LossWeights(mask_focal=args.focal_weight, dice=args.dice_weight,
                              object_score=args.object_score_weight)
        trainer = Trainer(model, source, train_config, args.out, weights=weights,
                          config_yaml=_config_yaml_text(args.config), image_source=image_source,
                          validation=validation, world=world)
    except ValueError as error:
        raise TrainInputError(str(error)) from None
    last = args.out / LAST_CHECKPOINT
    if args.resume:
        if not last.exists():
            raise TrainInputError(f"--resume: {last} does not exist")
        try:
            trainer.resume(last)
        except CheckpointError as error:  # unreadable, not a training checkpoint, another --config/--freeze
            raise TrainInputError(f"--resume: {error}") from None
        if world.is_main:
            print(f"resuming at step {trainer.step} from {last}", file=sys.stderr)
    weights = trainer.run(progress=not args.no_progress, data_workers=args.data_workers)
    if world.is_main:
        processes = f" on {world.world_size} processes" if world.distributed else ""
        print(f"trained {trainer.step} steps{processes}; weights: {weights}")
    return 0


# Under torchrun, an exception that ends a process is written where torchrun reads it, so the
# job's failure report names the rank, its error and traceback (the other ranks are stopped).
@record
def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except TrainInputError as error:
        print(f"sam2-train: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"sam2-train: interrupted; resume with --resume (last checkpoint in {args.out})", file=sys.stderr)
        return 130
