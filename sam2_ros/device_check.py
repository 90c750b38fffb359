"""The GPU check, in one call on a borrowed machine: ``python -m sam2_ros.device_check --minutes M --out DIR``.

``tools/device_check.sh MINUTES`` wraps it. Needs only torch, numpy and pyyaml (and Pillow for the
node's image decoding), run from the checkout; ROS is used only where it imports. In order:

1. ``parity``: the reference sessions (official SAM 2 outputs, ``sam2_model.reference_sessions``)
   replayed on the device in float32 with TF32 off; the worst logit and object-score differences
   against the tolerance.
2. ``bf16``: the bundled trained model tracking generated videos in float32 and under bfloat16
   autocast; mask IoU between the two and agreement of the visible/absent decisions.
3. ``benchmark``: StreamingTracker ms per frame (p50/p99), frames per second and peak memory for
   each model (random weights: timing does not depend on them) at each object count, eager, for
   each autocast setting asked for.
4. ``node_latency``: the node behind a synthetic camera (``sam2_ros.node_latency``: the real node
   where rclpy imports, else the node's per-frame path without DDS); latency p50/p99, frames
   processed and dropped.
5. ``amg``: the AutomaticMaskGenerator (``sam2_model.amg_benchmark``) at 32 points per side on a
   generated scene at each model's input size: ms per image and masks per second (the official
   generator is not installed on a device machine; the CPU comparison is in docs/benchmarks.md).
6. ``robust_policy``: what the robust memory policy costs over ``official`` (issue 25's bound: 10 %
   of a frame), both tracking the same encoded frames of generated videos in turn
   (``sam2_model.policy_benchmark``): ms p50/p99 of the encoder and each tracker, the extra per
   frame and as a share of a whole official frame, per model, precision and object count.
7. ``benchmark_compiled``: as 3 with ``torch.compile`` applied to the modules asked for, with the
   compile time and the speed-up over eager. Last, because compiling is the slowest step.

Time guard: everything stops by ``--minutes`` after the start. A step starts only if the time
left is larger than what the last step of its kind took; at the deadline an alarm interrupts
whatever runs. The report (``device_check.json`` and ``device_check.md`` in ``--out``) is
rewritten after every measurement, so whatever stops the run leaves what was measured; a section
cut short says so in its ``status``.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import os
import platform
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import numpy as np
import torch

import sam2_model
from sam2_model.amg_benchmark import scene_image, time_generator
from sam2_model.benchmark import Timing, _peak_memory_mb, _time, object_clicks, synthetic_frames
from sam2_model.config import DEFAULT_MODEL
from sam2_model.policy_benchmark import FIRST_SEED, time_policy
from sam2_model.prompted_tracking import track_prompted_by_first_masks
from sam2_model.reference_sessions import LOGIT_TOLERANCE, SCORE_TOLERANCE, build_session_model, load_session
from sam2_model.reference_sessions import make_tracker, replay
from sam2_model.train.procedural import generate_with_events

from . import node_latency

REPO = Path(__file__).resolve().parents[1]
SECTIONS = ("parity", "bf16", "benchmark", "node_latency", "amg", "robust_policy", "benchmark_compiled")
# bf16 autocast bars (tests/test_full_size_and_bf16.py): mean mask IoU with float32, and the
# share of visible/absent decisions that agree.
BF16_MIN_MEAN_IOU = 0.98
BF16_MIN_AGREEMENT = 0.95
WRITE_RESERVE_S = 2.0  # kept back from the budget for the last report


class TimeUp(Exception):
    """The check's time budget is spent."""


