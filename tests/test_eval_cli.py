"""sam2-eval end to end: synthetic data -> sam2-make-bag -> sam2-eval with stub and real trackers."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sam2_ros.evaluation import davis
from sam2_ros.evaluation.bag_io import read_bag
from sam2_ros.evaluation.cli import build_parser
from sam2_ros.evaluation.cli import main as eval_main
from sam2_ros.evaluation.make_bag import main as make_bag_main
from sam2_ros.evaluation.metrics import boundary_f, region_similarity
from sam2_ros.evaluation.prompts import interior_point
from sam2_ros.evaluation.synthetic import synthetic_sequence

from eval_stubs import FlawedTracker, PerfectTracker, StubRunner

REPO = Path(__file__).resolve().parents[1]
# The parity test models live in shared/ beside the repository (as for tests/parity_sessions.py).
PARITY = Path(os.environ.get("SAM2_PARITY_DIR", REPO.parent / "shared" / "parity"))

# The synthetic sequence: 12 frames, frame 8 unannotated, objects 1 and 2 from frame 0, object 3
# from frame 3, object 2 hidden on frames 5 and 6. Scored frames (after the prompt frame, before
# the last annotated frame 11, annotated only):
OBJ12_FRAMES = [1, 2, 3, 4, 5, 6, 7, 9, 10]
OBJ3_FRAMES = [4, 5, 6, 7, 9, 10]


@pytest.fixture(scope="module")
def synthetic():
    return synthetic_sequence()


@pytest.fixture()
def bag(tmp_path, synthetic):
    """The synthetic sequence as an MCAP bag made by sam2-make-bag from a DAVIS folder."""
    davis.write_sequence(tmp_path / "davis", "shapes", synthetic, image_format="png")
    code = make_bag_main(
        ["--davis", str(tmp_path / "davis"), "--sequence", "shapes", "--out", str(tmp_path / "bag"), "--no-progress"]
    )
    assert code == 0
    return tmp_path / "bag"


def load_results(out):
    return json.loads((out / "results.json").read_text())


@pytest.mark.parametrize("prompt", ["mask", "box", "click"])
def test_perfect_tracker_scores_exactly_one(tmp_path, bag, prompt):
    runner = StubRunner(PerfectTracker)
    out = tmp_path / "out"
    code = eval_main(["--bag", str(bag), "--prompt", prompt, "--out", str(out), "--no-progress"], runner=runner)
    assert code == 0
    results = load_results(out)
    summary = results["summary"]
    assert (summary["jf_mean"], summary["j_mean"], summary["f_mean"]) == (1.0, 1.0, 1.0)
    assert (summary["j_recall"], summary["j_decay"]) == (1.0, 0.0)
    assert summary["num_objects"] == 3 and summary["num_sequences"] == 1
    (seq,) = results["sequences"]
    assert seq["num_frames"] == 12 and seq["num_annotated_frames"] == 11
    objects = {o["obj_id"]: o for o in seq["objects"]}
    assert [objects[i]["prompt_frame"] for i in (1, 2, 3)] == [0, 0, 3]
    assert objects[1]["frames"] == objects[2]["frames"] == OBJ12_FRAMES
    assert objects[3]["frames"] == OBJ3_FRAMES
    for obj in objects.values():
        assert set(obj["J_per_frame"]) == {1.0} and set(obj["F_per_frame"]) == {1.0}
    assert runner.trackers[0].prompts == [(0, 1, prompt), (0, 2, prompt), (3, 3, prompt)]
    assert seq["timing_ms"]["num_frames"] == 12 and seq["timing_ms"]["track_ms_mean"] > 0
    assert results["run"]["prompt"] == prompt and results["run"]["runner"] == "stub tracker"
    assert results["run"]["model"] is None  # the model options do not apply to an outside runner

    report = (out / "report.md").read_text()
    assert "| **1.000** |" in report and "## Sequence `bag`" in report
    for name in ("bag_per_frame.png", "bag_worst_frames.png"):
        assert f"plots/{name}" in report
        with Image.open(out / "plots" / name) as png:
            assert png.format == "PNG" and png.size[0] > 300 and png.size[1] > 200


def test_scores_equal_metrics_computed_directly(tmp_path, bag, synthetic):
    out = tmp_path / "out"
    assert eval_main(["--bag", str(bag), "--out", str(out), "--no-progress"], runner=StubRunner(FlawedTracker)) == 0
    (seq,) = load_results(out)["sequences"]
    objects = {o["obj_id"]: o for o in seq["objects"]}
    frames = list(synthetic)

    # Object 1 is predicted 2 px to the right: compute its scores here from the masks.
    expected_j, expected_f = [], []
    for t in OBJ12_FRAMES:
        truth = frames[t].gt_labels == 1
        shifted = np.zeros_like(truth)
        shifted[:, 2:] = truth[:, :-2]
        expected_j.append(region_similarity(shifted, truth))
        expected_f.append(boundary_f(shifted, truth))
    assert objects[1]["J_per_frame"] == expected_j
    assert objects[1]["F_per_frame"] == expected_f
    assert objects[1]["J"]["mean"] == pytest.approx(np.mean(expected_j), abs=1e-12)

    # Object 2 is never predicted: 0 where it is visible, 1 on the occluded frames 5 and 6
    # (both masks empty). Mean 2/9, recall 2/9; DAVIS quarters of 9 frames are [0:3] and [6:9]
    # at the ends, both all zero, so no decay.
    hand = [0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0]
    assert objects[2]["J_per_frame"] == hand and objects[2]["F_per_frame"] == hand
    assert objects[2]["J"] == {"mean": pytest.approx(2 / 9), "recall": pytest.approx(2 / 9), "decay": 0.0,
                               "num_frames": 9}
    assert set(objects[3]["J_per_frame"]) == {1.0}

    # Sequence and run numbers are means over objects.
    j_means = [objects[i]["J"]["mean"] for i in (1, 2, 3)]
    f_means = [objects[i]["F"]["mean"] for i in (1, 2, 3)]
    assert seq["J_mean"] == pytest.approx(np.mean(j_means))
    assert seq["JF_mean"] == pytest.approx((np.mean(j_means) + np.mean(f_means)) / 2)
    # The contact sheet (8 places) gives each object 8 // 3 = 2 places and the 2 left over to the
    # lowest scores left, object 2's next zero frames.
    worst = [(w["obj_id"], w["frame"]) for w in seq["worst_frames"]]
    obj1_worst = sorted(zip([(j + f) / 2 for j, f in zip(expected_j, expected_f, strict=True)], OBJ12_FRAMES,
                            strict=True))[:2]
    assert worst[:4] == [(2, 1), (2, 2), (2, 3), (2, 4)]
    assert sorted(worst[4:]) == sorted([(1, t) for _, t in obj1_worst] + [(3, 4), (3, 5)])


def test_davis_folder_with_two_sequences(tmp_path, synthetic):
    davis.write_sequence(tmp_path / "davis", "a", synthetic, image_format="png")
    short = synthetic_sequence(num_frames=8, late_object_from=100, unannotated=(), name="b")
    davis.write_sequence(tmp_path / "davis", "b", short, image_format="png")
    out = tmp_path / "out"
    code = eval_main(["--davis", str(tmp_path / "davis"), "--out", str(out), "--no-progress"],
                     runner=StubRunner(FlawedTracker))
    assert code == 0
    results = load_results(out)
    assert [s["name"] for s in results["sequences"]] == ["a", "b"]
    per_object = [o["J"]["mean"] for s in results["sequences"] for o in s["objects"]]
    assert len(per_object) == 5
    # DAVIS averages over objects, not over sequences.
    assert results["summary"]["j_mean"] == pytest.approx(np.mean(per_object))
    assert (out / "plots" / "a_per_frame.png").is_file() and (out / "plots" / "b_worst_frames.png").is_file()


def test_max_frames(tmp_path, bag):
    out = tmp_path / "out"
    code = eval_main(["--bag", str(bag), "--max-frames", "6", "--out", str(out), "--no-progress"],
                     runner=StubRunner(PerfectTracker))
    assert code == 0
    (seq,) = load_results(out)["sequences"]
    assert seq["num_frames"] == 6
    # Frame 5 is now the last annotated frame and is left out.
    assert {o["obj_id"]: o["frames"] for o in seq["objects"]} == {1: [1, 2, 3, 4], 2: [1, 2, 3, 4], 3: [4]}


# ---------------------------------------------------------------- visibility


class NeverBlankTracker(PerfectTracker):
    """Exact while an object is in view; while it is hidden, keeps drawing its last seen mask."""

    def predict(self, obj_id):
        for t in range(self.t, -1, -1):
            labels = self.labels[t]
            if labels is not None and (labels == obj_id).any():
                return labels == obj_id
        return np.zeros(self.size, dtype=bool)


class SlowToBlankTracker(PerfectTracker):
    """Notices a hiding one frame late: the first hidden frame keeps the last mask, later ones are empty."""

    def predict(self, obj_id):
        truth = self.truth(obj_id)
        if truth.any() or self.t == 0:
            return truth
        before = self.labels[self.t - 1]
        return before == obj_id if before is not None else truth


class LosesAfterReturnTracker(PerfectTracker):
    """Exact, blanks a hidden object, but never finds it again once it has been hidden."""

    def predict(self, obj_id):
        truth = self.truth(obj_id)
        seen = False
        for labels in self.labels[: self.t]:
            if labels is None:
                continue
            if (labels == obj_id).any():
                seen = True
            elif seen:  # hidden on an earlier frame after it had appeared
                return np.zeros_like(truth)
        return truth


def visibility_of(entry):
    keys = ("hidden_frames", "hidden_correct", "absent_accuracy", "return_frames", "return_found", "redetection_rate",
            "return_on_target")
    return tuple(entry[k] for k in keys)


# Object 2 of the synthetic sequence is hidden on the scored frames 5 and 6 and back on 7, 9 and 10;
# objects 1 and 3 are never hidden.
NEVER_HIDDEN = (0, 0, None, 0, 0, None, 0)


def misses_of(entry):
    return tuple(entry[k] for k in ("visible_frames", "visible_missed", "miss_rate"))


# Frames in the truth (scored frames 1-10 but 8; object 3 is prompted on frame 3, scored from 4):
# object 1 on all 9, object 2 on 7 (4 before hiding, 3 after), object 3 on 6.
@pytest.mark.parametrize(
    ("tracker", "obj2", "obj2_missed", "console"),
    [
        (PerfectTracker, (2, 2, 1.0, 3, 3, 1.0, 3), 0,
         "; hidden frames reported absent 2/2 (100%), returns found 3/3 (100%) (3 on the target)"),
        (NeverBlankTracker, (2, 0, 0.0, 3, 3, 1.0, 3), 0,
         "; hidden frames reported absent 0/2 (0%), returns found 3/3 (100%) (3 on the target)"),
        (LosesAfterReturnTracker, (2, 2, 1.0, 3, 0, 0.0, 0), 3,
         "; hidden frames reported absent 2/2 (100%), returns found 0/3 (0%) (0 on the target)"),
        (FlawedTracker, (2, 2, 1.0, 3, 0, 0.0, 0), 7,
         "; hidden frames reported absent 2/2 (100%), returns found 0/3 (0%) (0 on the target)"),
    ],
)
def test_visibility_scores(tmp_path, bag, capsys, tracker, obj2, obj2_missed, console):
    out = tmp_path / "out"
    assert eval_main(["--bag", str(bag), "--out", str(out), "--no-progress"], runner=StubRunner(tracker)) == 0
    results = load_results(out)
    assert results["schema_version"] == 1  # the visibility keys are additions
    (seq,) = results["sequences"]
    objects = {o["obj_id"]: o for o in seq["objects"]}
    assert visibility_of(objects[1]) == visibility_of(objects[3]) == NEVER_HIDDEN
    assert visibility_of(objects[2]) == obj2
    assert visibility_of(seq) == visibility_of(results["summary"]) == obj2  # only object 2 counts
    missed = obj2_missed
    assert (misses_of(objects[1]), misses_of(objects[3])) == ((9, 0, 0.0), (6, 0, 0.0))
    assert misses_of(objects[2]) == (7, missed, pytest.approx(missed / 7))
    assert misses_of(seq) == misses_of(results["summary"]) == (22, missed, pytest.approx(missed / 22))
    # Each of these trackers' masks of a visible object lies on it (or is empty).
    assert results["summary"]["visible_on_target"] == 22 - missed
    console += (f", visible frames reported absent {missed}/22 ({missed / 22:.0%}), "
                f"on the target {22 - missed}/22 ({(22 - missed) / 22:.0%})")
    summary = results["summary"]
    # None of these trackers draws one object over another: no identity switch; a frame is predicted
    # when the mask is not empty: visible frames not missed plus hidden frames not reported absent.
    predicted = 22 - missed + summary["hidden_frames"] - summary["hidden_correct"]
    assert (summary["predicted_frames"], summary["identity_switches"], summary["identity_switch_rate"]) == (
        predicted, 0, 0.0)
    console += f", identity switches 0/{predicted} (0%) of predicted frames"
    assert capsys.readouterr().out.splitlines()[0].endswith(" ms/frame" + console)

    report = (out / "report.md").read_text()
    hidden, correct, absent, returns, found, redetection, on_target = obj2
    row = f"{hidden} | {correct} | {absent:.3f} | {returns} | {found} | {redetection:.3f} | {on_target} |"
    summary_at, sequence_at = report.index("## Summary"), report.index("## Sequence `bag`")
    assert report.index("| hidden frames | reported absent | absent accuracy |") < sequence_at
    assert report.index("| " + row, summary_at) < sequence_at  # the run's row
    assert report.index("| object | hidden frames | reported absent |") > sequence_at
    never_hidden = "0 | 0 | n/a | 0 | 0 | n/a | 0 |"
    obj2_predicted = objects[2]["predicted_frames"]
    for line in ("| 1 | " + never_hidden + " 9 | 0 | 0.000 | 9 | 9 | 0 | 0.000 |",
                 "| 2 | " + row + f" 7 | {missed} | {missed / 7:.3f} | {7 - missed} | {obj2_predicted} | 0 |",
                 "| 3 | " + never_hidden + " 6 | 0 | 0.000 | 6 | 6 | 0 | 0.000 |",
                 "| all | " + row + f" 22 | {missed} | {missed / 22:.3f} | {22 - missed} | {predicted} | 0 |"):
        assert any(entry.startswith(line) for entry in
                   report.splitlines()[report.splitlines().index("## Sequence `bag`"):]), line


def test_visibility_run_totals_are_rates_of_summed_counts(tmp_path, synthetic, capsys):
    """Two sequences, a tracker that notices a hiding one frame late: the run adds up the counts."""
    davis.write_sequence(tmp_path / "davis", "a", synthetic, image_format="png")
    # Frames 0-7 all annotated: objects 1 and 2 scored on 1-6; object 2 hidden on 2, 3, 4, back on 5, 6.
    b = synthetic_sequence(num_frames=8, occluded=(2, 3, 4), late_object_from=100, unannotated=(), name="b")
    davis.write_sequence(tmp_path / "davis", "b", b, image_format="png")
    out = tmp_path / "out"
    code = eval_main(["--davis", str(tmp_path / "davis"), "--out", str(out), "--no-progress"],
                     runner=StubRunner(SlowToBlankTracker))
    assert code == 0
    results = load_results(out)
    seq_a, seq_b = results["sequences"]
    # a: hidden on 5 (late: wrong) and 6 (right); b: hidden on 2 (wrong), 3 and 4 (right). Every return
    # found, on the target.
    assert visibility_of(seq_a) == (2, 1, 0.5, 3, 3, 1.0, 3)
    assert visibility_of(seq_b) == (3, 2, pytest.approx(2 / 3), 2, 2, 1.0, 2)
    # 3/5, not the mean of the sequences' rates (7/12).
    assert visibility_of(results["summary"]) == (5, 3, 0.6, 5, 5, 1.0, 5)
    # Visible frames: a 9 + 7 + 6 (as in test_visibility_scores), b 6 + 3; the tracker misses none.
    assert misses_of(results["summary"]) == (31, 0, 0.0)
    assert results["summary"]["visible_on_target"] == 31
    assert ("; hidden frames reported absent 3/5 (60%), returns found 5/5 (100%) (5 on the target), "
            "visible frames reported absent 0/31 (0%), on the target 31/31 (100%)") in capsys.readouterr().out
    assert "| 5 | 3 | 0.600 | 5 | 5 | 1.000 | 5 | 31 | 0 | 0.000 | 31 |" in (out / "report.md").read_text()


def test_visibility_without_hidden_objects(tmp_path, capsys):
    seq = synthetic_sequence(num_frames=8, occluded=(), unannotated=(), name="clear")
    davis.write_sequence(tmp_path / "davis", "clear", seq, image_format="png")
    out = tmp_path / "out"
    code = eval_main(["--davis", str(tmp_path / "davis"), "--out", str(out), "--no-progress"],
                     runner=StubRunner(PerfectTracker))
    assert code == 0
    results = load_results(out)
    (result,) = results["sequences"]
    assert [visibility_of(o) for o in result["objects"]] == [NEVER_HIDDEN] * 3
    assert visibility_of(result) == visibility_of(results["summary"]) == NEVER_HIDDEN
    # Objects 1 and 2 scored on frames 1-6, object 3 (prompted on frame 3) on 4-6: none missed.
    assert misses_of(results["summary"]) == (15, 0, 0.0)
    line = capsys.readouterr().out.splitlines()[0]
    assert line.endswith(" ms/frame; visible frames reported absent 0/15 (0%), on the target 15/15 (100%), "
                         "identity switches 0/15 (0%) of predicted frames") and "hidden" not in line
    report = (out / "report.md").read_text()
    assert "No object is hidden on a scored frame" in report and "| object | hidden frames |" not in report
    assert ("visible frames reported absent (missed): 0 of 15, on the target 15 of 15; identity switches 0/15 (0%) "
            "of predicted frames.") \
        in report


# ---------------------------------------------------------------- the default model


def test_default_model_is_the_bundled_one(tmp_path, bag, monkeypatch):
    """Without --model, sam2-eval builds sam2_model's "default" with no checkpoint (its bundled weights)."""
    from sam2_ros.evaluation import model as eval_model

    args = build_parser().parse_args(["--bag", str(bag)])
    assert (args.model, args.checkpoint) == ("default", None)
    specs = []

    def fake_build_runner(spec):
        specs.append(spec)
        return StubRunner(PerfectTracker)

    monkeypatch.setattr(eval_model, "build_runner", fake_build_runner)
    out = tmp_path / "out"
    assert eval_main(["--bag", str(bag), "--out", str(out), "--no-progress"]) == 0
    assert [(s.config, s.checkpoint) for s in specs] == [("default", None)]
    run = load_results(out)["run"]
    assert (run["model"], run["checkpoint"]) == ("default", None)
    assert "| model | `default` |" in (out / "report.md").read_text()
    assert "| checkpoint | bundled weights |" in (out / "report.md").read_text()


