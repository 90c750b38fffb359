"""sam2-eval's identity-switch measure: on constructed masks, and end to end with a stub tracker
that draws a hidden object's mask over another object."""

import json

import numpy as np
import pytest

from sam2_ros.evaluation import davis
from sam2_ros.evaluation.cli import main as eval_main
from sam2_ros.evaluation.compare import main as compare_main
from sam2_ros.evaluation.scoring import FrameOutcome, ObjectResult, VisibilityCounts, identity_switched
from sam2_ros.evaluation.synthetic import synthetic_sequence

from eval_stubs import PerfectTracker, StubRunner

VOID = 255


def labels_with(*boxes):
    """A 20 x 20 label image; each box is (label, y0, y1, x0, x1)."""
    labels = np.zeros((20, 20), np.uint8)
    for label, y0, y1, x0, x1 in boxes:
        labels[y0:y1, x0:x1] = label
    return labels


def box_mask(y0, y1, x0, x1):
    mask = np.zeros((20, 20), bool)
    mask[y0:y1, x0:x1] = True
    return mask


LABELS = labels_with((1, 0, 5, 0, 5), (2, 10, 20, 10, 20))  # object 1: 25 px, object 2: 100 px


@pytest.mark.parametrize(("mask", "switched"), [
    (box_mask(0, 5, 0, 5), False),                # exactly its own object
    (np.zeros((20, 20), bool), False),            # empty: reported absent, never a switch
    (box_mask(6, 9, 0, 20), False),               # background only
    (box_mask(10, 12, 10, 12), True),             # 4 px of object 2, none of its own
    (box_mask(0, 5, 0, 20) | box_mask(10, 20, 10, 11), False),  # 25 own vs 10 other: own wins
    (box_mask(0, 5, 0, 5) | box_mask(10, 13, 10, 20), True),    # 25 own vs 30 other
    (box_mask(0, 5, 0, 5) | box_mask(10, 15, 10, 15), False),   # 25 vs 25: a tie is no switch
])
def test_identity_switched_on_constructed_masks(mask, switched):
    assert identity_switched(mask, LABELS, obj_id=1) is switched


def test_void_pixels_count_for_nobody():
    labels = labels_with((1, 0, 2, 0, 2), (VOID, 10, 20, 10, 20))
    mask = box_mask(0, 2, 0, 2) | box_mask(10, 20, 10, 20)
    assert not identity_switched(mask, labels, 1, void_label=VOID)
    assert identity_switched(mask, labels, 1, void_label=None)  # without void, 255 is just another object


def test_hidden_object_drawn_over_another_is_a_switch():
    """Its own truth is empty (hidden): any overlap with another object is a switch."""
    labels = labels_with((2, 10, 20, 10, 20))
    assert identity_switched(box_mask(12, 14, 12, 14), labels, obj_id=1)


def test_counts_per_object_and_rate():
    obj = ObjectResult(obj_id=1, prompt_frame=0)
    for gt_empty, pred_empty, switched in [(False, False, False), (False, False, True), (True, False, True),
                                           (True, True, False), (False, True, False)]:
        obj.count_visibility(gt_empty, pred_empty, switched)
    v = obj.visibility
    assert (v.predicted_frames, v.identity_switches, v.identity_switch_rate) == (3, 2, pytest.approx(2 / 3))
    assert VisibilityCounts().identity_switch_rate is None


def test_returns_on_the_target_are_found_on_its_own_truth():
    """After a hidden frame, a return is found when anything is predicted, and found on the target
    only when the mask overlaps the object's truth and is no identity switch."""
    obj = ObjectResult(obj_id=1, prompt_frame=0)
    obj.count_visibility(gt_empty=True, pred_empty=True)
    for pred_empty, switched, overlaps in [(False, False, True),    # on the target
                                           (False, True, True),     # touches it, mostly on a look-alike
                                           (False, False, False),   # on the background only
                                           (True, False, False)]:   # reported absent
        obj.count_visibility(False, pred_empty, switched, overlaps_target=overlaps)
    v = obj.visibility
    assert (v.return_frames, v.return_found, v.return_on_target) == (4, 3, 1)
    assert (v.visible_frames, v.visible_missed, v.visible_on_target) == (4, 1, 1)
    # Each frame's outcome, in order: hidden and absent, then the four returns.
    assert "".join(o.value for o in obj.outcomes) == "hTSE-"