@dataclass
class CheckSettings:
    """Everything one run measures; the defaults are the GPU run's (``--help`` lists them).

    Args:
        minutes: the time budget of the whole run.
        out: where device_check.json and device_check.md go.
        device: the torch device.
        parity_dir: the folder of the ``*_stream.pt`` reference sessions (the sessions shipped in
            tests/data are replayed too).
        parity_events: replay only the first N events of each session (0: all).
        bf16_model: the model of the bf16 agreement (trained weights: a random model's object
            scores sit near 0, so one rounding flips a decision for reasons that are not precision).
        bf16_videos, bf16_frames: generated videos (seeds 2000, 2001, ...) and frames of each (0: all).
        models: the benchmark's models (released names, ``default`` or YAML paths).
        objects: the benchmark's object counts.
        iterations, warmup: timed and untimed frames per benchmark row.
        bench_autocast: eager benchmark precisions (``none``, ``bfloat16``, ``float16``).
        compile_autocast: the compiled benchmark's precisions.
        compile_modules: the SAM2Model submodules given to ``torch.compile``.
        compile_backend, compile_mode: ``torch.compile``'s backend and mode.
        node_model, node_objects: the node latency's model and object counts.
        node_mode: ``auto`` (the real node where rclpy imports, else the pipeline), ``ros``,
            ``pipeline`` or ``both``.
        node_autocast: the node's tracker precision (``auto``: bfloat16 on CUDA, as the node).
        camera_hz, node_seconds, node_height, node_width, node_warmup: the synthetic camera.
        amg_models: the automatic mask generator's models; amg_points_per_side its grid;
            amg_iterations timed images per model (after one untimed).
        policy: the memory policy timed against ``official``; policy_models, policy_objects its
            models and object counts (precisions: ``bench_autocast``'s); policy_videos generated
            videos (seeds ``policy_benchmark.FIRST_SEED``, ...) of policy_frames frames at
            policy_size pixels a side, the first policy_warmup frames of each untimed.
    """

    minutes: float = 8.0
    out: str = "out"
    device: str = "cuda"
    parity_dir: str = ""
    parity_events: int = 0
    bf16_model: str = "default"
    bf16_videos: int = 4
    bf16_frames: int = 0
    models: str = "sam2.1_hiera_tiny,sam2.1_hiera_small"
    objects: str = "1,4,16"
    iterations: int = 50
    warmup: int = 10
    bench_autocast: str = "none,bfloat16"
    compile_autocast: str = "bfloat16"
    compile_modules: str = "image_encoder"
    compile_backend: str = "inductor"
    compile_mode: str = "default"
    node_model: str = "sam2.1_hiera_tiny"
    node_objects: str = "1,4"
    node_mode: str = "auto"
    node_autocast: str = "auto"
    camera_hz: float = 30.0
    node_seconds: float = 10.0
    node_height: int = 480
    node_width: int = 640
    node_warmup: int = 10
    amg_models: str = "sam2.1_hiera_tiny,sam2.1_hiera_small"
    amg_points_per_side: int = 32
    amg_iterations: int = 5
    policy: str = "robust"
    policy_models: str = "sam2.1_hiera_tiny"
    policy_objects: str = "1,4,16"
    policy_videos: int = 2
    policy_frames: int = 32
    policy_size: int = 512
    policy_warmup: int = 2


def _names(text: str) -> List[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _counts(text: str) -> List[int]:
    return [int(part) for part in _names(text)]


def _autocast(name: str) -> Optional[torch.dtype]:
    if name in ("none", "float32"):
        return None
    if name not in ("bfloat16", "float16"):
        raise ValueError(f"autocast {name!r} must be none, bfloat16 or float16")
    return getattr(torch, name)


def _node_autocast(settings: CheckSettings) -> Optional[torch.dtype]:
    if settings.node_autocast == "auto":  # the node's own rule (node_parameters.resolve_autocast)
        return torch.bfloat16 if settings.device.startswith("cuda") else None
    return _autocast(settings.node_autocast)


def default_parity_dir() -> str:
    """$SAM2_PARITY_DIR, else the first of .parity and shared/parity in the checkout and
    ../shared/parity beside it that exists (.parity: the ignored folder a device call carries)."""
    if os.environ.get("SAM2_PARITY_DIR"):
        return os.environ["SAM2_PARITY_DIR"]
    candidates = [REPO / ".parity", REPO / "shared" / "parity", REPO.parent / "shared" / "parity"]
    return str(next((path for path in candidates if path.is_dir()), candidates[-1]))


# ------------------------------------------------------------------------------------ budget
class Budget:
    """Wall-clock budget: ``check``/``step`` for the soft guard, an alarm (SIGALRM) for the hard one.

    Args:
        minutes: the whole budget, counted from construction; the last WRITE_RESERVE_S seconds
            are kept for the final report.
    """

    def __init__(self, minutes: float):
        self.start = time.monotonic()
        self.seconds = minutes * 60.0
        self.last: Dict[str, float] = {}  # kind of step -> seconds the last one took

    def left(self) -> float:
        return self.seconds - WRITE_RESERVE_S - (time.monotonic() - self.start)

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def check(self, kind: str) -> None:
        """Raise TimeUp unless the time left exceeds what the last step of this kind took."""
        if self.left() <= self.last.get(kind, 0.0):
            raise TimeUp(f"{self.left():.0f} s left, a {kind} step took {self.last.get(kind, 0.0):.0f} s")

    def step(self, kind: str, fn: Callable[[], Any]) -> Any:
        self.check(kind)
        started = time.monotonic()
        result = fn()
        self.last[kind] = time.monotonic() - started
        return result

    def arm(self) -> None:
        def ring(signum, frame):
            raise TimeUp("the time budget ran out during a step")

        signal.signal(signal.SIGALRM, ring)
        signal.setitimer(signal.ITIMER_REAL, max(0.01, self.left()))

    def disarm(self) -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)


