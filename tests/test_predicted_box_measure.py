"""sam2-eval's predicted-box measure (memory_policy robust): on a visible frame reported absent, did
the box the tracker predicted hold the object? On constructed masks and boxes, through the runner,
and end to end (results.json, report, console, sam2-eval-compare, tools/merge_results.py) with a
stub tracker that loses an object and gives boxes placed by hand."""

import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from sam2_ros.evaluation import davis
from sam2_ros.evaluation.cli import main as eval_main
from sam2_ros.evaluation.compare import compare_runs, load_run, main as compare_main
from sam2_ros.evaluation.live import predicted_box_of
from sam2_ros.evaluation.runner import FramePrediction, predicted_boxes_from_result
from sam2_ros.evaluation.scoring import box_holds_centre, score_auto, score_predictions, summarize
from sam2_ros.evaluation.sequence import Frame, Sequence
from sam2_ros.evaluation.synthetic import synthetic_sequence

from eval_stubs import PerfectTracker, StubRunner

SIZE = 20
MERGE_TOOL = Path(__file__).resolve().parents[1] / "tools" / "merge_results.py"


def square(y0, y1, x0, x1):
    mask = np.zeros((SIZE, SIZE), bool)
    mask[y0:y1, x0:x1] = True
    return mask


# ---------------------------------------------------------------- the centre-in-box test


def test_the_centre_is_the_mean_of_the_pixels_and_the_bounds_are_included():
    # Rows 0-1 x columns 0-1 and one pixel at (row 0, column 8): mean column (0+1+0+1+8)/5 = 2.0,
    # mean row (0+0+1+1+0)/5 = 0.4; the bounding box's centre would be (4, 0.5).
    mask = square(0, 2, 0, 2)
    mask[0, 8] = True
    assert box_holds_centre((2.0, 0.0, 5.0, 1.0), mask)       # the centre on the left bound
    assert box_holds_centre((0.0, 0.4, 2.0, 0.4), mask)       # a box of one point, the centre
    assert not box_holds_centre((2.01, 0.0, 5.0, 1.0), mask)  # just right of it
    assert not box_holds_centre((3.0, 0.0, 5.0, 1.0), mask)   # holds the bounding box's centre only
    assert not box_holds_centre((0.0, 0.0, 1.9, 1.0), mask)   # the square part, not the centre
    assert not box_holds_centre((0.0, 0.0, 19.0, 19.0), np.zeros((SIZE, SIZE), bool))  # no centre


# ---------------------------------------------------------------- scoring constructed frames

OBJ1 = square(4, 8, 4, 8)       # centre (5.5, 5.5)
OBJ2 = square(12, 16, 12, 16)    # centre (13.5, 13.5)
ON_OBJ1 = (4.0, 4.0, 7.0, 7.0)
BESIDE_OBJ1 = (9.0, 4.0, 12.0, 7.0)   # the same size, right of the object: its centre is outside
ON_OBJ2 = (12.0, 12.0, 15.0, 15.0)
EMPTY = np.zeros((SIZE, SIZE), bool)


def constructed_scene(with_boxes=True):
    """Seven frames; scored frames 1-5 (after the prompt frame 0, before the last annotated frame 6).

    Object 1: frame 1 reported absent with a box on it (a hit), frame 2 absent with a box beside it
    (a predicted-box frame, no hit), frame 3 absent without a box (not counted), frame 4 hidden with
    a box (not counted), frame 5 shown with a box (not counted); frame 6 absent with a box on it, but
    not scored. Object 2: frame 1 absent with a box on it, shown everywhere else.
    """
    obj1_masks = [OBJ1, EMPTY, EMPTY, EMPTY, EMPTY, OBJ1, EMPTY]
    obj1_boxes = [None, ON_OBJ1, BESIDE_OBJ1, None, ON_OBJ1, ON_OBJ1, ON_OBJ1]
    frames, predictions = [], []
    for t in range(7):
        labels = (OBJ2 * 2).astype(np.uint8)
        if t != 4:
            labels[OBJ1] = 1
        frames.append(Frame(t, np.zeros((SIZE, SIZE, 3), np.uint8), t, labels))
        masks = {1: obj1_masks[t], 2: EMPTY if t == 1 else OBJ2}
        boxes = {k: v for k, v in ((1, obj1_boxes[t]), (2, ON_OBJ2 if t == 1 else None)) if v is not None}
        predictions.append(FramePrediction(frames[-1], masks, (1, 2) if t == 0 else (), 1.0, 0.0,
                                           predicted_boxes=boxes if with_boxes else None))
    return Sequence.from_frames("scene", frames), predictions


