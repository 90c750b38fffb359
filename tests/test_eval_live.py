"""sam2-eval --live: a synthetic bag played into the real tracker node (parity micro model) over ROS.

What the node publishes must score exactly as the same model, prompts and frames in this process
(the node's masks equal StreamingTracker's, as test_node_parity shows), and every frame must be
accounted for (received or dropped) with a measured latency.
"""

from __future__ import annotations

import json

import pytest

from sam2_ros.evaluation import davis
from sam2_ros.evaluation.cli import main as eval_main
from sam2_ros.evaluation.make_bag import main as make_bag_main
from sam2_ros.evaluation.runner import InProcessRunner
from sam2_ros.evaluation.synthetic import synthetic_sequence

from node_harness import model_files, one_torch_thread, start_node  # noqa: F401
from parity_sessions import make_tracker

NUM_FRAMES = 8


def make_bag(tmp_path, fps: float = 10.0):
    # 256x256: the micro model's input size, so the node and the reference see the same pixels.
    seq = synthetic_sequence(num_frames=NUM_FRAMES, height=256, width=256, occluded=(4, 5), late_object_from=2,
                             unannotated=(6,), fps=fps)
    davis.write_sequence(tmp_path / "davis", "shapes", seq, image_format="png")
    assert make_bag_main(["--davis", str(tmp_path / "davis"), "--sequence", "shapes", "--fps", str(fps),
                          "--out", str(tmp_path / "bag"), "--no-progress"]) == 0
    return tmp_path / "bag"


# At --rate max the tool sends one frame at a time, so the node takes every one and its results
# equal the in-process ones whatever the machine's load (the recorded rate, where a busy node may
# drop frames, is test_frames_the_node_skips_are_counted_dropped's).
@pytest.mark.parametrize(("rate", "prompt", "fps"), [("max", "mask", 10), ("max", "click", 10),
                                                     ("max", "box", 10)])
def test_live_eval_against_the_node_equals_in_process(tmp_path, model_files, one_torch_thread,  # noqa: F811
                                                      rate, prompt, fps):
    bag = make_bag(tmp_path, fps)
    running = start_node(tmp_path, model_files.params(qos_reliability="reliable"))
    try:
        live_out = tmp_path / "live"
        code = eval_main(["--bag", str(bag), "--live", "--node", running.process.fqn, "--rate", rate,
                          "--prompt", prompt, "--live-timeout", "20",
                          # Model options are ignored in live mode (a missing checkpoint is no error).
                          "--checkpoint", str(tmp_path / "absent.pt"),
                          "--out", str(live_out), "--no-progress"])
        assert code == 0, running.process.log()[-3000:]
        assert running.process.alive()
    finally:
        running.close()
    results = json.loads((live_out / "results.json").read_text())
    live = results["live"]
    assert live["node"] == running.process.fqn and live["rate"] == rate
    assert live["image_topic"] == running.process.image_topic
    assert live["frames_published"] == NUM_FRAMES
    assert live["frames_received"] + live["frames_dropped"] == live["frames_published"]
    assert live["frames_dropped"] == 0  # one frame at a time: the node takes every one
    assert live["latency_ms_p50"] > 0 and live["latency_ms_p99"] >= live["latency_ms_p50"]
    assert "Live run against the node" in (live_out / "report.md").read_text()

    # The same frames and prompts through the same model in this process.
    session = model_files.session
    ref_out = tmp_path / "ref"
    runner = InProcessRunner(lambda: make_tracker(session), description="reference")
    assert eval_main(["--bag", str(bag), "--prompt", prompt, "--out", str(ref_out), "--no-progress"],
                     runner=runner) == 0
    reference = json.loads((ref_out / "results.json").read_text())
    assert "live" not in reference
    (got,), (want,) = results["sequences"], reference["sequences"]
    assert [o["obj_id"] for o in got["objects"]] == [1, 2, 3]
    for g, w in zip(got["objects"], want["objects"], strict=True):
        assert g["obj_id"] == w["obj_id"] and g["prompt_frame"] == w["prompt_frame"]
        assert g["frames"] == w["frames"] and g["frames"]
        assert g["J_per_frame"] == w["J_per_frame"], g["obj_id"]
        assert g["F_per_frame"] == w["F_per_frame"], g["obj_id"]


def test_frames_the_node_skips_are_counted_dropped(tmp_path, model_files):  # noqa: F811
    """At 200 frames/s the node (keeping only the newest waiting frame) skips some: they are counted
    dropped as soon as a later frame's result arrives (not after the 60 s timeout)."""
    bag = make_bag(tmp_path, fps=200)
    running = start_node(tmp_path, model_files.params(qos_reliability="reliable"))
    try:
        out = tmp_path / "live"
        assert eval_main(["--bag", str(bag), "--live", "--node", running.process.fqn, "--rate", "recorded",
                          "--live-timeout", "60", "--out", str(out), "--no-progress"]) == 0
    finally:
        running.close()
    results = json.loads((out / "results.json").read_text())
    live = results["live"]
    assert live["frames_published"] == NUM_FRAMES
    assert live["frames_received"] + live["frames_dropped"] == NUM_FRAMES
    assert live["frames_dropped"] > 0 and live["frames_received"] >= 2  # the prompted frames 0 and 2 at least
    assert live["latency_ms_p50"] > 0
    assert results["sequences"][0]["timing_ms"]["num_frames"] == NUM_FRAMES
