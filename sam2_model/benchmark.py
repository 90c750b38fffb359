"""Speed benchmarks: ``python -m sam2_model.benchmark [--tracker]``.

Image mode prints ms per image for the image encoder and ms per prompt for the decoder.
Tracker mode prints, for 1/4/16 objects, ms per frame (p50/p99), frames per second and peak
memory of the StreamingTracker, and the same for the official ``sam2`` video predictor when
that package is importable (a development-only comparison; it is never a dependency), with the
ratio. Weights are random (timing does not depend on them) unless ``--checkpoint`` is given.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Callable, List, Optional

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


def benchmark_tracker(args: argparse.Namespace, device: torch.device, dtype: torch.dtype, num_objects: int
                      ) -> Timing:
    model = build_model(args.model, args.checkpoint, device=device, dtype=dtype)
    autocast = torch.bfloat16 if args.bf16 else None
    tracker = StreamingTracker(model, autocast_dtype=autocast)
    size = model.image_size
    frames = synthetic_frames(args.warmup + args.iterations + 1, size)
    tracker.track(frames[0])
    for obj_id, click in enumerate(object_clicks(num_objects, size), start=1):
        tracker.add_prompt(obj_id, points=[click], labels=[1])
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    samples = _time(lambda step: tracker.track(frames[1 + step]), args.iterations, args.warmup, device)
    return Timing(f"ours, {num_objects} object(s)", samples, _peak_memory_mb(device))


def benchmark_official_tracker(args: argparse.Namespace, device: torch.device, num_objects: int
                               ) -> Optional[Timing]:
    """The official predictor on the same frames and clicks, if ``sam2`` is importable."""
    try:
        from .official_reference import OfficialStream
    except ImportError as error:
        print(f"(official sam2 package not importable: {error}; skipping the comparison)")
        return None
    model = build_model(args.model, args.checkpoint, device=device)
    size = model.image_size
    frames = synthetic_frames(args.warmup + args.iterations + 1, size)
    stream = OfficialStream(args.model, model.state_dict(), frames, device)
    for obj_id, click in enumerate(object_clicks(num_objects, size), start=1):
        stream.add_points(0, obj_id, [click], [1])
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    samples = _time(lambda step: stream.track(1 + step), args.iterations, args.warmup, device)
    return Timing(f"official, {num_objects} object(s)", samples, _peak_memory_mb(device))


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
    add_amg_arguments(parser)
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    print(f"model {args.model}, device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else os.cpu_count()} "
          f"{'' if device.type == 'cuda' else 'CPU cores'}), dtype {args.dtype}{', bf16 autocast' if args.bf16 else ''}, "
          f"torch {torch.__version__}, {args.iterations} iterations after {args.warmup} warm-up")
    if args.amg:
        run_amg_benchmark(args, device, dtype)
        return 0
    if not args.tracker:
        for timing in benchmark_image(args, device, dtype):
            print(timing.line())
        return 0
    for count in [int(c) for c in args.objects.split(",") if c]:
        ours = benchmark_tracker(args, device, dtype, count)
        print(ours.line())
        gc.collect()
        if not args.no_official:
            official = benchmark_official_tracker(args, device, count)
            if official is not None:
                print(official.line())
                print(f"{'':<34} speed-up (official p50 / ours p50): "
                      f"{official.percentile(50) / ours.percentile(50):.2f}x")
        gc.collect()
    return 0


if __name__ == "__main__":
    sys.exit(main())