def test_only_visible_frames_reported_absent_with_a_box_count():
    sequence, predictions = constructed_scene()
    result = score_predictions(sequence, predictions)
    first, second = result.objects
    assert first.frames == [1, 2, 3, 4, 5]
    assert "".join(o.value for o in first.outcomes) == "---hT"
    v = first.visibility
    assert (v.visible_missed, v.predicted_box_frames, v.predicted_box_hits) == (3, 2, 1)
    assert (second.visibility.predicted_box_frames, second.visibility.predicted_box_hits) == (1, 1)
    # Sequence and run add the objects' counts.
    assert (result.visibility.predicted_box_frames, result.visibility.predicted_box_hits) == (3, 2)
    summary = summarize([result])
    assert (summary.predicted_box_frames, summary.predicted_box_hits) == (3, 2)
    assert summary.visibility.predicted_box_frames == 3


def test_without_boxes_nothing_is_counted_and_the_rest_is_unchanged():
    sequence, predictions = constructed_scene(with_boxes=False)
    without = score_predictions(sequence, predictions)
    sequence, predictions = constructed_scene()
    with_boxes = score_predictions(sequence, predictions)
    assert (without.visibility.predicted_box_frames, without.visibility.predicted_box_hits) == (0, 0)
    assert without.visibility.visible_missed == with_boxes.visibility.visible_missed == 4
    assert [o.j for o in without.objects] == [o.j for o in with_boxes.objects]


def test_auto_prompting_gives_a_track_s_box_to_the_object_it_stands_for():
    """score_auto renames tracks to ground-truth objects: track 7's boxes become object 1's."""
    frames = [Frame(t, np.zeros((SIZE, SIZE, 3), np.uint8), t, (OBJ1 * 1).astype(np.uint8)) for t in range(4)]
    masks = [OBJ1, OBJ1, EMPTY, OBJ1]
    boxes = [None, None, ON_OBJ1, None]
    predictions = [FramePrediction(f, {7: masks[t]}, (7,) if t == 0 else (), 1.0, 0.0,
                                   predicted_boxes={} if boxes[t] is None else {7: boxes[t]})
                   for t, f in enumerate(frames)]
    result = score_auto(Sequence.from_frames("auto", frames), predictions)
    assert result.matches == {1: 7}
    (obj,) = result.objects
    assert (obj.visibility.visible_missed, obj.visibility.predicted_box_frames,
            obj.visibility.predicted_box_hits) == (1, 1, 1)


# ---------------------------------------------------------------- runners


def test_boxes_from_a_tracker_result_by_object():
    result = SimpleNamespace(obj_ids=[3, 5, 9], predicted_boxes=[None, (1, 2.5, 3, 4), (0, 0, 1, 1)])
    assert predicted_boxes_from_result(result) == {5: (1.0, 2.5, 3.0, 4.0), 9: (0.0, 0.0, 1.0, 1.0)}
    assert predicted_boxes_from_result(SimpleNamespace(obj_ids=[3], predicted_boxes=None)) is None
    assert predicted_boxes_from_result(SimpleNamespace(obj_ids=[3])) is None  # a stand-in without them
    with pytest.raises(RuntimeError, match="2 predicted boxes for objects \\[3\\]"):
        predicted_boxes_from_result(SimpleNamespace(obj_ids=[3], predicted_boxes=[None, None]))


def test_boxes_from_the_tracker_s_own_result_type():
    """The fields as sam2_model.TrackingResult names them (a box per object, None where visible)."""
    import torch

    from sam2_model.tracker import TrackingResult

    result = TrackingResult(frame_index=4, obj_ids=[1, 2], low_res_logits=torch.zeros(2, 1, 4, 4),
                            object_score_logits=torch.tensor([1.0, -1.0]), iou_scores=torch.ones(2),
                            frame_hw=(16, 16), predicted_boxes=[None, (2.0, 3.0, 9.5, 12.0)])
    assert predicted_boxes_from_result(result) == {2: (2.0, 3.0, 9.5, 12.0)}


