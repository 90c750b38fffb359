"""tools/device_check.sh (the GPU check for short GPU leases), tried on the CPU with tiny settings."""

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from parity_sessions import EXTRA_SESSION_FILES, PARITY_DIR, STREAM_FILES
from sam2_ros import node_latency
from sam2_ros.device_check import SECTIONS, Budget, TimeUp

REPO = Path(__file__).resolve().parents[1]
# Everything small: one event per session, two frames of one video, the bundled 256-pixel model,
# one timed frame per row, a 160x120 camera for one second, a compile without code generation.
TINY = ["--parity-events", "1", "--bf16-videos", "1", "--bf16-frames", "2", "--models", "default", "--objects", "1",
        "--iterations", "1", "--warmup", "1", "--bench-autocast", "none", "--compile-autocast", "none",
        "--compile-backend", "eager", "--compile-modules", "sam_mask_decoder", "--node-model", "default",
        "--node-objects", "1", "--node-seconds", "1", "--node-warmup", "1", "--node-height", "120",
        "--node-width", "160", "--amg-models", "default", "--amg-points-per-side", "4", "--amg-iterations", "1",
        "--policy-models", "default", "--policy-objects", "2", "--policy-videos", "1", "--policy-frames", "12",
        "--policy-size", "64"]


def _run_check(out: Path, minutes: str, *extra: str, timeout: float = 400) -> subprocess.CompletedProcess:
    env = dict(os.environ, DEVICE="cpu", PYTHON=sys.executable, OUT=str(out), SAM2_PARITY_DIR=str(PARITY_DIR),
               OMP_NUM_THREADS="1")
    return subprocess.run(["bash", str(REPO / "tools" / "device_check.sh"), minutes, *TINY, *extra],
                          capture_output=True, text=True, timeout=timeout, cwd=out.parent, env=env)


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@pytest.mark.ros  # the node latency is measured with the real node too (rclpy imports here)
@pytest.mark.timeout(400)
def test_device_check_reports_every_section_with_numbers(tmp_path):
    out = tmp_path / "out"
    done = _run_check(out, "3", "--node-mode", "both")
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((out / "device_check.json").read_text())
    assert report["run"]["status"] == "complete", report["run"]
    assert all(report[name]["status"] == "done" for name in SECTIONS), {n: report[n]["status"] for n in SECTIONS}

    parity = report["parity"]
    # Every session: the shared ones and the two in tests/data, against the official outputs.
    assert len(parity["sessions"]) == len(STREAM_FILES) + len(EXTRA_SESSION_FILES) and parity["stream_sessions_found"] == len(STREAM_FILES)
    assert parity["passed"] and _number(parity["max_logit_diff"]) and parity["max_logit_diff"] <= 1e-2
    bf16 = report["bf16"]
    assert bf16["masks_compared"] > 0 and 0 < bf16["mean_iou"] <= 1 and 0 <= bf16["agreement"] <= 1
    for name in ("benchmark", "benchmark_compiled"):
        [row] = report[name]["rows"]
        assert (row["model"], row["objects"]) == ("default", 1)
        assert all(_number(row[key]) and row[key] > 0 for key in ("p50_ms", "p99_ms", "fps", "peak_memory_mb"))
    compiled = report["benchmark_compiled"]["rows"][0]
    assert compiled["variant"] == "compiled" and compiled["compile_s"] > 0 and compiled["speedup_vs_eager"] > 0
    [amg] = report["amg"]["rows"]
    assert amg["model"] == "default" and amg["ms_per_image"] > 0 and amg["masks"] >= 0
    assert report["amg"]["points_per_side"] == 4
    [policy] = report["robust_policy"]["rows"]
    assert (policy["model"], policy["objects"], policy["frames"]) == ("default", 2, 12 - 2)
    assert all(_number(policy[key]) and policy[key] > 0 for key in ("encode_p50_ms", "official_p50_ms", "policy_p50_ms"))
    assert policy["share_of_frame"] == pytest.approx((policy["policy_p50_ms"] - policy["official_p50_ms"])
                                                     / (policy["encode_p50_ms"] + policy["official_p50_ms"]))
    rows = report["node_latency"]["rows"]
    assert sorted(r["mode"] for r in rows) == ["pipeline", "ros"]  # rclpy imports here: both were measured
    for row in rows:
        # 30 Hz for 1 s; the worker takes the newest frame, so every frame is processed or dropped.
        assert 25 <= row["published"] <= 30 and row["processed"] >= 1
        assert row["processed"] + row["dropped"] == row["published"]
        assert 0 < row["latency_p50_ms"] <= row["latency_p99_ms"] <= row["latency_max_ms"]
    assert "summarize" in next(r for r in rows if r["mode"] == "pipeline")["covers"]

    table = (out / "device_check.md").read_text()
    for heading in ("## Parity", "## bfloat16", "## Tracker benchmark, eager", "## Node latency",
                    "## Automatic mask generator", "## Memory policy robust against official",
                    "## Tracker benchmark, torch.compile"):
        assert heading in table
    assert "| default | bundled | compiled | none | 1 |" in table
    assert "parity: done" in done.stdout and "complete" in done.stdout


@pytest.mark.timeout(200)
def test_device_check_stops_at_its_time_limit_with_partial_results(tmp_path):
    """A budget far too small: the alarm stops the run inside the parity replay; the report says
    so, keeps what was measured, and the script still succeeds."""
    out = tmp_path / "out"
    started = time.monotonic()
    done = _run_check(out, "0.1")  # 6 s, the last 2 kept for the report
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((out / "device_check.json").read_text())
    assert report["run"]["status"] == "stopped by the time limit"
    assert report["run"]["elapsed_s"] <= 10  # the alarm rings at 4 s; a running torch call finishes first
    statuses = [report[name]["status"] for name in SECTIONS]
    # Sections done, then at most one cut short, then none started.
    first = next(i for i, status in enumerate(statuses) if status != "done")
    assert statuses[first].startswith(("stopped by the time limit", "not run (time limit)")), statuses
    assert all(status == "not run (time limit)" for status in statuses[first + 1:]), statuses
    assert "## Parity" in (out / "device_check.md").read_text()
    assert "stopped by the time limit" in done.stdout
    assert time.monotonic() - started < 120


def test_budget_refuses_a_step_longer_than_the_time_left():
    budget = Budget(minutes=0.5)  # 30 s, 28 usable
    budget.last["compile"] = 60.0  # the last compile took a minute
    with pytest.raises(TimeUp, match="compile"):
        budget.step("compile", lambda: None)
    assert budget.step("benchmark", lambda: 42) == 42  # no benchmark step timed yet
    assert 0 <= budget.last["benchmark"] < 1


def test_without_ros_the_node_latency_measures_the_pipeline_and_says_what_it_covers(monkeypatch):
    """The GPU machine has no ROS: ``auto`` falls back to the node's per-frame path without DDS,
    whose per-pixel work (frame_summary) needs no ROS; the result says what it covers."""
    for name in ("rclpy", "sam2_ros.result_conversion"):
        monkeypatch.setitem(sys.modules, name, None)  # importing it now raises ImportError
    assert not node_latency.ros_available()
    settings = node_latency.LatencySettings("default", None, "cpu", None, objects=1, camera_hz=30.0, seconds=0.5,
                                            height=64, width=80, warmup_frames=0)
    result = node_latency.measure(settings, "auto")
    assert result.mode == "pipeline" and result.covers == node_latency.PIPELINE_COVERS
    assert "summarize_frame" in result.covers and "DDS" in result.covers
    assert 13 <= result.published <= 15 and result.processed >= 1
    assert result.processed + result.dropped == result.published