# ------------------------------------------------------------------------------------ report
class Report:
    """The results so far; every ``save`` rewrites device_check.json and device_check.md whole.

    Args:
        out: the folder of the two files (created if missing).
        settings: the run's settings, recorded in the report.
        budget: the run's budget (the report records the time used).
    """

    def __init__(self, out: Path, settings: CheckSettings, budget: Budget):
        self.out = out
        self.budget = budget
        self.data: Dict[str, Any] = {"settings": dataclasses.asdict(settings), "environment": environment(settings),
                                     "run": {"minutes": settings.minutes, "status": "running"}}
        for name in SECTIONS:
            self.data[name] = {"status": "not run"}

    def section(self, name: str) -> Dict[str, Any]:
        return self.data[name]

    def save(self, note: str = "") -> None:
        """Rewrite both files; ``note`` (what was just measured) is printed as progress."""
        if note:
            print(f"[{self.budget.elapsed():6.1f} s] {note}", flush=True)
        self.data["run"]["elapsed_s"] = round(self.budget.elapsed(), 1)
        self.out.mkdir(parents=True, exist_ok=True)
        _write(self.out / "device_check.json", json.dumps(self.data, indent=2, default=str) + "\n")
        _write(self.out / "device_check.md", markdown(self.data))


def _write(path: Path, text: str) -> None:
    # Whole or not at all: a run killed mid-write leaves the previous version.
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def environment(settings: CheckSettings) -> Dict[str, Any]:
    device = torch.device(settings.device)
    info = {"torch": torch.__version__, "python": platform.python_version(), "cpu_cores": os.cpu_count(),
            "device": settings.device}
    if device.type == "cuda":
        info.update(gpu=torch.cuda.get_device_name(device), cuda=torch.version.cuda,
                    gpu_memory_gib=round(torch.cuda.get_device_properties(device).total_memory / 2**30, 1))
    return info


# ------------------------------------------------------------------------------------ sections
def _free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


class _StrictFloat32:
    """TF32 off for matmuls and convolutions (on by default for cuDNN), restored afterwards."""

    def __enter__(self):
        self.saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False

    def __exit__(self, *exc):
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = self.saved


def session_files(parity_dir: str) -> List[Path]:
    """The reference sessions: ``*_stream.pt`` in ``parity_dir`` and those shipped in tests/data."""
    found = sorted(Path(parity_dir).glob("*_stream.pt")) if parity_dir else []
    return found + sorted((REPO / "tests" / "data").glob("*.pt.xz"))