def box_around(mask):
    ys, xs = np.nonzero(mask)
    return (float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max()))


def box_beside(mask):
    x0, y0, x1, y1 = box_around(mask)
    return (x1 + 3, y0, x1 + 3 + (x1 - x0), y1)  # right of the object: its centre is left of x1 + 3


class LosingTracker(PerfectTracker):
    """Exact, except: object 1 is reported absent on frames 2, 3, 4 and 7, with a box around it on
    2 and 7 and beside it on 3 (none on 4), and shown with a box on 5; object 2 is given a box on
    its hidden frames 2 and 3. On the synthetic sequence below the scored frames are 1-6."""

    LOST = {2: box_around, 3: box_beside, 4: None, 7: box_around}

    def predict(self, obj_id):
        if obj_id == 1 and self.t in self.LOST:
            return np.zeros(self.size, bool)
        return self.truth(obj_id)

    def box(self, obj_id):
        if obj_id == 1 and (self.t in self.LOST or self.t == 5):
            place = self.LOST.get(self.t, box_around)
            return None if place is None else place(self.truth(1))
        if obj_id == 2 and self.t in (2, 3):
            return (0.0, 0.0, 79.0, 59.0)  # the whole frame: a hidden frame's box is never counted
        return None

    def result(self):
        result = super().result()
        result.predicted_boxes = [self.box(i) for i in self.obj_ids]
        return result


def test_the_in_process_runner_passes_the_tracker_s_boxes_on():
    seq = synthetic_sequence(num_frames=8, occluded=(2, 3), late_object_from=100, unannotated=())
    runner = StubRunner(LosingTracker)
    predictions = list(runner.run(seq, "mask"))
    truth_1 = [f.gt_labels == 1 for f in seq]
    assert predictions[0].predicted_boxes == {}  # prompted on frame 0, no box
    assert predictions[2].predicted_boxes == {1: box_around(truth_1[2]), 2: (0.0, 0.0, 79.0, 59.0)}
    assert predictions[3].predicted_boxes[1] == box_beside(truth_1[3])
    assert predictions[4].predicted_boxes == {}
    plain = list(StubRunner(PerfectTracker).run(seq, "mask"))  # results without the attribute
    assert all(p.predicted_boxes is None for p in plain)


def test_the_live_runner_reads_the_node_s_predicted_box():
    roi = SimpleNamespace(x_offset=10, y_offset=5, width=20, height=16)
    assert predicted_box_of(SimpleNamespace(box_predicted=True, predicted_bbox=roi)) == (10.0, 5.0, 30.0, 21.0)
    assert predicted_box_of(SimpleNamespace(box_predicted=False, predicted_bbox=roi)) is None