def test_build_runner_passes_no_checkpoint_through(monkeypatch):
    """build_model gets checkpoint=None for the default model, so that it loads the bundled weights."""
    import sam2_model

    from sam2_ros.evaluation.model import ModelSpec, build_runner

    calls = []
    monkeypatch.setattr(sam2_model, "build_model", lambda config, **kwargs: calls.append((config, kwargs)))
    build_runner(ModelSpec("default", None))
    assert calls == [("default", {"checkpoint": None, "device": "cpu", "dtype": torch.float32})]


def run_module(*args):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    return subprocess.run(
        [sys.executable, "-m", "sam2_ros.evaluation", *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_missing_topic_exits_2_without_output(tmp_path, bag):
    out = tmp_path / "out"
    proc = run_module("--bag", str(bag), "--gt-topic", "/labels", "--out", str(out))
    assert proc.returncode == 2
    assert "sam2-eval: error: bag" in proc.stderr and "'/labels'" in proc.stderr
    assert "/camera/gt_labels (sensor_msgs/msg/Image)" in proc.stderr  # what the bag does have
    assert "Traceback" not in proc.stderr
    assert not out.exists()


def test_unreadable_frame_mid_run_writes_nothing(tmp_path, synthetic, capsys):
    davis.write_sequence(tmp_path / "davis", "shapes", synthetic, image_format="png")
    (tmp_path / "davis" / "JPEGImages" / "shapes" / "00006.png").write_bytes(b"\x89PNG broken")
    out = tmp_path / "out"
    code = eval_main(["--davis", str(tmp_path / "davis"), "--out", str(out), "--no-progress"],
                     runner=StubRunner(PerfectTracker))
    assert code == 2
    err = capsys.readouterr().err
    assert "sam2-eval: error: cannot read image" in err and "00006.png" in err
    assert not (out / "results.json").exists() and not (out / "report.md").exists()


def test_bad_arguments(tmp_path, bag, capsys):
    assert eval_main(["--bag", str(bag), "--checkpoint", str(tmp_path / "none.pt"), "--out", str(tmp_path)]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        eval_main(["--bag", str(bag), "--davis", str(tmp_path)])
    assert exc.value.code == 2  # argparse: the two sources exclude each other


def test_repeated_sequence_is_refused(tmp_path, synthetic, capsys):
    davis.write_sequence(tmp_path / "davis", "a", synthetic, image_format="png")
    with pytest.raises(SystemExit) as exc:
        eval_main(["--davis", str(tmp_path / "davis"), "--sequence", "a", "--sequence", "a", "--out",
                   str(tmp_path / "out"), "--no-progress"], runner=StubRunner(FlawedTracker))
    assert exc.value.code == 2
    assert "--sequence a given more than once" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- the real tracker


@pytest.mark.parametrize("prompt", ["click", "mask"])
def test_real_tracker_numbers_equal_direct_metrics(tmp_path, prompt):
    """sam2-eval's numbers for the real tracker (a parity test model) are the metrics of its masks."""
    import sam2_model

    parity = torch.load(PARITY / "sam2.1_micro_stream.pt", weights_only=True)
    config = tmp_path / "micro.yaml"
    config.write_text(parity["resolved_config_yaml"])
    checkpoint = tmp_path / "micro.pt"
    torch.save({"model": parity["state_dict"]}, checkpoint)

    # 8 frames: objects 1 and 2 from frame 0, object 3 from frame 2, object 2 hidden on 4 and 5,
    # frame 6 unannotated, frame 7 the last annotated. Scored: 1-5 for objects 1 and 2, 3-5 for 3.
    seq = synthetic_sequence(num_frames=8, height=96, width=128, occluded=(4, 5), late_object_from=2,
                             unannotated=(6,))
    scored = {1: [1, 2, 3, 4, 5], 2: [1, 2, 3, 4, 5], 3: [3, 4, 5]}
    davis.write_sequence(tmp_path / "davis", "shapes", seq, image_format="png")
    assert make_bag_main(["--davis", str(tmp_path / "davis"), "--sequence", "shapes",
                          "--out", str(tmp_path / "bag"), "--no-progress"]) == 0
    out = tmp_path / "out"
    code = eval_main(["--bag", str(tmp_path / "bag"), "--model", str(config), "--checkpoint", str(checkpoint),
                      "--fill-hole-area", "0", "--prompt", prompt, "--out", str(out), "--no-progress"])
    assert code == 0
    (result,) = load_results(out)["sequences"]

    # The same session driven by hand, with prompts on the frames listed above.
    model = sam2_model.build_model(str(config), {"model": parity["state_dict"]})
    tracker = sam2_model.StreamingTracker(model, fill_hole_area=0)
    outputs = {}
    for frame in read_bag(tmp_path / "bag"):
        res = tracker.track(frame.image)
        for obj_id in {0: [1, 2], 2: [3]}.get(frame.index, []):
            truth = frame.gt_labels == obj_id
            if prompt == "click":
                point = np.array([interior_point(truth)], np.float32)
                res = tracker.add_prompt(obj_id, points=point, labels=np.array([1], np.int32))
            else:
                res = tracker.add_prompt(obj_id, mask=truth)
        outputs[frame.index] = (frame.gt_labels, dict(zip(res.obj_ids, res.masks.cpu().numpy(), strict=True)))
    assert [o["obj_id"] for o in result["objects"]] == [1, 2, 3]
    for obj in result["objects"]:
        obj_id = obj["obj_id"]
        assert obj["frames"] == scored[obj_id]
        pairs = [(outputs[t][1][obj_id], outputs[t][0] == obj_id) for t in scored[obj_id]]
        assert obj["J_per_frame"] == [region_similarity(pred, truth) for pred, truth in pairs]
        assert obj["F_per_frame"] == [boundary_f(pred, truth) for pred, truth in pairs]


def test_checkpoint_that_does_not_fit_exits_2(tmp_path, bag, capsys):
    parity = torch.load(PARITY / "sam2.1_micro_stream.pt", weights_only=True)
    config = tmp_path / "micro.yaml"
    config.write_text(parity["resolved_config_yaml"])
    # SAM 2 (July 2024) weights lack the SAM 2.1 keys of this config.
    checkpoint = tmp_path / "sam2_micro.pt"
    torch.save({"model": torch.load(PARITY / "sam2_micro_stream.pt", weights_only=True)["state_dict"]}, checkpoint)
    out = tmp_path / "out"
    code = eval_main(["--bag", str(bag), "--model", str(config), "--checkpoint", str(checkpoint), "--out", str(out)])
    assert code == 2
    err = capsys.readouterr().err
    assert "sam2-eval: error: cannot build model" in err and "sam2_micro.pt" in err
    assert not out.exists()


@pytest.mark.parametrize(("bound_th", "phrase"), [("3", "matched within 3 pixels."),
                                                  ("0.01", "matched within ceil(0.01 x image diagonal) pixels.")])
def test_report_states_the_boundary_tolerance_as_scored(tmp_path, synthetic, bound_th, phrase):
    # metrics.boundary_radius: a bound_th of 1 or more is pixels, below 1 a fraction of the diagonal.
    davis.write_sequence(tmp_path / "davis", "a", synthetic, image_format="png")
    out = tmp_path / "out"
    assert eval_main(["--davis", str(tmp_path / "davis"), "--bound-th", bound_th, "--out", str(out),
                      "--no-progress"], runner=StubRunner(FlawedTracker)) == 0
    report = (out / "report.md").read_text()
    assert phrase in report
    assert "leaving out the sequence's last annotated frame" in report  # prompted runs: DAVIS semi-supervised
