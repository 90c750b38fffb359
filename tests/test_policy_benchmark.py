"""The memory-policy benchmark (issue 25's time bound): its figures from constructed times, its
arguments, and tools/device_robust.sh on the CPU with tiny settings (the GPU run's script works end
to end and writes its numbers)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sam2_model.policy_benchmark import EACH_VIDEOS_TARGETS, PolicyTimings, parse_args

REPO = Path(__file__).resolve().parents[1]


def test_summary_figures_from_constructed_times():
    timings = PolicyTimings(objects=4)
    for encode, official, policy in ((10.0, 5.0, 6.0), (20.0, 10.0, 13.0), (30.0, 15.0, 15.0)):
        timings.add(encode, official, policy)
    summary = timings.summary()
    assert summary["objects"] == 4 and summary["frames"] == 3
    assert summary["encode_ms"]["p50"] == 20.0 and summary["official_ms"]["p50"] == 10.0
    assert summary["policy_ms"]["p50"] == 13.0
    assert summary["extra_ms"]["p50"] == 1.0  # per frame: 1, 3, 0
    assert summary["extra_ms"]["p99"] == pytest.approx(np.percentile([1.0, 3.0, 0.0], 99))
    # The figure: (median policy - median official) / (median encoder + median official).
    assert summary["share_of_medians"] == pytest.approx(3.0 / 30.0)
    assert summary["share_per_frame"]["p50"] == pytest.approx(np.median([1 / 15, 3 / 30, 0 / 45]))
    assert summary["tracking_ratio"] == pytest.approx(1.3)
    none = PolicyTimings(objects=None)
    none.add(1.0, 1.0, 1.0)
    assert none.summary()["objects"] == EACH_VIDEOS_TARGETS


def test_arguments_name_what_is_wrong(capsys):
    assert parse_args(["--objects", f"1,{EACH_VIDEOS_TARGETS},16"]).objects == [1, None, 16]
    for bad, words in ((["--objects", "0"], "at least 1"), (["--objects", "many"], "comma-separated counts"),
                       (["--frames", "2", "--warmup", "2"], "more --frames than --warmup")):
        with pytest.raises(SystemExit):
            parse_args(bad)
        assert words in capsys.readouterr().err


def test_device_robust_script_runs_with_tiny_settings_on_cpu(tmp_path):
    env = dict(os.environ, PYTHON=sys.executable, DEVICE="cpu", MODELS="default", OBJECTS="1,2", VIDEOS="1",
               FRAMES="12", SIZE="64", PRECISIONS="float32,bf16", MINUTES="4", OUT=str(tmp_path))
    result = subprocess.run(["bash", str(REPO / "tools" / "device_robust.sh")], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=280)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    for precision, autocast in (("float32", False), ("bf16", True)):
        report = json.loads((tmp_path / f"device_robust_default_{precision}.json").read_text())
        assert report["policy"] == "robust" and report["bf16_autocast"] is autocast
        assert [entry["objects"] for entry in report["results"]] == [1, 2]
        for entry in report["results"]:
            samples = entry["samples"]
            assert entry["frames"] == len(samples["encode_ms"]) == len(samples["policy_ms"]) == 12 - 2
            medians = {name: float(np.median(samples[f"{name}_ms"])) for name in ("encode", "official", "policy")}
            assert entry["share_of_medians"] == pytest.approx(
                (medians["policy"] - medians["official"]) / (medians["encode"] + medians["official"]))
            assert min(samples["official_ms"]) > 0 and min(samples["policy_ms"]) > 0
    assert result.stdout.count("extra as a share of a whole frame") == 4


def test_robust_overhead_tool_tracks_each_videos_targets(tmp_path):
    out = tmp_path / "overhead.json"
    result = subprocess.run([sys.executable, str(REPO / "tools" / "robust_overhead.py"), "--videos", "1",
                             "--frames", "12", "--json", str(out)], cwd=REPO, capture_output=True, text=True,
                            timeout=200, env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(out.read_text())["results"][0]["objects"] == EACH_VIDEOS_TARGETS
    assert "each video's targets, 10 frames" in result.stdout
