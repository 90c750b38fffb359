"""The bundled default model (trained here by sam2-train on the procedural generator).

Issue #7's bar: on fresh generated videos with occlusions and exits (seeds 4000-4011, used by no
evaluation set; training draws its seeds at random from 2**31, so the chance that the ~10,000
event videos of the shipped runs included one of these is about 1e-4) the bundled weights reach
J&F >= 0.85 through sam2-eval, report targets as not visible while hidden and visible again
after, and do the same through the ROS node. Twelve videos, not four: the check used seeds
2000-2003 until the weights of session 9, which pass it there (those four open "set 12", on
which they score 0.87) while scoring 0.71 and 0.73 on the other sets of docs/benchmarks.md;
four videos were too few to stand for the bar. The weights shipped today do not meet it, so
those checks are strict xfails: they will fail loudly, asking for the marker to go, once a
trained model does. The two that score all twelve videos are marked `slow` as well (about 45 s:
an evaluation, not a check of the code). What the default model must already do
(load strictly, stay small, run through sam2-eval and the node with the same results) is tested
as usual, on the first two of those videos.
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

from generated_tracking import track_prompted_by_first_masks
from node_harness import single_thread, start_node

JF_THRESHOLD = 0.85
NOT_YET = pytest.mark.xfail(strict=True, raises=AssertionError,
                            reason="issue #7: the bundled weights do not track well enough yet "
                                   "(J&F 0.66-0.86 on four generated sets, 0.66 on these videos)")
EVAL_SEEDS = tuple(range(4000, 4012))  # fresh videos: in no training run and no evaluation set
QUICK_SEEDS = EVAL_SEEDS[:2]  # what the default suite runs through sam2-eval and the node
MAX_WEIGHTS_BYTES = 20 * 1024 * 1024


def test_default_model_is_bundled_small_and_loads_strictly():
    assert os.path.getsize(DEFAULT_CHECKPOINT_PATH) <= MAX_WEIGHTS_BYTES
    payload = torch.load(DEFAULT_CHECKPOINT_PATH, weights_only=True)
    assert set(payload) == {"model"}  # official format: weights only
    model = sam2_model.build_model("default")
    explicit = sam2_model.build_model(DEFAULT_CONFIG_PATH, DEFAULT_CHECKPOINT_PATH)
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, explicit.state_dict()[name]), name


def _write_generated(tmp_path_factory, seeds):
    root = tmp_path_factory.mktemp("generated")
    videos = {f"gen_{seed}": generate_with_events(seed) for seed in seeds}
    write_davis(root, videos)
    return root, videos


def _default_eval(generated, tmp_path_factory) -> dict:
    """sam2-eval with its default model (the bundled one) on generated videos."""
    root, _ = generated
    out = tmp_path_factory.mktemp("eval")
    assert eval_main(["--davis", str(root), "--out", str(out), "--no-progress"]) == 0
    return json.loads((out / "results.json").read_text())


@pytest.fixture(scope="module")
def generated_davis(tmp_path_factory):
    return _write_generated(tmp_path_factory, EVAL_SEEDS)


@pytest.fixture(scope="module")
def quick_davis(tmp_path_factory):
    return _write_generated(tmp_path_factory, QUICK_SEEDS)


@pytest.fixture(scope="module")
def default_eval(generated_davis, tmp_path_factory):
    return _default_eval(generated_davis, tmp_path_factory)


def test_sam2_eval_runs_the_default_model_on_generated_videos(quick_davis, tmp_path_factory):
    _, videos = quick_davis
    results = _default_eval(quick_davis, tmp_path_factory)
    assert results["run"]["model"] == "default" and results["run"]["checkpoint"] is None
    assert sum(len(s["objects"]) for s in results["sequences"]) == sum(v.num_targets for v in videos.values())
    assert 0.0 <= results["summary"]["jf_mean"] <= 1.0
    assert results["summary"]["hidden_frames"] > 0  # the videos do hide targets


@pytest.mark.slow
@NOT_YET
def test_default_model_reaches_the_jf_bar_on_generated_videos(default_eval):
    assert default_eval["summary"]["jf_mean"] >= JF_THRESHOLD, default_eval["summary"]


@pytest.mark.slow
@NOT_YET
def test_default_model_reports_hidden_targets_not_visible_and_finds_them_again(generated_davis):
    _, videos = generated_davis
    model = sam2_model.build_model("default")
    hidden_total = hidden_reported = returned_total = returned_found = 0
    for video in videos.values():
        results = track_prompted_by_first_masks(sam2_model.StreamingTracker(model), video)
        visible = np.stack([result.visible.numpy() for result in results])  # [T, N]
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


@pytest.fixture(scope="module")
def node_eval(quick_davis, tmp_path_factory):
    """One generated video as a bag, played into a node started without any model parameter."""
    root, videos = quick_davis
    name = next(iter(videos))
    work = tmp_path_factory.mktemp("node")
    bag = work / "bag"
    assert make_bag_main(["--davis", str(root), "--sequence", name, "--fps", "10", "--out", str(bag),
                          "--no-progress"]) == 0
    with single_thread():
        running = start_node(work, {"device": "cpu", "qos_reliability": "reliable"})
        try:
            out = work / "live"
            code = eval_main(["--bag", str(bag), "--live", "--node", running.process.fqn, "--rate", "max",
                              "--live-timeout", "30", "--out", str(out), "--no-progress"])
            assert code == 0, running.process.log()[-3000:]
            assert "RANDOM" not in running.process.log()
        finally:
            running.close()
        reference = work / "reference"
        assert eval_main(["--bag", str(bag), "--out", str(reference), "--no-progress"]) == 0
    return (json.loads((out / "results.json").read_text()),
            json.loads((reference / "results.json").read_text()))


def test_node_with_no_model_parameters_tracks_like_sam2_eval(node_eval):
    """The node's default is the bundled model: what it publishes scores as the same model in-process."""
    live, reference = node_eval
    assert live["live"]["frames_dropped"] == 0
    (got,), (want,) = live["sequences"], reference["sequences"]
    assert [o["obj_id"] for o in got["objects"]] == [o["obj_id"] for o in want["objects"]]
    for g, w in zip(got["objects"], want["objects"]):
        assert g["frames"] == w["frames"] and g["frames"]
        assert g["J_per_frame"] == w["J_per_frame"], g["obj_id"]


@NOT_YET
def test_default_model_reaches_the_jf_bar_through_the_node(node_eval):
    live, _ = node_eval
    assert live["summary"]["jf_mean"] >= JF_THRESHOLD, live["summary"]
