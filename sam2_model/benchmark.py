"""Speed benchmarks: ``python -m sam2_model.benchmark [--tracker]``.

Image mode prints ms per image for the image encoder and ms per prompt for the decoder.
Tracker mode prints, for 1/4/16 objects, ms per frame (p50/p99), frames per second and peak
memory of the StreamingTracker, and the same for the official ``sam2`` video predictor when
that package is importable (a development-only comparison; it is never a dependency), with the
ratio. Weights are random (timing does not depend on them) unless ``--checkpoint`` is given.

Tracker comparisons are noisy on a shared machine: ``--repeats N`` alternates the two
implementations N times on the same frames and prints each repeat's ratio with the median and
spread; ``--stages`` adds a per-stage breakdown (ms per frame) of both. The official package skips
hole filling without its CUDA extension; ``--fill-hole-area 0`` turns ours off too, for a
like-for-like comparison, and every run says which side fills holes.
"""

from __future__ import annotations

import argparse
import fnmatch
import gc
import os
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from .amg_benchmark import add_amg_arguments, run_amg_benchmark
from .build import build_model
from .image_predictor import ImagePredictor
from .tracker import StreamingTracker


@dataclass
class Timing:
    label: str
    samples_ms: List[float]
    peak_memory_mb: Optional[float] = None

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.samples_ms, q))

    @property
    def fps(self) -> float:
        return 1000.0 / statistics.mean(self.samples_ms)

    def line(self) -> str:
        memory = f"  peak {self.peak_memory_mb:8.1f} MB" if self.peak_memory_mb is not None else ""
        return (f"{self.label:<34} p50 {self.percentile(50):9.1f} ms  p99 {self.percentile(99):9.1f} ms  "
                f"{self.fps:8.2f} /s{memory}")


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_memory_mb(device: torch.device) -> Optional[float]:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    except ImportError:  # pragma: no cover - non-POSIX
        return None


def _time(fn: Callable[[int], None], iterations: int, warmup: int, device: torch.device) -> List[float]:
    for step in range(warmup):
        fn(step)
    _synchronize(device)
    samples = []
    for step in range(iterations):
        start = time.perf_counter()
        fn(warmup + step)
        _synchronize(device)
        samples.append((time.perf_counter() - start) * 1000.0)
    return samples


