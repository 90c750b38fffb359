"""tools/device_server.sh on the CPU with tiny settings: the GPU run's script works end to end and
writes its numbers (batched against sequential streams, one stream's added latency, and the
server against in-process processes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


REPO = Path(__file__).resolve().parents[1]


def test_device_server_script_runs_with_tiny_settings_on_cpu(tmp_path):
    env = dict(os.environ, PYTHON=sys.executable, DEVICE="cpu", MODEL="default", STREAMS="2", FRAMES="2",
               SIZE="64x48", OUT=str(tmp_path), MINUTES="4", REPEATS="1",
               PARTS="batching,latency,streams")
    result = subprocess.run(["bash", str(REPO / "tools" / "device_server.sh")], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    report = json.loads((tmp_path / "device_server.json").read_text())
    batching = report["batching"]
    assert batching["streams"] == 2 and len(batching["repeats"]) == 1 and batching["execution"] == "threaded"
    pair = batching["repeats"][0]
    assert batching["speedup"] == pair["speedup"] == pair["batched"]["total_fps"] / pair["sequential"]["total_fps"]
    for mode in ("batched", "sequential"):
        assert len(pair[mode]["per_stream_fps"]) == 2 and pair[mode]["total_fps"] > 0
    streams = report["streams"]
    pair = streams["repeats"][0]
    assert streams["fps_ratio"] == pair["server"]["total_fps"] / pair["in_process"]["total_fps"]
    assert pair["server"]["server_rss_bytes"] > 0 and len(pair["in_process"]["worker_rss_bytes"]) == 2
    assert pair["server"]["server_cpu_seconds"] > 0 and pair["in_process"]["cores_busy"] > 0
    assert pair["server"]["total_pss_bytes"] > 0 and streams["pss_ratio"] == pair["pss_ratio"]
    assert pair["server"]["server_peak_rss_bytes"] >= pair["server"]["server_rss_bytes"]
    assert streams["peak_memory_ratio"] == pair["peak_memory_ratio"] > 0
    latency = report["latency"]
    assert latency["frame_hw"] == [48, 64] and latency["frames"] == 2
    assert latency["transport_ms"]["p50"] > 0 and "added_ms" in latency
    assert "streams through one server: together (" in result.stdout