def run_parity(settings: CheckSettings, report: Report, budget: Budget) -> None:
    section = report.section("parity")
    device = torch.device(settings.device)
    parity_dir = settings.parity_dir or default_parity_dir()
    files = session_files(parity_dir)
    section.update(parity_dir=parity_dir, stream_sessions_found=sum(p.name.endswith("_stream.pt") for p in files),
                   precision="float32, TF32 off", logit_tolerance=LOGIT_TOLERANCE, score_tolerance=SCORE_TOLERANCE,
                   sessions=[])
    if not files:
        raise FileNotFoundError(f"no reference sessions in {parity_dir} nor tests/data")

    def one(path: Path) -> Dict[str, Any]:
        session = load_session(path)
        if settings.parity_events:
            session = dict(session, events=session["events"][:settings.parity_events],
                           outputs=session["outputs"][:settings.parity_events])
        with _StrictFloat32():
            comparisons = replay(session, make_tracker(session, build_session_model(session, device)))
        worst = max(comparisons, key=lambda c: c.max_logit_diff)
        return {"session": path.name.split(".pt")[0], "events": len(comparisons),
                "max_logit_diff": max(c.max_logit_diff for c in comparisons),
                "max_score_diff": max(c.max_score_diff for c in comparisons),
                "worst_event": f"{worst.event_index} ({worst.event['type']})",
                "same_ids": all(c.same_ids for c in comparisons),
                "same_presence": all(c.same_presence for c in comparisons),
                "passed": all(c.within_tolerance for c in comparisons)}

    for path in files:
        section["sessions"].append(budget.step("parity", lambda: one(path)))
        rows = section["sessions"]
        section.update(max_logit_diff=max(r["max_logit_diff"] for r in rows),
                       max_score_diff=max(r["max_score_diff"] for r in rows), passed=all(r["passed"] for r in rows))
        row = rows[-1]
        report.save(f"parity {row['session']}: max logit diff {row['max_logit_diff']:.2e}, "
                    f"score diff {row['max_score_diff']:.2e}, passed {row['passed']}")
    _free(device)


def _iou(a: torch.Tensor, b: torch.Tensor) -> float:
    union = (a | b).sum().item()
    return 1.0 if union == 0 else (a & b).sum().item() / union


def run_bf16(settings: CheckSettings, report: Report, budget: Budget) -> None:
    section = report.section("bf16")
    device = torch.device(settings.device)
    model = sam2_model.build_model(settings.bf16_model, device=device)
    section.update(model=settings.bf16_model, min_mean_iou=BF16_MIN_MEAN_IOU, min_agreement=BF16_MIN_AGREEMENT,
                   videos=0)
    ious: List[float] = []
    counts = {"agree": 0, "decisions": 0}

    def one(seed: int) -> None:
        video = generate_with_events(seed)
        full = track_prompted_by_first_masks(sam2_model.StreamingTracker(model), video, settings.bf16_frames)
        half = track_prompted_by_first_masks(sam2_model.StreamingTracker(model, autocast_dtype=torch.bfloat16), video,
                            settings.bf16_frames)
        for a, b in zip(full, half):
            for row in range(len(a.obj_ids)):
                counts["decisions"] += 1
                counts["agree"] += bool(a.visible[row]) == bool(b.visible[row])
                if a.visible[row] and b.visible[row] and a.masks[row].any():
                    ious.append(_iou(a.masks[row].cpu(), b.masks[row].cpu()))

    for seed in range(2000, 2000 + settings.bf16_videos):
        budget.step("bf16", lambda: one(seed))
        agreement = counts["agree"] / max(1, counts["decisions"])
        mean_iou = float(np.mean(ious)) if ious else None
        section.update(videos=section["videos"] + 1, masks_compared=len(ious), mean_iou=mean_iou,
                       min_iou=float(np.min(ious)) if ious else None, decisions=counts["decisions"],
                       agreement=agreement,
                       passed=mean_iou is not None and mean_iou >= BF16_MIN_MEAN_IOU
                       and agreement >= BF16_MIN_AGREEMENT)
        report.save(f"bf16 video {seed}: mean IoU so far {_cell(mean_iou)}, agreement {agreement:.3f}")
    del model
    _free(device)


def time_tracker(model: sam2_model.SAM2Model, num_objects: int, iterations: int, warmup: int,
                 autocast: Optional[torch.dtype]) -> Timing:
    """ms per tracked frame with ``num_objects`` clicked objects (as ``sam2_model.benchmark``)."""
    device = model.device
    tracker = sam2_model.StreamingTracker(model, autocast_dtype=autocast)
    size = model.image_size
    frames = synthetic_frames(warmup + iterations + 1, size)
    tracker.track(frames[0])
    for obj_id, click in enumerate(object_clicks(num_objects, size), start=1):
        tracker.add_prompt(obj_id, points=[click], labels=[1])
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    samples = _time(lambda step: tracker.track(frames[1 + step]), iterations, warmup, device)
    return Timing(f"{num_objects} object(s)", samples, _peak_memory_mb(device))