def test_frame_outcomes_name_each_case_once():
    """Every combination of the scoring's four facts maps to one outcome; a hidden frame is never
    on the target, a visible one's letters add up to the visibility counts."""
    obj = ObjectResult(obj_id=1, prompt_frame=0)
    cases = [(gt_empty, pred_empty, switched, overlaps) for gt_empty in (True, False) for pred_empty in (True, False)
             for switched in (False, True) for overlaps in (False, True)
             if not (pred_empty and (switched or overlaps))]  # an empty mask overlaps nothing
    for case in cases:
        obj.count_visibility(*case[:3], overlaps_target=case[3])
    letters = "".join(o.value for o in obj.outcomes)
    assert letters == "h" + "xxxx" + "-" + "ETSS"
    assert FrameOutcome.of(False, False, False, True) is FrameOutcome.ON_TARGET
    v = obj.visibility
    assert letters.count("T") == v.visible_on_target and letters.count("-") == v.visible_missed
    assert letters.count("h") == v.hidden_correct and letters.count("x") == v.hidden_frames - v.hidden_correct
    assert v.identity_switches == 4 and letters.count("S") == 2  # a switch while hidden is no visible frame's


def test_visible_frames_on_the_target_are_counted_without_a_hiding():
    """Every visible frame counts towards the frames on the target, not only returns."""
    obj = ObjectResult(obj_id=1, prompt_frame=0)
    for pred_empty, switched, overlaps in [(False, False, True), (False, False, True), (False, True, True),
                                           (True, False, False)]:
        obj.count_visibility(False, pred_empty, switched, overlaps_target=overlaps)
    obj.count_visibility(gt_empty=True, pred_empty=False, switched=False, overlaps_target=False)  # hidden: not visible
    v = obj.visibility
    assert (v.visible_frames, v.visible_missed, v.visible_on_target, v.return_frames) == (4, 1, 2, 0)


class ReturnsOntoOtherTracker(PerfectTracker):
    """Exact, except that on object 2's first frame back after hiding its mask is object 1's."""

    def predict(self, obj_id):
        truth = self.truth(obj_id)
        previous = self.labels[self.t - 1] if self.t > 0 else None
        if obj_id == 2 and truth.any() and previous is not None and not (previous == 2).any():
            return self.labels[self.t] == 1
        return truth


class SwappingTracker(PerfectTracker):
    """Exact, except that while object 2 is hidden its mask is object 1's (a look-alike taken)."""

    def predict(self, obj_id):
        truth = self.truth(obj_id)
        if obj_id == 2 and not truth.any() and self.labels[self.t] is not None:
            return self.labels[self.t] == 1
        return truth


def run_eval(tmp_path, tracker, name):
    seq = synthetic_sequence(num_frames=8, occluded=(2, 3), late_object_from=100, unannotated=(), name="s")
    davis.write_sequence(tmp_path / "davis", "s", seq, image_format="png")
    out = tmp_path / name
    assert eval_main(["--davis", str(tmp_path / "davis"), "--out", str(out), "--no-progress"],
                     runner=StubRunner(tracker)) == 0
    return out, json.loads((out / "results.json").read_text())


def test_switches_in_results_report_and_console(tmp_path, capsys):
    # Objects 1 and 2 scored on frames 1-6; object 2 hidden on 2 and 3, where the stub draws object 1.
    out, results = run_eval(tmp_path, SwappingTracker, "swap")
    objects = {o["obj_id"]: o for o in results["sequences"][0]["objects"]}
    assert (objects[1]["identity_switches"], objects[1]["predicted_frames"]) == (0, 6)
    assert (objects[2]["identity_switches"], objects[2]["predicted_frames"]) == (2, 6)
    summary = results["summary"]
    assert (summary["identity_switches"], summary["predicted_frames"]) == (2, 12)
    assert summary["identity_switch_rate"] == pytest.approx(2 / 12)
    assert "identity switches 2/12 (17%) of predicted frames" in capsys.readouterr().out
    report = (out / "report.md").read_text()
    assert "| identity switches | switch rate |" in report and "| 12 | 2 | 0.167 |" in report
    # sam2-eval-compare names both runs' switches.
    perfect, _ = run_eval(tmp_path, PerfectTracker, "perfect")
    capsys.readouterr()
    assert compare_main([str(perfect), str(out)]) == 0
    text = capsys.readouterr().out
    assert "before: " in text and "identity switches 0/10 (0%) of predicted frames" in text
    assert "identity switches 2/12 (17%) of predicted frames" in text
    # Per object 0 -> 0 and 0 -> 2: mean +1, and with two objects the t interval (12.71 x 1) holds 0.
    assert "identity switches per object: difference +1.000, 95 % interval [-11.706, +13.706] (0 -> 2)" in text


