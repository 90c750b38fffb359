"""The bundled default model (trained here by sam2-train on the procedural generator) really tracks.

On fresh generated videos with occlusions and exits (seeds never used in training: training draws
``generate_video`` seeds, these come from ``generate_with_events`` with its own derivation), the
bundled weights must reach J&F >= 0.85 through sam2-eval, report targets as not visible while
they are hidden and visible again after, and do the same through the ROS node.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

import sam2_model
from sam2_model.config import DEFAULT_CHECKPOINT_PATH, DEFAULT_CONFIG_PATH
from sam2_model.train.procedural import ProceduralConfig, generate_with_events, write_davis
from sam2_ros.evaluation.cli import main as eval_main
from sam2_ros.evaluation.make_bag import main as make_bag_main

from node_harness import one_torch_thread, start_node  # noqa: F401

JF_THRESHOLD = 0.85
EVAL_SEEDS = (2000, 2001, 2002, 2003)  # fresh videos: not in any training run
MAX_WEIGHTS_BYTES = 20 * 1024 * 1024


def test_default_model_is_bundled_small_and_loads_strictly():
    assert os.path.getsize(DEFAULT_CHECKPOINT_PATH) <= MAX_WEIGHTS_BYTES
    payload = torch.load(DEFAULT_CHECKPOINT_PATH, weights_only=True)
    assert set(payload) == {"model"}  # official format: weights only
    model = sam2_model.build_model("default")
    explicit = sam2_model.build_model(DEFAULT_CONFIG_PATH, DEFAULT_CHECKPOINT_PATH)
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, explicit.state_dict()[name]), name


@pytest.fixture(scope="module")
def generated_davis(tmp_path_factory):
    root = tmp_path_factory.mktemp("generated")
    videos = {f"gen_{seed}": generate_with_events(seed) for seed in EVAL_SEEDS}
    write_davis(root, videos)
    return root, videos


def test_default_model_tracks_generated_videos_through_sam2_eval(generated_davis, tmp_path):
    root, videos = generated_davis
    out = tmp_path / "eval"
    assert eval_main(["--davis", str(root), "--model", "default", "--out", str(out), "--no-progress"]) == 0
    results = json.loads((out / "results.json").read_text())
    summary = results["summary"]
    assert summary["JF_mean"] >= JF_THRESHOLD, summary
    assert sum(len(s["objects"]) for s in results["sequences"]) == sum(v.num_targets for v in videos.values())


def test_default_model_reports_hidden_targets_not_visible_and_finds_them_again(generated_davis):
    _, videos = generated_davis
    model = sam2_model.build_model("default")
    hidden_total = hidden_reported = returned_total = returned_found = 0
    for video in videos.values():
        tracker = sam2_model.StreamingTracker(model)
        visible = []
        for index, frame in enumerate(video.frames):
            result = tracker.track(frame)
            if index == 0:
                for obj_id in range(1, video.num_targets + 1):
                    result = tracker.add_prompt(obj_id, mask=video.labels[0] == obj_id)
            visible.append(result.visible.numpy())
        visible = np.stack(visible)  # [T, N]
        for obj_id in range(1, video.num_targets + 1):
            truth = video.visible(obj_id)
            for first, last in video.hidden_spans(obj_id):
                hidden_total += last - first + 1
                hidden_reported += int((~visible[first:last + 1, obj_id - 1]).sum())
                after = truth[last + 1:]
                returned_total += int(after.sum())
                returned_found += int((visible[last + 1:, obj_id - 1] & after).sum())
    assert hidden_total > 0 and returned_total > 0
    assert hidden_reported / hidden_total >= 0.8, (hidden_reported, hidden_total)
    assert returned_found / returned_total >= 0.8, (returned_found, returned_total)


def test_default_model_tracks_through_the_node(generated_davis, tmp_path, one_torch_thread):  # noqa: F811
    root, videos = generated_davis
    name = next(iter(videos))
    bag = tmp_path / "bag"
    assert make_bag_main(["--davis", str(root), "--sequence", name, "--fps", "10", "--out", str(bag),
                          "--no-progress"]) == 0
    # No model parameters: the node loads the bundled default model.
    running = start_node(tmp_path, {"device": "cpu", "qos_reliability": "reliable"})
    try:
        out = tmp_path / "live"
        code = eval_main(["--bag", str(bag), "--live", "--node", running.process.fqn, "--rate", "max",
                          "--live-timeout", "30", "--out", str(out), "--no-progress"])
        assert code == 0, running.process.log()[-3000:]
    finally:
        running.close()
    results = json.loads((out / "results.json").read_text())
    assert results["live"]["frames_dropped"] == 0
    assert results["summary"]["JF_mean"] >= JF_THRESHOLD, results["summary"]