def _weights(model_name: str) -> str:
    # Only the bundled model has weights here; timing does not depend on them.
    return "bundled" if model_name == DEFAULT_MODEL else "random"


def _timing_row(model_name: str, variant: str, autocast: str, objects: int, timing: Timing) -> Dict[str, Any]:
    return {"model": model_name, "weights": _weights(model_name), "variant": variant, "autocast": autocast,
            "objects": objects, "p50_ms": timing.percentile(50), "p99_ms": timing.percentile(99), "fps": timing.fps,
            "peak_memory_mb": timing.peak_memory_mb, "frames_timed": len(timing.samples_ms)}


def run_benchmark(settings: CheckSettings, report: Report, budget: Budget) -> None:
    section = report.section("benchmark")
    device = torch.device(settings.device)
    section.update(iterations=settings.iterations, warmup=settings.warmup, rows=[])
    for model_name in _names(settings.models):
        model = sam2_model.build_model(model_name, device=device)
        for autocast in _names(settings.bench_autocast):
            for count in _counts(settings.objects):
                timing = budget.step("benchmark", lambda: time_tracker(
                    model, count, settings.iterations, settings.warmup, _autocast(autocast)))
                section["rows"].append(_timing_row(model_name, "eager", autocast, count, timing))
                report.save(f"eager {model_name} {autocast} {count} object(s): {timing.line()}")
        del model
        _free(device)


def compile_model(model: sam2_model.SAM2Model, modules: List[str], backend: str, mode: str) -> None:
    """Replace each named submodule by its ``torch.compile``d wrapper (in place)."""
    for name in modules:
        if not isinstance(getattr(model, name, None), torch.nn.Module):
            raise ValueError(f"compile module {name!r} is not a submodule of SAM2Model")
        options = {} if backend != "inductor" else {"mode": mode}
        setattr(model, name, torch.compile(getattr(model, name), backend=backend, **options))


def run_benchmark_compiled(settings: CheckSettings, report: Report, budget: Budget) -> None:
    section = report.section("benchmark_compiled")
    device = torch.device(settings.device)
    modules = _names(settings.compile_modules)
    section.update(modules=modules, backend=settings.compile_backend, mode=settings.compile_mode,
                   iterations=settings.iterations, warmup=settings.warmup, rows=[])
    eager = {(r["model"], r["autocast"], r["objects"]): r["p50_ms"]
             for r in report.section("benchmark").get("rows", [])}
    for model_name in _names(settings.models):
        for autocast in _names(settings.compile_autocast):
            torch.compiler.reset()  # a fresh cache per model: no recompile limit carried over
            model = sam2_model.build_model(model_name, device=device)
            compile_model(model, modules, settings.compile_backend, settings.compile_mode)
            # The first frames compile (and, with more objects, recompile): timed apart.
            started = time.monotonic()
            budget.step("compile", lambda: time_tracker(model, max(_counts(settings.objects)), 1, 2,
                                                        _autocast(autocast)))
            compile_s = time.monotonic() - started
            for count in _counts(settings.objects):
                timing = budget.step("benchmark", lambda: time_tracker(
                    model, count, settings.iterations, settings.warmup, _autocast(autocast)))
                row = _timing_row(model_name, "compiled", autocast, count, timing)
                reference = eager.get((model_name, autocast, count))
                row.update(compile_s=compile_s, speedup_vs_eager=reference / row["p50_ms"] if reference else None)
                section["rows"].append(row)
                report.save(f"compiled {model_name} {autocast} {count} object(s): {timing.line()} "
                            f"(compile {compile_s:.0f} s)")
            del model
            _free(device)


def run_node_latency(settings: CheckSettings, report: Report, budget: Budget) -> None:
    section = report.section("node_latency")
    modes = {"both": ["ros", "pipeline"], "auto": ["ros" if node_latency.ros_available() else "pipeline"]}.get(
        settings.node_mode, [settings.node_mode])
    autocast = _node_autocast(settings)
    section.update(model=settings.node_model, weights=_weights(settings.node_model), camera_hz=settings.camera_hz,
                   camera_seconds=settings.node_seconds, frame=f"{settings.node_width}x{settings.node_height}",
                   autocast=str(autocast).replace("torch.", "") if autocast else "none", rows=[])
    for mode in modes:
        for count in _counts(settings.node_objects):
            latency = node_latency.LatencySettings(
                settings.node_model, None, settings.device, autocast, count, settings.camera_hz,
                settings.node_seconds, settings.node_height, settings.node_width, settings.node_warmup)
            result = budget.step("node", lambda: node_latency.measure(latency, mode))
            row = {"objects": count, **result.summary()}
            section["rows"].append(row)
            report.save(f"node latency {mode} {count} object(s): p50 {_cell(row['latency_p50_ms'])} ms, "
                        f"p99 {_cell(row['latency_p99_ms'])} ms, {row['processed']}/{row['published']} processed")
    _free(torch.device(settings.device))