def test_a_return_onto_another_object_is_found_but_not_on_the_target(tmp_path, capsys):
    # Object 2 is hidden on frames 2 and 3 and back on 4-6; on frame 4 the stub draws object 1 for it.
    out, results = run_eval(tmp_path, ReturnsOntoOtherTracker, "onto")
    objects = {o["obj_id"]: o for o in results["sequences"][0]["objects"]}
    assert (objects[2]["return_frames"], objects[2]["return_found"], objects[2]["return_on_target"]) == (3, 3, 2)
    assert (objects[2]["visible_frames"], objects[2]["visible_on_target"]) == (4, 3)
    assert ("returns found 3/3 (100%) (2 on the target), visible frames reported absent 0/10 (0%), "
            "on the target 9/10 (90%)") in capsys.readouterr().out
    perfect, _ = run_eval(tmp_path, PerfectTracker, "perfect")
    capsys.readouterr()
    assert compare_main([str(perfect), str(out)]) == 0
    text = capsys.readouterr().out
    # Per object 0 -> 0 and 3 -> 2: mean -0.5; two objects: the interval is 12.71 x 0.5 wide each side.
    assert "returns found on the target per object: difference -0.500, 95 % interval [-6.853, +5.853] (3 -> 2)" in text
    assert "visible frames on the target per object: difference -0.500, 95 % interval [-6.853, +5.853] (10 -> 9)" in text


# ---------------------------------------------------------------- variants on shared features


def test_variants_share_features_and_equal_separate_runs(tmp_path, capsys):
    """--variant official --variant robust: each variant's results equal a run of that policy alone
    (the image features computed once and shared change nothing), one folder per variant."""
    import os
    from pathlib import Path

    import torch

    parity_dir = Path(os.environ.get("SAM2_PARITY_DIR", Path(__file__).resolve().parents[2] / "shared" / "parity"))
    parity = torch.load(parity_dir / "sam2.1_micro_stream.pt", weights_only=True)
    config, checkpoint = tmp_path / "micro.yaml", tmp_path / "micro.pt"
    config.write_text(parity["resolved_config_yaml"])
    torch.save({"model": parity["state_dict"]}, checkpoint)
    seq = synthetic_sequence(num_frames=6, height=64, width=64, occluded=(3,), late_object_from=100, unannotated=())
    davis.write_sequence(tmp_path / "davis", "s", seq, image_format="png")
    common = ["--davis", str(tmp_path / "davis"), "--model", str(config), "--checkpoint", str(checkpoint),
              "--fill-hole-area", "0", "--no-progress"]
    assert eval_main(common + ["--variant", "official", "--variant", "robust", "--out", str(tmp_path / "v")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("official: J&F ") and lines[1].startswith("robust: J&F ")
    for policy in ("official", "robust"):
        alone = tmp_path / f"alone_{policy}"
        assert eval_main(common + ["--memory-policy", policy, "--out", str(alone)]) == 0
        shared_run = json.loads((tmp_path / "v" / policy / "results.json").read_text())
        assert shared_run["run"]["memory_policy"] == policy
        assert json.loads((alone / "results.json").read_text())["run"]["memory_policy"] == policy
        shared = shared_run["sequences"][0]["objects"]
        single = json.loads((alone / "results.json").read_text())["sequences"][0]["objects"]
        assert [(o["J_per_frame"], o["F_per_frame"]) for o in shared] == \
            [(o["J_per_frame"], o["F_per_frame"]) for o in single]
        # Predicted boxes come only from the robust policy, on a subset of the missed frames.
        boxes = [(o["predicted_box_hits"], o["predicted_box_frames"], o["visible_missed"]) for o in shared]
        assert boxes == [(o["predicted_box_hits"], o["predicted_box_frames"], o["visible_missed"]) for o in single]
        assert all(hits <= frames <= missed for hits, frames, missed in boxes)
        if policy == "official":
            assert all(frames == 0 for _, frames, _ in boxes)
    assert eval_main(common + ["--variant", "sideways", "--out", str(tmp_path / "bad")]) == 2
    assert "memory_policy 'sideways'" in capsys.readouterr().err


def test_variant_policies_are_checked_before_the_model_and_exclude_memory_policy(tmp_path, capsys):
    seq = synthetic_sequence(num_frames=3, height=32, width=32, occluded=(), late_object_from=100, unannotated=())
    davis.write_sequence(tmp_path / "davis", "s", seq, image_format="png")
    # A model that cannot be built: the bad second policy must be named first, not the model.
    common = ["--davis", str(tmp_path / "davis"), "--model", str(tmp_path / "missing.yaml"), "--no-progress",
              "--out", str(tmp_path / "out")]
    assert eval_main(common + ["--variant", "official", "--variant", "robsut"]) == 2
    err = capsys.readouterr().err
    assert "memory_policy 'robsut'" in err and "cannot build model" not in err
    with pytest.raises(SystemExit) as exc:
        eval_main(common + ["--variant", "official", "--memory-policy", "robust"])
    assert exc.value.code == 2
    assert "--memory-policy and --variant exclude each other" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
