"""Training speed with 1 and N processes (DistributedDataParallel), same global batch.

    python -m sam2_model.train.scaling_benchmark --processes 1 2 --steps 8 [--device cpu] [-- sam2-train options]

Runs ``sam2-train`` on generated videos once per process count (under torchrun when > 1), each
process with its share of the machine's CPU threads, and prints seconds per step (median and
90th percentile of the timed steps, the first two being warm-up) and each count's speed-up over
the first. On a CPU the processes share the same cores: expect no speed-up there; the number that
matters is on several GPUs (``tools/device_train.sh`` with ``GPUS``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

import numpy as np

WARM_UP_STEPS = 2
DEFAULT_TRAIN_OPTIONS = ["--config", "default", "--procedural", "--clip-length", "4", "--max-objects", "2",
                         "--clips-per-step", "4", "--frame-size", "64", "--video-frames", "6", "--warmup", "1"]


@dataclass
class ScalingResult:
    processes: int
    step_seconds: List[float]   # timed steps (after the warm-up), data drawing included

    @property
    def median(self) -> float:
        return float(np.median(self.step_seconds))

    @property
    def p90(self) -> float:
        return float(np.percentile(self.step_seconds, 90))


def measure(processes: int, steps: int, device: str, train_options: List[str], threads: int) -> ScalingResult:
    launcher = [sys.executable] if processes == 1 else \
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)]
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "run"
        command = [*launcher, "-m", "sam2_model.train", *train_options, "--device", device, "--steps", str(steps),
                   "--out", str(out), "--no-progress", "--threads", str(threads), "--checkpoint-every", str(steps)]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{processes} process(es) failed:\n{done.stderr[-2000:]}")
        entries = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    seconds = [entry["seconds"] + entry["data_seconds"] for entry in entries
               if "losses" in entry and entry["step"] > WARM_UP_STEPS]
    return ScalingResult(processes, seconds)


def report(results: List[ScalingResult], device: str) -> str:
    base = results[0]
    lines = [f"device {device}, {os.cpu_count()} CPU cores; same global batch in every run",
             "processes  s/step p50  s/step p90  steps/s  speed-up vs first"]
    for result in results:
        lines.append(f"{result.processes:9d}  {result.median:10.3f}  {result.p90:10.3f}  {1 / result.median:7.2f}  "
                     f"{base.median / result.median:6.2f}x")
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--steps", type=int, default=8, help="steps per run (the first 2 are not timed)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("train_options", nargs="*", help="sam2-train options after -- (default: tiny settings)")
    args = parser.parse_args(argv)
    if args.steps <= WARM_UP_STEPS or min(args.processes) < 1:
        parser.error(f"--steps must exceed {WARM_UP_STEPS} and every process count be >= 1")
    # Log every step: the timing comes from log.jsonl.
    options = (args.train_options or DEFAULT_TRAIN_OPTIONS) + ["--log-every", "1"]
    results = []
    for processes in args.processes:
        threads = max(1, (os.cpu_count() or 1) // processes)
        results.append(measure(processes, args.steps, args.device, options, threads))
        print(f"{processes} process(es): {results[-1].median:.3f} s/step", file=sys.stderr, flush=True)
    print(report(results, args.device))
    return 0


if __name__ == "__main__":
    sys.exit(main())