def run_amg(settings: CheckSettings, report: Report, budget: Budget) -> None:
    section = report.section("amg")
    device = torch.device(settings.device)
    options = sam2_model.MaskGeneratorOptions(points_per_side=settings.amg_points_per_side)
    section.update(points_per_side=options.points_per_side, points_per_batch=options.points_per_batch,
                   iterations=settings.amg_iterations, rows=[])
    for model_name in _names(settings.amg_models):
        model = sam2_model.build_model(model_name, device=device)
        image = scene_image(model.image_size)
        generator = sam2_model.AutomaticMaskGenerator(model, options)
        timing = budget.step("amg", lambda: time_generator(lambda: generator.generate(image),
                                                                        settings.amg_iterations, 1, device))
        section["rows"].append({"model": model_name, "weights": _weights(model_name),
                                "image": f"{image.shape[1]}x{image.shape[0]}", "ms_per_image": timing.ms_per_image,
                                "masks": timing.num_masks, "masks_per_s": timing.masks_per_second})
        report.save(f"amg {model_name}: {timing.ms_per_image:.1f} ms/image, {timing.num_masks} masks")
        del model, generator
        _free(device)


def run_robust_policy(settings: CheckSettings, report: Report, budget: Budget) -> None:
    section = report.section("robust_policy")
    device = torch.device(settings.device)
    section.update(policy=settings.policy, videos=settings.policy_videos, frames=settings.policy_frames,
                   warmup=settings.policy_warmup, generated_size=settings.policy_size, rows=[])
    for model_name in _names(settings.policy_models):
        model = sam2_model.build_model(model_name, device=device)
        for autocast in _names(settings.bench_autocast):
            for count in _counts(settings.policy_objects):
                timings = budget.step("robust_policy", lambda: time_policy(
                    model, settings.policy, count, settings.policy_videos, settings.policy_frames,
                    settings.policy_size, seed=FIRST_SEED, warmup=settings.policy_warmup,
                    autocast=_autocast(autocast)))
                numbers = timings.summary()
                section["rows"].append({
                    "model": model_name, "weights": _weights(model_name), "autocast": autocast, "objects": count,
                    "frames": numbers["frames"], "encode_p50_ms": numbers["encode_ms"]["p50"],
                    "official_p50_ms": numbers["official_ms"]["p50"], "official_p99_ms": numbers["official_ms"]["p99"],
                    "policy_p50_ms": numbers["policy_ms"]["p50"], "policy_p99_ms": numbers["policy_ms"]["p99"],
                    "extra_p50_ms": numbers["extra_ms"]["p50"], "extra_p99_ms": numbers["extra_ms"]["p99"],
                    "share_of_frame": numbers["share_of_medians"], "tracking_ratio": numbers["tracking_ratio"]})
                report.save(f"{settings.policy} {model_name} {autocast} {count} object(s): extra "
                            f"{100 * numbers['share_of_medians']:+.1f} % of a frame")
        del model
        _free(device)


RUNNERS: Dict[str, Callable[[CheckSettings, Report, Budget], None]] = {
    "parity": run_parity, "bf16": run_bf16, "benchmark": run_benchmark, "node_latency": run_node_latency,
    "amg": run_amg, "robust_policy": run_robust_policy, "benchmark_compiled": run_benchmark_compiled,
}


# ------------------------------------------------------------------------------------ markdown
def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 0.01 and value != 0 else f"{value:.2f}"
    return str(value)


def _table(headers: List[str], keys: List[str], rows: List[Dict[str, Any]]) -> List[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_cell(row.get(key)) for key in keys) + " |" for row in rows]
    return lines


def _status(section: Dict[str, Any]) -> str:
    seconds = section.get("seconds")
    return section["status"] + (f", {seconds} s" if seconds is not None else "")


