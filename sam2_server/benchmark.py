"""``python -m sam2_server.benchmark``: what the server costs and saves, against tracking in-process.

Three measurements (docs/benchmarks.md, "Inference server"; ``--parts`` chooses, latency and
streams by default):

latency   one stream, the same model and frames: tracked in this process (``TrackingSession``) and
          through a ``sam2-server`` on ipc, in alternating blocks of frames; the added latency
          (server percentile minus in-process percentile), the transport's own cost per frame (round
          trip minus the time the request spent in the server, which the reply reports) and the
          ping round trip.
streams   N streams (default 3): N in-process tracker processes, each with its own model, against
          one server and N torch-free client processes; all start together and track
          ``--frames`` frames as fast as they can. Total frames per second and the resident memory
          of all processes (server included).
batching  N client streams against one server with ``--max-batch N`` and with ``--max-batch 1``
          (frames encoded together vs one at a time): the GPU measurement of tools/device_server.sh.

Every tracker holds one object, clicked on the first frame. Prints a summary and, with
``--json PATH``, writes the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from .config import EXECUTIONS, ServerConfig

REPO = Path(__file__).resolve().parents[1]
PERCENTILES = (50, 99)
LATENCY_BLOCK = 10  # frames in a row for one side of the latency comparison


# ---------------------------------------------------------------------- helpers
def rss_bytes(pid: Optional[int] = None, field: str = "VmRSS") -> int:
    """Resident memory of a process (this one by default), from /proc: ``VmRSS`` now, ``VmHWM`` its peak."""
    status = Path(f"/proc/{pid or os.getpid()}/status").read_text()
    return next(int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith(field + ":"))


def pss_bytes(pid: Optional[int] = None) -> int:
    """Proportional set size of a process (this one by default): its resident memory with each page
    shared with other processes (library code: torch's is about 100 MiB) divided among them, so
    that a sum over processes counts every page once. Any other process mapping the same libraries
    (another torch program) takes its share too: compare PSS on an otherwise idle machine. 0 where
    /proc has no smaps_rollup."""
    try:
        rollup = Path(f"/proc/{pid or os.getpid()}/smaps_rollup").read_text()
    except OSError:
        return 0
    return next((int(line.split()[1]) * 1024 for line in rollup.splitlines() if line.startswith("Pss:")), 0)


def cpu_seconds(pid: int) -> float:
    """User and system CPU time a process has used (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentiles(values_ms: List[float]) -> Dict[str, float]:
    return {f"p{p}": float(np.percentile(values_ms, p)) for p in PERCENTILES} | {"mean": float(np.mean(values_ms))}


def make_frames(count: int, height: int, width: int, path: Path) -> Path:
    """A procedural video with targets to track (``.npz``: frames, and the click on the first one)."""
    from sam2_model.train.procedural import ProceduralConfig, generate_video

    video = generate_video(3, ProceduralConfig(num_frames=count, height=height, width=width, max_distractors=0,
                                               occluder_probability=0.0, exit_probability=0.0, min_targets=2,
                                               max_targets=2))
    ys, xs = np.nonzero(video.labels[0] == 1)
    click = np.array([[xs[len(xs) // 2], ys[len(ys) // 2]]], dtype=np.float64)
    np.savez(path, frames=video.frames, click=click)
    return path


def _env() -> Dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
                PYTHONUNBUFFERED="1")


def start_server(endpoint: str, args: argparse.Namespace, *extra: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "sam2_server", "--bind", endpoint, "--model", args.model, "--device",
               args.device, "--execution", args.execution, "--log-level", "WARNING", *extra]
    if args.checkpoint:
        command += ["--checkpoint", args.checkpoint]
    process = subprocess.Popen(command, cwd=REPO, env=_env())
    from .client import TrackerClient

    probe = TrackerClient(endpoint, "probe", timeout_s=0.5)
    deadline = time.monotonic() + 120
    while not probe.heartbeat():
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"sam2-server did not start (exit {process.poll()})")
        time.sleep(0.1)
    probe.close()
    return process


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# ---------------------------------------------------------------------- one stream: added latency
def measure_latency(args: argparse.Namespace, frames_file: Path, endpoint: str) -> Dict[str, object]:
    import sam2_model
    from sam2_model.session_types import Outputs, PromptSpec
    from sam2_model.tracking_session import TrackingSession

    from .client import TrackerClient

    data = np.load(frames_file)
    frames, click = data["frames"], data["click"].tolist()
    model = sam2_model.build_model(args.model, args.checkpoint, device=args.device)
    prompt, outputs = PromptSpec(points=click, labels=[1]), Outputs()
    local = TrackingSession(sam2_model.StreamingTracker(model))
    server = start_server(endpoint, args)
    local_ms: List[float] = []
    server_ms: List[float] = []
    transport: List[float] = []
    pings: List[float] = []
    try:
        client = TrackerClient(endpoint, "latency", {}, timeout_s=60)
        client.connect()
        for target in (local, client):
            target.track(frames[0], outputs)
            target.add_prompt(1, prompt, outputs)

        def block(target, first: int, count: int, times: List[float]) -> None:
            for k in range(first, first + count):
                started = time.perf_counter()
                target.track(frames[1 + k % (len(frames) - 1)], outputs)
                if k >= args.warmup:
                    times.append((time.perf_counter() - started) * 1000)
                    if target is client:
                        transport.append(times[-1] - client.last_server_ms)

        def run() -> None:
            # Blocks of frames taken in turn: both see the same drift of a shared machine's load, and a
            # process that just finished (its OpenMP threads still spinning) disturbs only the first
            # frame of the other's block. In-process tracking on a thread of its own, like the node's
            # worker thread (and the server's model thread).
            total = args.warmup + args.frames
            for first in range(0, total, LATENCY_BLOCK):
                count = min(LATENCY_BLOCK, total - first)
                block(local, first, count, local_ms)
                block(client, first, count, server_ms)

        worker = threading.Thread(target=run)
        worker.start()
        worker.join()
        for _ in range(50):
            started = time.perf_counter()
            client.heartbeat()
            pings.append((time.perf_counter() - started) * 1000)
        client.close()
    finally:
        stop(server)
    in_process, served = percentiles(local_ms), percentiles(server_ms)
    added = {key: served[key] - in_process[key] for key in in_process}
    return {"frame_hw": list(frames.shape[1:3]), "frames": len(local_ms), "in_process_ms": in_process,
            "server_ms": served, "added_ms": added, "transport_ms": percentiles(transport),
            "ping_ms": percentiles(pings)}


# ---------------------------------------------------------------------- N streams: throughput and memory
def _workers(role: str, count: int, args: argparse.Namespace, frames_file: Path, endpoint: str,
             server_pid: Optional[int] = None) -> Dict[str, object]:
    """Start ``count`` worker processes, release them together, collect their reports (and the
    server's CPU time over the timed frames)."""
    command = [sys.executable, "-m", "sam2_server.benchmark", "--role", role, "--frames-file", str(frames_file),
               "--frames", str(args.frames), "--warmup", str(args.warmup), "--model", args.model,
               "--device", args.device, "--endpoint", endpoint]
    if args.checkpoint:
        command += ["--checkpoint", args.checkpoint]
    workers = [subprocess.Popen(command + ["--stream", f"cam{k}"], cwd=REPO, env=_env(), stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True) for k in range(count)]
    for worker in workers:
        line = worker.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"a {role} worker failed to start: {line!r}")
    started = time.perf_counter()
    server_cpu = cpu_seconds(server_pid) if server_pid else 0.0
    for worker in workers:
        worker.stdin.write("go\n")
        worker.stdin.flush()
    reports = [json.loads(worker.stdout.readline()) for worker in workers]
    wall = time.perf_counter() - started
    server_cpu = cpu_seconds(server_pid) - server_cpu if server_pid else 0.0
    # Every process still alive (the workers wait for "exit"), so shared pages divide the same way.
    worker_pss = [pss_bytes(worker.pid) for worker in workers]
    server_pss = pss_bytes(server_pid) if server_pid else 0
    for worker in workers:
        worker.stdin.write("exit\n")
        worker.stdin.flush()
    for worker in workers:
        worker.wait(timeout=60)
    total = sum(r["frames"] for r in reports)
    return {"wall_s": wall, "total_fps": total / wall, "worker_rss_bytes": [r["rss_bytes"] for r in reports],
            "worker_peak_rss_bytes": [r["peak_rss_bytes"] for r in reports],
            "worker_pss_bytes": worker_pss, "server_pss_bytes": server_pss,
            "per_stream_fps": [r["frames"] / r["seconds"] for r in reports],
            "worker_cpu_seconds": [r["cpu_seconds"] for r in reports], "server_cpu_seconds": server_cpu,
            # Cores kept busy on average: the in-process processes keep both of a 2-core CPU busier
            # than one server process does (docs/benchmarks.md).
            "cores_busy": (sum(r["cpu_seconds"] for r in reports) + server_cpu) / wall}


def _median(values: List[float]) -> float:
    return float(np.median(values))


def measure_streams(args: argparse.Namespace, frames_file: Path, endpoint: str) -> Dict[str, object]:
    """In-process processes against one server, ``args.repeats`` times in turn: the machine's speed
    drifts (on a shared machine by tens of percent within minutes), so each ratio compares runs
    made one after the other, and the median ratio is reported."""
    pairs = []
    for _ in range(args.repeats):
        in_process = _workers("inprocess", args.streams, args, frames_file, endpoint)
        in_process["total_rss_bytes"] = sum(in_process["worker_rss_bytes"])
        server = start_server(endpoint, args, "--max-batch", str(args.streams))
        try:
            served = _workers("client", args.streams, args, frames_file, endpoint, server.pid)
            served["server_rss_bytes"] = rss_bytes(server.pid)
            served["server_peak_rss_bytes"] = rss_bytes(server.pid, "VmHWM")
        finally:
            stop(server)
        served["total_rss_bytes"] = served["server_rss_bytes"] + sum(served["worker_rss_bytes"])
        in_process["total_peak_rss_bytes"] = sum(in_process["worker_peak_rss_bytes"])
        served["total_peak_rss_bytes"] = served["server_peak_rss_bytes"] + sum(served["worker_peak_rss_bytes"])
        in_process["total_pss_bytes"] = sum(in_process["worker_pss_bytes"])
        served["total_pss_bytes"] = served["server_pss_bytes"] + sum(served["worker_pss_bytes"])
        pairs.append({"in_process": in_process, "server": served,
                      "fps_ratio": served["total_fps"] / in_process["total_fps"],
                      "memory_ratio": served["total_rss_bytes"] / in_process["total_rss_bytes"],
                      "pss_ratio": served["total_pss_bytes"] / max(1, in_process["total_pss_bytes"]),
                      "peak_memory_ratio": served["total_peak_rss_bytes"] / in_process["total_peak_rss_bytes"]})
    return {"streams": args.streams, "repeats": pairs,
            "fps_ratio": _median([p["fps_ratio"] for p in pairs]),
            "memory_ratio": _median([p["memory_ratio"] for p in pairs]),
            "pss_ratio": _median([p["pss_ratio"] for p in pairs]),
            "peak_memory_ratio": _median([p["peak_memory_ratio"] for p in pairs])}


def _server_execution(endpoint: str) -> str:
    from .client import TrackerClient

    probe = TrackerClient(endpoint, "benchmark-stats", timeout_s=30)
    try:
        return probe.stats()["execution"]
    finally:
        probe.close()


def measure_batching(args: argparse.Namespace, frames_file: Path, endpoint: str) -> Dict[str, object]:
    """One server computing a round's frames together (``--max-batch`` streams: in one batch, or on
    parallel lanes, as the server's ``execution`` says) against one frame at a time, ``args.repeats``
    times in turn; the median speedup."""
    pairs, execution = [], None
    for _ in range(args.repeats):
        pair = {}
        for name, batch in (("batched", args.streams), ("sequential", 1)):
            server = start_server(endpoint, args, "--max-batch", str(batch))
            try:
                pair[name] = _workers("client", args.streams, args, frames_file, endpoint)
                if name == "batched":
                    execution = _server_execution(endpoint)
            finally:
                stop(server)
        pair["speedup"] = pair["batched"]["total_fps"] / pair["sequential"]["total_fps"]
        pairs.append(pair)
    return {"streams": args.streams, "execution": execution, "repeats": pairs,
            "speedup": _median([p["speedup"] for p in pairs])}


def run_worker(args: argparse.Namespace) -> None:
    """One stream in a process of its own: ``inprocess`` (own model) or ``client`` (torch-free)."""
    from sam2_model.session_types import Outputs, PromptSpec

    data = np.load(args.frames_file)
    frames, click = data["frames"], data["click"].tolist()
    if args.role == "inprocess":
        import sam2_model
        from sam2_model.tracking_session import TrackingSession

        model = sam2_model.build_model(args.model, args.checkpoint, device=args.device)
        target = TrackingSession(sam2_model.StreamingTracker(model))
    else:
        from .client import TrackerClient

        target = TrackerClient(args.endpoint, args.stream, {}, timeout_s=120)
        target.connect()
    outputs = Outputs()
    target.track(frames[0], outputs)
    target.add_prompt(1, PromptSpec(points=click, labels=[1]), outputs)
    for k in range(args.warmup):
        target.track(frames[1 + k % (len(frames) - 1)], outputs)
    print("ready", flush=True)
    sys.stdin.readline()

    def run() -> None:
        for k in range(args.frames):
            target.track(frames[1 + k % (len(frames) - 1)], outputs)

    # The frames on a thread of their own, as in the node (its worker thread) and the server.
    started, cpu_started = time.perf_counter(), time.process_time()
    worker = threading.Thread(target=run)
    worker.start()
    worker.join()
    seconds = time.perf_counter() - started
    report = {"frames": args.frames, "seconds": seconds, "cpu_seconds": time.process_time() - cpu_started,
              "rss_bytes": rss_bytes(), "peak_rss_bytes": rss_bytes(field="VmHWM"),
              "torch_loaded": "torch" in sys.modules}
    if args.role == "client":
        target.close()
    print(json.dumps(report), flush=True)
    sys.stdin.readline()  # alive until every process's memory is read


# ---------------------------------------------------------------------- report
def _mib(value: float) -> str:
    return f"{value / 2 ** 20:.0f} MiB"


def _spread(part: Dict[str, object], key: str) -> str:
    values = [pair[key] for pair in part["repeats"]]
    return f"x{min(values):.2f} to x{max(values):.2f}"


def summary(results: Dict[str, object]) -> str:
    lines = [f"model {results['model']} on {results['device']} ({results['cpu_count']} CPUs, load average "
             f"{results['load_at_start']:.1f} at start, {results.get('load_at_end', float('nan')):.1f} at end)"]
    latency = results.get("latency")
    if latency:
        h, w = latency["frame_hw"]
        lines.append(f"one stream, {w}x{h}, {latency['frames']} frames (ms p50 / p99):")
        for name in ("in_process_ms", "server_ms", "added_ms", "transport_ms", "ping_ms"):
            values = latency[name]
            lines.append(f"  {name[:-3]:<11} {values['p50']:8.2f} / {values['p99']:8.2f}")
    streams = results.get("streams")
    if streams:
        for a, b in ((p["in_process"], p["server"]) for p in streams["repeats"]):
            lines.append(f"{streams['streams']} streams: in-process processes {a['total_fps']:.2f} fps, "
                         f"{_mib(a['total_rss_bytes'])}; one server + clients {b['total_fps']:.2f} fps, "
                         f"{_mib(b['total_rss_bytes'])} (server {_mib(b['server_rss_bytes'])}, clients "
                         f"{', '.join(_mib(r) for r in b['worker_rss_bytes'])})")
        lines.append("  cores busy: in-process " + ", ".join(f"{p['in_process']['cores_busy']:.2f}" for p in
                                                             streams["repeats"])
                     + "; server and clients " + ", ".join(f"{p['server']['cores_busy']:.2f}" for p in
                                                            streams["repeats"]))
        lines.append(f"  ratio server / in-process, median of {len(streams['repeats'])}: "
                     f"fps x{streams['fps_ratio']:.2f} ({_spread(streams, 'fps_ratio')}), "
                     f"memory x{streams['memory_ratio']:.2f} ({_spread(streams, 'memory_ratio')})")
        lines.append("  peak resident memory (VmHWM, loading included): in-process "
                     + ", ".join(_mib(p["in_process"]["total_peak_rss_bytes"]) for p in streams["repeats"])
                     + "; server and clients " + ", ".join(_mib(p["server"]["total_peak_rss_bytes"]) for p in
                                                          streams["repeats"])
                     + f"; ratio x{streams['peak_memory_ratio']:.2f} ({_spread(streams, 'peak_memory_ratio')})")
        lines.append("  proportional memory (PSS: pages shared between processes, such as torch's code, counted "
                     "once): in-process " + ", ".join(_mib(p["in_process"]["total_pss_bytes"]) for p in
                                                      streams["repeats"])
                     + "; server and clients " + ", ".join(_mib(p["server"]["total_pss_bytes"]) for p in
                                                          streams["repeats"])
                     + f"; ratio x{streams['pss_ratio']:.2f} ({_spread(streams, 'pss_ratio')})")
    batching = results.get("batching")
    if batching:
        for pair in batching["repeats"]:
            lines.append(f"{batching['streams']} streams through one server: together ({batching['execution']}) "
                         f"{pair['batched']['total_fps']:.2f} fps, one at a time {pair['sequential']['total_fps']:.2f}"
                         f" fps: x{pair['speedup']:.2f}")
        lines.append(f"  together / one at a time, median of {len(batching['repeats'])}: x{batching['speedup']:.2f} "
                     f"({_spread(batching, 'speedup')})")
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sam2_server.benchmark", description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", default="latency,streams", help="comma list of latency, streams, batching")
    parser.add_argument("--model", default="default")
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", default="640x480", help="frame WIDTHxHEIGHT")
    parser.add_argument("--frames", type=int, default=40, help="frames timed per stream")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--streams", type=int, default=3)
    parser.add_argument("--execution", default=ServerConfig.execution, choices=EXECUTIONS,
                        help="the server's --execution (auto: batched on CUDA, threaded on a CPU)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="pairs of runs (in-process then server; batched then sequential) taken in turn")
    parser.add_argument("--json", default=None, help="write the results here")
    # Worker processes (internal).
    parser.add_argument("--role", choices=("inprocess", "client"), help=argparse.SUPPRESS)
    parser.add_argument("--frames-file", help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    parser.add_argument("--stream", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.role:
        run_worker(args)
        return 0
    width, height = (int(v) for v in args.size.lower().split("x"))
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = set(parts) - {"latency", "streams", "batching"}
    if unknown:
        parser.error(f"unknown part(s) {sorted(unknown)}")
    # The load average: on a shared machine, numbers mean little without it.
    results: Dict[str, object] = {"model": args.model, "device": args.device, "cpu_count": os.cpu_count(),
                                  "load_at_start": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory(prefix="sam2_server_bench_") as tmp:
        frames_file = make_frames(max(8, args.warmup + 2), height, width, Path(tmp) / "frames.npz")
        endpoint = f"ipc://{tmp}/sam2.sock"
        for part in parts:
            measure = {"latency": measure_latency, "streams": measure_streams, "batching": measure_batching}[part]
            results[part] = measure(args, frames_file, endpoint)
            if args.json:
                Path(args.json).write_text(json.dumps(results, indent=2))
    results["load_at_end"] = os.getloadavg()[0]
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    print(summary(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
