"""What a memory policy costs over SAM 2's own memory, per frame: ``python -m sam2_model.policy_benchmark``.

Issue 25 bounds the robust policy at 10 % more time per frame than ``official``. Each frame is
encoded once (timed apart), then an ``official`` and a ``--policy`` tracker each track it from the
same features, in alternating order so that load on the machine hits both alike. Printed per object
count: the encoder's and both trackers' p50/p90/p99 ms, the policy's extra time per frame (paired,
frame by frame) and that extra as a share of a whole official frame (encoder + tracking): the median
of the per-frame shares and the share of the medians, the figure the issue bounds. ``--json``
writes the same numbers.

Frames come from procedural videos with hide-and-return events, so the policy's paths for hidden
and returning objects run too; the tracker resizes them to the model's input, so a full-size model
works on full-size masks (the policy's host copy grows with them). Objects are each video's targets,
repeated when more are asked for (timing only; ``--objects targets``: each video's own targets).
Weights are random unless ``--checkpoint`` is given: a random model's scores send objects down other
paths than trained weights would, so the numbers are a cost, not an accuracy.
``tools/device_robust.sh`` runs this on a GPU in one call.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from .benchmark import _synchronize
from .build import build_model
from .tracker import StreamingTracker
from .train.procedural import ProceduralConfig, generate_with_events

PERCENTILES = (50, 90, 99)
FIRST_SEED = 7300  # the generated videos' seeds: FIRST_SEED, FIRST_SEED + 1, ... (timing only)
EACH_VIDEOS_TARGETS = "targets"  # an --objects entry: as many objects as the video has targets


def percentiles(samples: Sequence[float]) -> Dict[str, float]:
    return {f"p{q}": float(np.percentile(samples, q)) for q in PERCENTILES}


@dataclass
class PolicyTimings:
    """Per-frame times (ms) of one object count (None: each video's targets), every list in frame
    order, warm-up frames left out."""

    objects: Optional[int]
    encode_ms: List[float] = field(default_factory=list)
    official_ms: List[float] = field(default_factory=list)
    policy_ms: List[float] = field(default_factory=list)

    def add(self, encode_ms: float, official_ms: float, policy_ms: float) -> None:
        self.encode_ms.append(encode_ms)
        self.official_ms.append(official_ms)
        self.policy_ms.append(policy_ms)

    def summary(self) -> Dict[str, object]:
        encode, official, policy = (np.asarray(v) for v in (self.encode_ms, self.official_ms, self.policy_ms))
        extra = policy - official
        medians = {name: float(np.median(v)) for name, v in (("encode", encode), ("official", official),
                                                                ("policy", policy))}
        whole = medians["encode"] + medians["official"]
        return {
            "objects": EACH_VIDEOS_TARGETS if self.objects is None else self.objects,
            "frames": len(self.encode_ms),
            "encode_ms": percentiles(encode),
            "official_ms": percentiles(official),
            "policy_ms": percentiles(policy),
            "extra_ms": percentiles(extra),
            # The figure: the policy's extra over a whole official frame, from the medians.
            "share_of_medians": (medians["policy"] - medians["official"]) / whole,
            "share_per_frame": percentiles(extra / (encode + official)),
            "tracking_ratio": medians["policy"] / medians["official"],
        }


def time_policy(model, policy: str, objects: Optional[int], videos: int, frames: int, size: int, seed: int, warmup: int,
                autocast: Optional[torch.dtype] = None) -> PolicyTimings:
    """Track ``videos`` procedural videos with ``objects`` objects (None: the video's targets) under
    both policies, timing every frame."""
    device = next(model.parameters()).device
    timings = PolicyTimings(objects)
    for index in range(videos):
        video = generate_with_events(seed + index, ProceduralConfig(height=size, width=size, num_frames=frames))
        trackers = {name: StreamingTracker(model, memory_policy=name, autocast=autocast)
                    for name in ("official", policy)}
        for t, frame in enumerate(video.frames):
            start = time.perf_counter()
            prepared = trackers["official"].prepare_frame(frame)
            features = trackers["official"].encode([prepared])[0]
            _synchronize(device)
            encode_ms = 1e3 * (time.perf_counter() - start)
            spent = {}
            for name in (("official", policy) if t % 2 == 0 else (policy, "official")):
                start = time.perf_counter()
                result = trackers[name].track_encoded(prepared, features)
                result.masks.cpu()  # what a caller waits for: the masks on the host
                spent[name] = 1e3 * (time.perf_counter() - start)
                if t == 0:
                    for obj_id in range(1, (objects or video.num_targets) + 1):
                        target = (obj_id - 1) % video.num_targets + 1
                        trackers[name].add_prompt(obj_id, mask=video.labels[0] == target)
            if t >= warmup:  # frame 0 is the prompt frame; the first frames also warm up kernels
                timings.add(encode_ms, spent["official"], spent[policy])
    return timings


def format_summary(policy: str, summary: Dict[str, object]) -> str:
    def ms(name: str) -> str:
        values = summary[name]
        return f"{values['p50']:.1f}/{values['p90']:.1f}/{values['p99']:.1f}"

    share = summary["share_per_frame"]
    count = summary["objects"]
    objects = "each video's targets" if count == EACH_VIDEOS_TARGETS else f"{count:>3} objects"
    return (f"{objects}, {summary['frames']} frames: encoder {ms('encode_ms')} ms, "
            f"tracking official {ms('official_ms')} ms, {policy} {ms('policy_ms')} ms (p50/p90/p99); "
            f"extra per frame {ms('extra_ms')} ms; {policy} / official tracking x{summary['tracking_ratio']:.2f}; "
            f"extra as a share of a whole frame {100 * summary['share_of_medians']:+.1f} % "
            f"(per frame p50/p90/p99 {100 * share['p50']:+.1f}/{100 * share['p90']:+.1f}/{100 * share['p99']:+.1f} %)")


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m sam2_model.policy_benchmark",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default", help="released name, 'default' or official YAML")
    parser.add_argument("--checkpoint", default=None, help="official checkpoint (omit: random weights, "
                                                           "bundled ones for 'default')")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"))
    parser.add_argument("--bf16", action="store_true", help="bfloat16 autocast in both trackers")
    parser.add_argument("--policy", default="robust", help="the memory_policy timed against official")
    parser.add_argument("--objects", default="1,4,16",
                        help=f"comma-separated object counts; '{EACH_VIDEOS_TARGETS}': each video's own targets (1-3)")
    parser.add_argument("--videos", type=int, default=4)
    parser.add_argument("--frames", type=int, default=48, help="frames per video")
    parser.add_argument("--size", type=int, default=128, help="generated frames' side in pixels")
    parser.add_argument("--seed", type=int, default=FIRST_SEED, help="the first video's seed")
    parser.add_argument("--warmup", type=int, default=2, help="first frames of each video left out of the times")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = parser.parse_args(argv)
    try:
        args.objects = [None if count == EACH_VIDEOS_TARGETS else int(count)
                        for count in args.objects.split(",") if count]
    except ValueError:
        parser.error(f"--objects takes comma-separated counts or '{EACH_VIDEOS_TARGETS}', got {args.objects!r}")
    if not args.objects or any(count is not None and count < 1 for count in args.objects):
        parser.error("--objects: each count must be at least 1")
    if args.videos < 1 or args.frames <= args.warmup or args.warmup < 0:
        parser.error("need --videos >= 1 and more --frames than --warmup (>= 0)")
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    device = torch.device(args.device)
    model = build_model(args.model, args.checkpoint, device=device, dtype=getattr(torch, args.dtype))
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{os.cpu_count()} CPU cores"
    header = {"model": args.model, "checkpoint": args.checkpoint, "device": f"{device} ({where})",
              "dtype": args.dtype, "bf16_autocast": args.bf16, "torch": torch.__version__, "policy": args.policy,
              "videos": args.videos, "frames_per_video": args.frames, "warmup_frames": args.warmup,
              "generated_size": args.size, "model_input": model.image_size}
    print(", ".join(f"{key} {value}" for key, value in header.items()), flush=True)
    report = dict(header, results=[])
    for count in args.objects:
        timings = time_policy(model, args.policy, count, args.videos, args.frames, args.size, args.seed,
                              args.warmup, autocast=torch.bfloat16 if args.bf16 else None)
        summary = timings.summary()
        report["results"].append(dict(summary, samples=asdict(timings)))
        print(format_summary(args.policy, summary), flush=True)
        if args.json is not None:  # rewritten after each count, so a run cut short keeps what it measured
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