def markdown(data: Dict[str, Any]) -> str:
    env, run = data["environment"], data["run"]
    lines = ["# Device check", "",
             f"{env.get('gpu', env['device'])}, torch {env['torch']}, Python {env['python']}; "
             f"{run['minutes']} minute(s) asked, {run.get('elapsed_s', 0)} s used; run {run['status']}.", ""]
    parity = data["parity"]
    lines += [f"## Parity with the official implementation ({parity.get('precision', 'float32')})", "",
              f"status: {_status(parity)}; tolerance {parity.get('logit_tolerance')} (logits), "
              f"{parity.get('score_tolerance')} (object scores); worst difference: logits "
              f"{_cell(parity.get('max_logit_diff'))}, scores {_cell(parity.get('max_score_diff'))}; "
              f"{parity.get('stream_sessions_found')} session(s) from {parity.get('parity_dir')}, the rest "
              f"from tests/data", ""]
    lines += _table(["session", "events", "max logit diff", "max score diff", "same ids", "same presence", "passed"],
                    ["session", "events", "max_logit_diff", "max_score_diff", "same_ids", "same_presence", "passed"],
                    parity.get("sessions", [])) + [""]
    bf16 = data["bf16"]
    lines += ["## bfloat16 autocast against float32", "", f"status: {_status(bf16)}; model {bf16.get('model')}", ""]
    lines += _table(["videos", "masks compared", "mean IoU", "min IoU", "visibility agreement", "passed"],
                    ["videos", "masks_compared", "mean_iou", "min_iou", "agreement", "passed"],
                    [bf16] if "videos" in bf16 else []) + [""]
    timing_keys = ["model", "weights", "variant", "autocast", "objects", "p50_ms", "p99_ms", "fps", "peak_memory_mb"]
    timing_headers = ["model", "weights", "variant", "autocast", "objects", "p50 ms", "p99 ms", "frames/s", "peak MB"]
    bench = data["benchmark"]
    lines += ["## Tracker benchmark, eager", "", f"status: {_status(bench)}", ""]
    lines += _table(timing_headers, timing_keys, bench.get("rows", [])) + [""]
    node = data["node_latency"]
    lines += ["## Node latency, synthetic camera", "",
              f"status: {_status(node)}; model {node.get('model')}, {node.get('frame')} at "
              f"{node.get('camera_hz')} Hz for {node.get('camera_seconds')} s, autocast {node.get('autocast')}", ""]
    lines += _table(["mode", "objects", "published", "processed", "dropped", "p50 ms", "p99 ms", "max ms"],
                    ["mode", "objects", "published", "processed", "dropped", "latency_p50_ms", "latency_p99_ms",
                     "latency_max_ms"], node.get("rows", []))
    lines += [""] + [f"- {mode}: {covers}" for mode, covers in
                     sorted({(r["mode"], r["covers"]) for r in node.get("rows", [])})] + [""]
    amg = data["amg"]
    lines += ["## Automatic mask generator", "",
              f"status: {_status(amg)}; {amg.get('points_per_side')} points per side, batches of "
              f"{amg.get('points_per_batch')}, median of {amg.get('iterations')} image(s)", ""]
    lines += _table(["model", "weights", "image", "ms/image", "masks", "masks/s"],
                    ["model", "weights", "image", "ms_per_image", "masks", "masks_per_s"], amg.get("rows", [])) + [""]
    policy = data["robust_policy"]
    lines += [f"## Memory policy {policy.get('policy')} against official", "",
              f"status: {_status(policy)}; {policy.get('videos')} generated video(s) of {policy.get('frames')} "
              f"frames, the first {policy.get('warmup')} untimed; share: the extra over a whole official frame "
              "(encoder + tracking), from the medians", ""]
    lines += _table(["model", "weights", "autocast", "objects", "encoder p50 ms", "official p50 ms", "policy p50 ms",
                     "extra p50 ms", "extra p99 ms", "share of a frame", "tracking ratio"],
                    ["model", "weights", "autocast", "objects", "encode_p50_ms", "official_p50_ms", "policy_p50_ms",
                     "extra_p50_ms", "extra_p99_ms", "share_of_frame", "tracking_ratio"],
                    policy.get("rows", [])) + [""]
    compiled = data["benchmark_compiled"]
    lines += ["## Tracker benchmark, torch.compile", "",
              f"status: {_status(compiled)}; modules {compiled.get('modules')}, backend {compiled.get('backend')}, "
              f"mode {compiled.get('mode')}", ""]
    lines += _table(timing_headers + ["compile s", "speed-up vs eager"],
                    timing_keys + ["compile_s", "speedup_vs_eager"],
                    compiled.get("rows", [])) + [""]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------ main