# ---------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """sam2-eval over one synthetic sequence (objects 1 and 2, object 2 hidden on frames 2 and 3)
    with the perfect and the losing stub trackers: results folder and console output of each."""
    root = tmp_path_factory.mktemp("boxes")
    seq = synthetic_sequence(num_frames=8, occluded=(2, 3), late_object_from=100, unannotated=(), name="s")
    davis.write_sequence(root / "davis", "s", seq, image_format="png")
    out = {}
    for name, tracker in (("perfect", PerfectTracker), ("losing", LosingTracker)):
        console = io.StringIO()
        with contextlib.redirect_stdout(console):
            code = eval_main(["--davis", str(root / "davis"), "--out", str(root / name), "--no-progress"],
                             runner=StubRunner(tracker))
        assert code == 0
        out[name] = (root / name, console.getvalue())
    return out


def objects_of(results):
    return {o["obj_id"]: o for s in results["sequences"] for o in s["objects"]}


def test_results_json_carries_the_counts_per_object_sequence_and_run(runs):
    results = json.loads((runs["losing"][0] / "results.json").read_text())
    objects = objects_of(results)
    # Object 1 reported absent on scored frames 2, 3, 4: a box around it on 2, beside it on 3, none on 4.
    assert (objects[1]["visible_missed"], objects[1]["predicted_box_frames"], objects[1]["predicted_box_hits"]) \
        == (3, 2, 1)
    assert (objects[2]["predicted_box_frames"], objects[2]["predicted_box_hits"]) == (0, 0)  # boxes only when hidden
    for block in (results["sequences"][0], results["summary"]):
        assert (block["predicted_box_frames"], block["predicted_box_hits"]) == (2, 1)
    # Read back by sam2-eval-compare as the same counts.
    run = load_run(runs["losing"][0])
    assert run.objects[("s", 1)].visibility.predicted_box_frames == 2
    assert run.objects[("s", 1)].visibility.predicted_box_hits == 1
    assert not run.missing_counts
    perfect = json.loads((runs["perfect"][0] / "results.json").read_text())
    assert (perfect["summary"]["predicted_box_frames"], perfect["summary"]["predicted_box_hits"]) == (0, 0)


def test_report_and_console_name_the_boxes_only_when_there_were_some(runs):
    folder, console = runs["losing"]
    report = (folder / "report.md").read_text()
    assert ("Predicted boxes: on 2 of the 3 visible frames reported absent the tracker gave a box where it "
            "predicts the object; the box held the object's centre on 1/2 (50%) of them.") in report
    assert "Predicted box on the object, of the visible frames reported absent with a box: object 1 1/2 (50%)." \
        in report
    assert "holds the centre (mean column, mean row)" in report
    assert ("visible frames reported absent 3/10 (30%), on the target 7/10 (70%), predicted box on the object "
            "1/2 (50%) of visible frames reported absent with a box, identity switches") in console
    folder, console = runs["perfect"]
    assert "redicted box" not in (folder / "report.md").read_text() and "predicted box" not in console
    assert "visible frames reported absent 0/10 (0%), on the target 10/10 (100%), identity switches" in console


def test_compare_pairs_the_hits_per_object_and_leaves_them_out_without_boxes(runs, capsys):
    perfect, losing = runs["perfect"][0], runs["losing"][0]
    assert compare_main([str(perfect), str(losing)]) == 0
    lines = capsys.readouterr().out.splitlines()
    after = next(line for line in lines if line.startswith("after: hidden"))
    assert "predicted box on the object 1/2 (50%) of visible frames reported absent with a box" in after
    assert "predicted box" not in next(line for line in lines if line.startswith("before: hidden"))
    # Per object 0 -> 1 and 0 -> 0: mean +0.5; with two objects the interval is 12.71 x 0.5 each side.
    assert "predicted boxes on the object per object: difference +0.500, 95 % interval [-5.853, +6.853] (0 -> 1)" \
        in lines
    assert compare_main([str(perfect), str(perfect)]) == 0
    text = capsys.readouterr().out
    assert "predicted box" not in text and "visible frames reported absent per object" in text


def test_an_older_results_json_without_the_counts_reads_as_none(runs, tmp_path, capsys):
    data = json.loads((runs["losing"][0] / "results.json").read_text())
    for block in [data["summary"], *data["sequences"], *(o for s in data["sequences"] for o in s["objects"])]:
        del block["predicted_box_frames"], block["predicted_box_hits"]
    older = tmp_path / "older.json"
    older.write_text(json.dumps(data))
    run = load_run(older)
    assert {"predicted_box_frames", "predicted_box_hits"} <= run.missing_counts
    assert run.objects[("s", 1)].visibility.predicted_box_frames == 0  # missing reads as 0
    assert run.objects[("s", 1)].visibility.visible_missed == 3       # the rest as before
    assert compare_main([str(older), str(runs["losing"][0])]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert not any(line.startswith("predicted boxes on the object per object") for line in lines)
    assert "predicted box on the object 1/2 (50%)" in next(line for line in lines if line.startswith("after: hidden"))


def test_merged_results_keep_the_counts(runs, tmp_path):
    merged = tmp_path / "merged.json"
    done = subprocess.run([sys.executable, str(MERGE_TOOL), str(merged), f"x={runs['losing'][0]}",
                           f"y={runs['losing'][0]}"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    data = json.loads(merged.read_text())
    for sequence in data["sequences"]:
        assert (sequence["predicted_box_frames"], sequence["predicted_box_hits"]) == (2, 1)
        assert objects_of({"sequences": [sequence]})[1]["predicted_box_hits"] == 1
    comparison = compare_runs(load_run(merged), load_run(merged))
    total = load_run(merged).visibility([c.key for c in comparison.changes])
    assert (total.predicted_box_frames, total.predicted_box_hits) == (4, 2)
