"""sam2-eval --live with depth: a bag with depth and camera_info played into the tracker node
running with use_depth; the 3D positions the node publishes must score exactly as the positions
the evaluator computes from the same masks in this process (same model, frames and prompts)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sam2_model.depth_format import write_depth_sequence
from sam2_model.object_3d import PinholeIntrinsics
from sam2_ros.evaluation import davis
from sam2_ros.evaluation.cli import main as eval_main
from sam2_ros.evaluation.make_bag import main as make_bag_main
from sam2_ros.evaluation.runner import InProcessRunner
from sam2_ros.evaluation.sequence import Frame, Sequence

from node_harness import model_files, one_torch_thread, start_node  # noqa: F401
from parity_sessions import make_tracker

pytestmark = pytest.mark.ros

NUM_FRAMES = 6
CAMERA = PinholeIntrinsics(256.0, 256.0, 127.5, 127.5, 256, 256)


def layered_depth(labels):
    """Background at 2 m, object k at 0.9 + 0.1 k m: a flat cut-out per object."""
    return np.where(labels == 0, 2.0, 0.9 + 0.1 * labels.astype(np.float64))


def parity_sequence(model_files):  # noqa: F811
    """The parity session's frames 8..13, where the micro model sees its objects, with boxes
    around two of them as the ground truth (the micro model tracks those; generated shapes it does not)."""
    labels = np.zeros((256, 256), np.uint8)
    labels[133:200, 128:213] = 1   # the box test_node_graph prompts
    labels[70:110, 55:100] = 2     # around the click test_node_graph gives
    frames = [Frame(index=i, image=image, stamp_ns=i * 100_000_000, gt_labels=labels.copy())
              for i, image in enumerate(model_files.frames()[8:8 + NUM_FRAMES])]
    return Sequence.from_frames("parity", frames)


def test_live_node_positions_score_as_the_evaluators(tmp_path, model_files, one_torch_thread):  # noqa: F811
    seq = parity_sequence(model_files)
    davis.write_sequence(tmp_path / "davis", "shapes", seq, image_format="png")
    write_depth_sequence(tmp_path / "davis", "shapes", ((f.index, layered_depth(f.gt_labels)) for f in seq), CAMERA)
    bag = tmp_path / "bag"
    assert make_bag_main(["--davis", str(tmp_path / "davis"), "--sequence", "shapes", "--fps", "10",
                          "--out", str(bag), "--no-progress"]) == 0

    running = start_node(tmp_path, model_files.params(qos_reliability="reliable", use_depth=True,
                                                      diagnostics_period=0.2))
    try:
        live_out = tmp_path / "live"
        code = eval_main(["--bag", str(bag), "--live", "--node", running.process.fqn, "--rate", "max",
                          "--prompt", "mask", "--live-timeout", "20", "--out", str(live_out), "--no-progress"])
        assert code == 0, running.process.log()[-3000:]
    finally:
        running.close()
    results = json.loads((live_out / "results.json").read_text())
    assert results["live"]["image_topic"] == running.process.image_topic
    assert results["live"]["depth_topic"] == f"{running.process.namespace}/depth"
    assert results["live"]["frames_dropped"] == 0

    ref_out = tmp_path / "ref"
    runner = InProcessRunner(lambda: make_tracker(model_files.session), description="reference")
    assert eval_main(["--bag", str(bag), "--prompt", "mask", "--out", str(ref_out), "--no-progress"],
                     runner=runner) == 0
    reference = json.loads((ref_out / "results.json").read_text())
    (got,), (want,) = results["sequences"], reference["sequences"]
    compared = 0
    for g, w in zip(got["objects"], want["objects"], strict=True):
        assert g["J_per_frame"] == w["J_per_frame"]   # the same masks...
        assert g["position_error_frames"] == w["position_error_frames"]   # ...so the same 3D
        np.testing.assert_allclose(g["position_error_per_frame_m"], w["position_error_per_frame_m"], atol=1e-6)
        compared += len(g["position_error_frames"])
    assert compared > 0
    assert results["summary"]["position_error"]["num_frames"] == compared