def synthetic_frames(count: int, size: int, seed: int = 0) -> List[np.ndarray]:
    """Moving bright squares on a noisy background, so masks are non-trivial."""
    rng = np.random.default_rng(seed)
    frames = []
    for index in range(count):
        frame = rng.integers(0, 60, size=(size, size, 3), dtype=np.uint8)
        for k in range(16):
            x = (37 * k + 5 * index) % (size - size // 8)
            y = (53 * k + 3 * index) % (size - size // 8)
            frame[y:y + size // 10, x:x + size // 10] = (40 + 12 * k) % 255
        frames.append(frame)
    return frames


def object_clicks(num_objects: int, size: int) -> List[List[float]]:
    return [[float((37 * k) % (size - size // 8) + size // 20), float((53 * k) % (size - size // 8) + size // 20)]
            for k in range(num_objects)]


def benchmark_image(args: argparse.Namespace, device: torch.device, dtype: torch.dtype) -> List[Timing]:
    model = build_model(args.model, args.checkpoint, device=device, dtype=dtype)
    size = model.image_size
    frame = synthetic_frames(1, size)[0]
    predictor = ImagePredictor(model)
    encoder = Timing("image encoder (set_image)", _time(lambda _: predictor.set_image(frame), args.iterations,
                                                         args.warmup, device))
    click = object_clicks(1, size)[0]
    decoder = Timing("decoder (one click)", _time(lambda _: predictor.predict([click], [1]), args.iterations * 5,
                                                  args.warmup, device))
    timings = [encoder, decoder]
    if not args.no_official:
        try:
            from .official_reference import OfficialImage
        except ImportError as error:
            print(f"(official sam2 package not importable: {error}; skipping the comparison)")
            return timings
        official = OfficialImage(args.model, model.state_dict(), device)
        timings.append(Timing("official image encoder (set_image)",
                              _time(lambda _: official.set_image(frame), args.iterations, args.warmup, device)))
        timings.append(Timing("official decoder (one click)",
                              _time(lambda _: official.predict([click], [1]), args.iterations * 5, args.warmup,
                                    device)))
        print(f"image encoder speed-up (official p50 / ours p50): "
              f"{timings[2].percentile(50) / encoder.percentile(50):.2f}x")
    return timings


# Stages of one tracked frame, by module path (the same names in both implementations: ours
# are named as in official checkpoints). Nested stages are shown indented under their parent.
TRACKER_STAGES: Tuple[Tuple[str, Tuple[str, ...]], ...] = (
    ("image encoder", ("image_encoder", "sam_mask_decoder.conv_s0", "sam_mask_decoder.conv_s1")),
    ("memory attention", ("memory_attention",)),
    ("  layer 0 self-attention", ("memory_attention.layers.0.self_attn",)),
    ("  layers 1+ self-attention", ("memory_attention.layers.[1-9]*.self_attn",)),
    ("  cross-attention", ("memory_attention.layers.*.cross_attn_image",)),
    ("    key projections", ("memory_attention.layers.*.cross_attn_image.k_proj",)),
    ("    value projections", ("memory_attention.layers.*.cross_attn_image.v_proj",)),
    ("  feed-forward", ("memory_attention.layers.*.linear[12]",)),
    ("mask decoder", ("sam_prompt_encoder", "sam_mask_decoder")),
    ("memory encoder", ("memory_encoder",)),
)
HOLE_FILLING_STAGE = "hole filling"
TOP_LEVEL_STAGES = ("image encoder", "memory attention", "mask decoder", "memory encoder", HOLE_FILLING_STAGE)


class StageTimer:
    """Wall time spent in named modules (and wrapped functions) while enabled, summed over calls.

    Forward pre-/post-hooks on every module whose path matches a stage's patterns; on a CPU
    every call is synchronous, on CUDA each boundary synchronises (which slows the run a little).
    """

    def __init__(self, root: torch.nn.Module, device: torch.device,
                 stages: Sequence[Tuple[str, Sequence[str]]] = TRACKER_STAGES):
        self.device = device
        self.totals_ms: Dict[str, float] = {name: 0.0 for name, _ in stages}
        self.enabled = False
        self._handles = []
        for name, patterns in stages:
            modules = [m for path, m in root.named_modules() if any(fnmatch.fnmatchcase(path, p) for p in patterns)]
            if not modules:
                raise ValueError(f"stage {name!r}: no module matches {list(patterns)}")
            for module in modules:
                self._handles.append(module.register_forward_pre_hook(self._pre_hook))
                self._handles.append(module.register_forward_hook(self._post_hook(name)))

    def _pre_hook(self, module, _inputs):
        if self.enabled:
            _synchronize(self.device)
            module._stage_timer_start = time.perf_counter()

    def _post_hook(self, name: str):
        def hook(module, _inputs, _output):
            start = getattr(module, "_stage_timer_start", None)
            if self.enabled and start is not None:
                _synchronize(self.device)
                self.totals_ms[name] += (time.perf_counter() - start) * 1000.0
                module._stage_timer_start = None
        return hook

    def wrap(self, name: str, fn: Callable) -> Callable:
        """``fn`` timed as stage ``name`` (for stages that are functions, not modules)."""
        self.totals_ms.setdefault(name, 0.0)

        def timed(*args, **kwargs):
            if not self.enabled:
                return fn(*args, **kwargs)
            _synchronize(self.device)
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                _synchronize(self.device)
                self.totals_ms[name] += (time.perf_counter() - start) * 1000.0
        return timed

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()


@dataclass
class StageBreakdown:
    label: str
    per_frame_ms: Dict[str, float]
    total_ms: float

    def lines(self) -> List[str]:
        out = [f"{self.label}: {self.total_ms:.1f} ms per frame"]
        accounted = sum(self.per_frame_ms.get(name, 0.0) for name in TOP_LEVEL_STAGES)
        for name, ms in list(self.per_frame_ms.items()) + [("rest (memory gathering, bookkeeping)",
                                                             self.total_ms - accounted)]:
            out.append(f"  {name:<40} {ms:9.1f} ms  {100.0 * ms / self.total_ms:5.1f} %")
        return out


def _stage_breakdown(label: str, timer: StageTimer, step: Callable[[int], None], frames: Sequence[int],
                     device: torch.device) -> StageBreakdown:
    timer.enabled = True
    samples = _time(lambda k: step(frames[k]), len(frames), 0, device)
    timer.enabled = False
    count = len(frames)
    return StageBreakdown(label, {name: total / count for name, total in timer.totals_ms.items()},
                          statistics.mean(samples))


def official_fills_holes(fill_hole_area: int) -> bool:
    """The official predictor fills holes only with its CUDA extension (else it warns and skips)."""
    if fill_hole_area <= 0:
        return False
    try:
        import sam2._C  # noqa: F401
    except ImportError:
        return False
    return True


class OursSide:
    """Our StreamingTracker on the synthetic frames, prompted on frame 0."""

    def __init__(self, args: argparse.Namespace, device: torch.device, dtype: torch.dtype, num_objects: int,
                 num_frames: int):
        model = build_model(args.model, args.checkpoint, device=device, dtype=dtype)
        frames = synthetic_frames(num_frames, model.image_size)
        self.state_dict = model.state_dict()
        autocast = torch.bfloat16 if args.bf16 else None
        options = {} if args.fill_hole_area is None else {"fill_hole_area": args.fill_hole_area}
        self.tracker = StreamingTracker(model, autocast_dtype=autocast, **options)
        self.frames = frames
        self.tracker.track(frames[0])
        for obj_id, click in enumerate(object_clicks(num_objects, model.image_size), start=1):
            self.tracker.add_prompt(obj_id, points=[click], labels=[1])

    @property
    def fill_hole_area(self) -> int:
        return self.tracker.options.fill_hole_area

    def step(self, frame_index: int) -> None:
        self.tracker.track(self.frames[frame_index])

    def stage_timer(self, device: torch.device) -> StageTimer:
        timer = StageTimer(self.tracker.model, device)
        self.tracker._fill_holes = timer.wrap(HOLE_FILLING_STAGE, self.tracker._fill_holes)
        return timer


class OfficialSide:
    """The official predictor on the same frames and clicks, with the same weights."""

    def __init__(self, args: argparse.Namespace, device: torch.device, num_objects: int, frames: List[np.ndarray],
                 state_dict: Dict[str, torch.Tensor], fill_hole_area: int):
        from .official_reference import OfficialStream  # ImportError: no comparison

        self.stream = OfficialStream(args.model, state_dict, frames, device)
        self.stream.predictor.fill_hole_area = fill_hole_area
        for obj_id, click in enumerate(object_clicks(num_objects, self.stream.predictor.image_size), start=1):
            self.stream.add_points(0, obj_id, [click], [1])
        self.fills_holes = official_fills_holes(fill_hole_area)

    def step(self, frame_index: int) -> None:
        self.stream.track(frame_index)

    def stage_timer(self, device: torch.device) -> StageTimer:
        import sam2.sam2_video_predictor as official_video

        timer = StageTimer(self.stream.predictor, device)
        official_video.fill_holes_in_mask_scores = timer.wrap(HOLE_FILLING_STAGE,
                                                              official_video.fill_holes_in_mask_scores)
        return timer


@dataclass
class RatioSummary:
    """Official p50 / ours p50 per repeat, and their median and spread."""

    ratios: List[float]

    @property
    def median(self) -> float:
        return statistics.median(self.ratios)

    def line(self) -> str:
        q1, q3 = np.percentile(self.ratios, [25, 75])
        return (f"speed-up (official p50 / ours p50) over {len(self.ratios)} repeat(s): median "
                f"{self.median:.2f}x, min {min(self.ratios):.2f}x, max {max(self.ratios):.2f}x, "
                f"IQR {q1:.2f}x-{q3:.2f}x")


def compare_tracker(args: argparse.Namespace, device: torch.device, dtype: torch.dtype, num_objects: int) -> None:
    """Ours (and the official predictor when importable) on the same frames, ``--repeats`` times
    alternately; then, with ``--stages``, where each frame's time goes."""
    per_repeat = args.warmup + args.iterations
    stage_frames = args.iterations if args.stages else 0
    ours = OursSide(args, device, dtype, num_objects, 1 + args.repeats * per_repeat + stage_frames)
    frames = ours.frames
    official: Optional[OfficialSide] = None
    if not args.no_official:
        try:
            official = OfficialSide(args, device, num_objects, frames, ours.state_dict, ours.fill_hole_area)
        except ImportError as error:
            print(f"(official sam2 package not importable: {error}; skipping the comparison)")
    fills = f"ours {'on (fill_hole_area ' + str(ours.fill_hole_area) + ')' if ours.fill_hole_area > 0 else 'off'}"
    if official is not None:
        why = "" if official.fills_holes or ours.fill_hole_area <= 0 else " (no CUDA extension sam2._C)"
        fills += f", official {'on' if official.fills_holes else 'off'}{why}"
    print(f"{num_objects} object(s); hole filling: {fills}")
    ours_samples: List[float] = []
    official_samples: List[float] = []
    ratios: List[float] = []
    for repeat in range(args.repeats):
        first = 1 + repeat * per_repeat
        indices = list(range(first, first + per_repeat))
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        ours_times = _time(lambda k: ours.step(indices[k]), args.iterations, args.warmup, device)
        ours_samples += ours_times
        line = f"  repeat {repeat + 1}: ours p50 {np.percentile(ours_times, 50):9.1f} ms"
        if official is not None:
            official_times = _time(lambda k: official.step(indices[k]), args.iterations, args.warmup, device)
            official_samples += official_times
            ratios.append(float(np.percentile(official_times, 50) / np.percentile(ours_times, 50)))
            line += f", official p50 {np.percentile(official_times, 50):9.1f} ms, ratio {ratios[-1]:.2f}x"
        print(line, flush=True)
        gc.collect()
    print(Timing(f"ours, {num_objects} object(s)", ours_samples, _peak_memory_mb(device)).line())
    if official is not None:
        print(Timing(f"official, {num_objects} object(s)", official_samples, _peak_memory_mb(device)).line())
        print(RatioSummary(ratios).line())
    if args.stages:
        stage_indices = list(range(1 + args.repeats * per_repeat, len(frames)))
        sides = [("ours", ours)] + ([("official", official)] if official is not None else [])
        for label, side in sides:
            timer = side.stage_timer(device)
            breakdown = _stage_breakdown(f"stages, {label}, {num_objects} object(s)", timer, side.step,
                                         stage_indices, device)
            timer.remove()
            print("\n".join(breakdown.lines()), flush=True)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="sam2.1_hiera_tiny", help="released name or YAML config")
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--bf16", action="store_true", help="bfloat16 autocast in the tracker")
    parser.add_argument("--tracker", action="store_true", help="benchmark the StreamingTracker")
    parser.add_argument("--objects", default="1,4,16", help="comma-separated object counts (tracker mode)")
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--no-official", action="store_true", help="skip the official comparison")
    parser.add_argument("--repeats", type=int, default=1,
                        help="tracker mode: alternate ours and official this many times, print each ratio, "
                             "their median and spread")
    parser.add_argument("--fill-hole-area", type=int, default=None,
                        help="tracker mode: our fill_hole_area (default: the tracker's); 0 turns hole filling off, "
                             "like the official predictor without its CUDA extension")
    parser.add_argument("--stages", action="store_true",
                        help="tracker mode: also print where each frame's time goes, per stage, for both")
    add_amg_arguments(parser)
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{os.cpu_count()} CPU cores"
    print(f"model {args.model}, device {device} ({where}), dtype {args.dtype}"
          f"{', bf16 autocast' if args.bf16 else ''}, torch {torch.__version__}, {args.iterations} iterations after "
          f"{args.warmup} warm-up")
    _print_load("at start")
    if args.amg:
        run_amg_benchmark(args, device, dtype)
        return 0
    if not args.tracker:
        for timing in benchmark_image(args, device, dtype):
            print(timing.line())
        return 0
    if args.repeats < 1:
        raise SystemExit("--repeats must be at least 1")
    for count in [int(c) for c in args.objects.split(",") if c]:
        compare_tracker(args, device, dtype, count)
        gc.collect()
    _print_load("at end")
    return 0


def _print_load(when: str) -> None:
    """Other jobs on the machine skew absolute times (ratios in one run less so): say how busy it was."""
    if hasattr(os, "getloadavg"):
        print(f"load average {when}: " + ", ".join(f"{value:.2f}" for value in os.getloadavg()) + " (1, 5, 15 min)",
              flush=True)


if __name__ == "__main__":
    sys.exit(main())