def run(settings: CheckSettings) -> Report:
    """Every section in order, within the budget; returns the report (also written to ``settings.out``)."""
    budget = Budget(settings.minutes)
    report = Report(Path(settings.out), settings, budget)
    report.save()
    budget.arm()
    try:
        for name in SECTIONS:
            section = report.section(name)
            section["status"] = "running"
            started = time.monotonic()
            try:
                RUNNERS[name](settings, report, budget)
                section["status"] = "done"
            except TimeUp as stop:
                section["status"] = f"stopped by the time limit ({stop})"
                raise
            except Exception as error:  # noqa: BLE001 - one failing section must not lose the others
                if budget.left() <= 0:
                    # The alarm rang inside something that turned it into another error (e.g. the
                    # node's start-up wait): the time limit stopped this section.
                    section["status"] = f"stopped by the time limit ({type(error).__name__} as it rang)"
                    raise TimeUp(str(error)) from error
                section["status"] = f"error: {type(error).__name__}: {error}"
                print(f"device_check: {name} failed: {error!r}", file=sys.stderr)
            finally:
                section["seconds"] = round(time.monotonic() - started, 1)
            report.save()
        report.data["run"]["status"] = "complete"
    except TimeUp:
        report.data["run"]["status"] = "stopped by the time limit"
        for name in SECTIONS:
            status = report.section(name)["status"]
            if status in ("not run", "running"):
                report.section(name)["status"] = ("not run (time limit)" if status == "not run"
                                                  else "stopped by the time limit")
    finally:
        budget.disarm()
    report.save()
    return report


def parse_args(argv: Optional[List[str]] = None) -> CheckSettings:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     epilog="The settings are CheckSettings' (its docstring says what each does).")
    for item in dataclasses.fields(CheckSettings):
        parser.add_argument("--" + item.name.replace("_", "-"), type=type(item.default), default=item.default,
                            help="default: %(default)s")
    settings = CheckSettings(**vars(parser.parse_args(argv)))
    if settings.minutes <= 0:
        parser.error(f"--minutes must be > 0, got {settings.minutes}")
    if settings.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error(f"--device {settings.device}: torch {torch.__version__} sees no CUDA device "
                     "(DEVICE=cpu tries the check on the CPU)")
    if settings.node_mode not in ("auto", "ros", "pipeline", "both"):
        parser.error(f"--node-mode must be auto, ros, pipeline or both, got {settings.node_mode!r}")
    for text in (settings.bench_autocast, settings.compile_autocast, settings.node_autocast):
        for name in _names(text):
            if name != "auto":
                try:
                    _autocast(name)
                except ValueError as error:
                    parser.error(str(error))
    return settings


def summary(report: Report) -> str:
    """A few lines for the console."""
    data = report.data
    lines = [f"device check: {data['environment'].get('gpu', data['environment']['device'])}, "
             f"{data['run']['status']} in {data['run']['elapsed_s']} s"]
    for name in SECTIONS:
        lines.append(f"  {name}: {data[name]['status']}")
    parity, bf16 = data["parity"], data["bf16"]
    if "max_logit_diff" in parity:
        lines.append(f"  parity worst difference: logits {parity['max_logit_diff']:.2e}, scores "
                     f"{parity['max_score_diff']:.2e} (tolerance {LOGIT_TOLERANCE}); passed: {parity['passed']}")
    if bf16.get("mean_iou") is not None:
        lines.append(f"  bf16: mean IoU {bf16['mean_iou']:.4f}, agreement {bf16['agreement']:.3f}; "
                     f"passed: {bf16['passed']}")
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    settings = parse_args(argv)
    report = run(settings)
    print((Path(settings.out) / "device_check.md").read_text())
    print(summary(report))
    print(f"report: {Path(settings.out) / 'device_check.json'} and device_check.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
