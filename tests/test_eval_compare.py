"""sam2-eval-compare on results.json files written by real sam2-eval runs (stub trackers)."""

import json
import math
import statistics

import pytest

from sam2_ros.evaluation import davis
from sam2_ros.evaluation.cli import main as eval_main
from sam2_ros.evaluation.compare import compare_runs, load_run, main as compare_main, student_t_quantile
from sam2_ros.evaluation.errors import EvaluationInputError
from sam2_ros.evaluation.synthetic import synthetic_sequence

from eval_stubs import FlawedTracker, PerfectTracker, StubRunner


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Two sequences, five objects (three in "a", two in "b")."""
    root = tmp_path_factory.mktemp("davis")
    davis.write_sequence(root, "a", synthetic_sequence(), image_format="png")
    davis.write_sequence(root, "b", synthetic_sequence(num_frames=8, late_object_from=100, unannotated=(),
                                                      name="b"), image_format="png")
    return root


def evaluate(folder, out, tracker, *extra):
    code = eval_main(["--davis", str(folder), "--out", str(out), "--no-progress", *extra], runner=StubRunner(tracker))
    assert code == 0
    return out / "results.json"


@pytest.fixture(scope="module")
def runs(folder, tmp_path_factory):
    base = tmp_path_factory.mktemp("runs")
    return {"flawed": evaluate(folder, base / "flawed", FlawedTracker),
            "perfect": evaluate(folder, base / "perfect", PerfectTracker)}


def per_object_jf(results_json):
    data = json.loads(results_json.read_text())
    return {(s["name"], o["obj_id"]): o["JF_mean"] for s in data["sequences"] for o in s["objects"]}


def test_student_t_quantile_matches_closed_forms():
    # dof 1 (Cauchy) and 2 have closed forms; large dof tends to the normal quantile.
    assert student_t_quantile(0.975, 1) == pytest.approx(math.tan(math.pi * 0.475), rel=1e-4)
    a = 0.475
    assert student_t_quantile(0.975, 2) == pytest.approx(2 * a * math.sqrt(2 / (1 - 4 * a * a)), rel=1e-6)
    assert student_t_quantile(0.975, 100000) == pytest.approx(statistics.NormalDist().inv_cdf(0.975), rel=1e-4)
    assert student_t_quantile(0.975, 5) > student_t_quantile(0.975, 30) > student_t_quantile(0.975, 1000)


def test_paired_difference_of_two_real_runs(runs, capsys):
    before, after = per_object_jf(runs["flawed"]), per_object_jf(runs["perfect"])
    assert before.keys() == after.keys() and len(before) == 5
    differences = [after[k] - before[k] for k in sorted(before)]
    comparison = compare_runs(load_run(runs["flawed"]), load_run(runs["perfect"]), tolerance=0.02)

    # The mean paired difference is the difference of the two runs' J&F (a mean over objects).
    summaries = [json.loads(runs[name].read_text())["summary"] for name in ("flawed", "perfect")]
    assert comparison.mean_difference == pytest.approx(summaries[1]["jf_mean"] - summaries[0]["jf_mean"])
    assert comparison.mean_difference == pytest.approx(statistics.mean(differences))
    se = statistics.stdev(differences) / math.sqrt(5)
    assert comparison.standard_error == pytest.approx(se)
    t = student_t_quantile(0.975, 4)
    assert comparison.interval == pytest.approx((statistics.mean(differences) - t * se,
                                                 statistics.mean(differences) + t * se))
    assert comparison.better == sum(d > 0.02 for d in differences) and comparison.better > 0
    assert comparison.worse == 0

    assert compare_main([str(runs["flawed"].parent), str(runs["perfect"].parent)]) == 0  # folders work too
    out = capsys.readouterr().out
    assert "over 5 paired object(s)" in out
    low = comparison.interval[0]
    assert ("better beyond noise" in out) == (low > 0)
    # Visibility lines: the counts of each run's summary.
    for label, summary in zip(("before", "after"), summaries):
        line = next(l for l in out.splitlines() if l.startswith(f"{label}: hidden"))
        assert f"{summary['hidden_correct']}/{summary['hidden_frames']}" in line
        assert f"visible frames reported absent {summary['visible_missed']}/{summary['visible_frames']}" in line
    # Each count's per-object difference: the mean of after - before over the objects, totals beside it.
    objects = [{(s["name"], o["obj_id"]): o for s in json.loads(runs[name].read_text())["sequences"]
                for o in s["objects"]} for name in ("flawed", "perfect")]
    for count, label in (("identity_switches", "identity switches"), ("return_found", "returns found (any mask)"),
                         ("hidden_correct", "hidden frames reported absent"),
                         ("visible_missed", "visible frames reported absent"),
                         ("visible_on_target", "visible frames on the target")):
        line = next(l for l in out.splitlines() if l.startswith(f"{label} per object: "))
        mean = statistics.mean(objects[1][k][count] - objects[0][k][count] for k in sorted(before))
        totals = [sum(o[count] for o in run.values()) for run in objects]
        assert line.startswith(f"{label} per object: difference {mean:+.3f}, 95 % interval [")
        assert line.endswith(f" ({totals[0]} -> {totals[1]})")
    # The flawed tracker never finds object 2 of each sequence: it gains most.
    most_better = next(l for l in out.splitlines() if l.startswith("most better:"))
    assert "a/2" in most_better and "b/2" in most_better
    assert "most worse:" not in out  # nothing got worse


def test_a_run_against_itself(runs):
    comparison = compare_runs(load_run(runs["flawed"]), load_run(runs["flawed"]))
    assert comparison.mean_difference == 0 and comparison.standard_error == 0
    assert comparison.interval == (0, 0) and comparison.better == comparison.worse == 0


def test_runs_over_different_objects_are_refused_unless_common(folder, runs, tmp_path, capsys):
    only_a = tmp_path / "davis_a"
    davis.write_sequence(only_a, "a", synthetic_sequence(), image_format="png")
    partial = evaluate(only_a, tmp_path / "partial", PerfectTracker)
    with pytest.raises(EvaluationInputError, match=r"2 object\(s\) only in .*flawed.*b/1, b/2"):
        compare_runs(load_run(runs["flawed"]), load_run(partial))
    comparison = compare_runs(load_run(runs["flawed"]), load_run(partial), common_only=True)
    assert [c.key for c in comparison.changes] == [("a", 1), ("a", 2), ("a", 3)] and comparison.dropped == 2
    assert compare_main([str(runs["flawed"]), str(partial), "--common"]) == 0
    out = capsys.readouterr().out
    assert "(2 object(s) of only one run left out)" in out
    assert "note: the runs read different sources" in out

    assert compare_main([str(runs["flawed"]), str(partial)]) == 2
    assert "the runs do not hold the same objects" in capsys.readouterr().err


def test_runs_scored_on_different_frames_are_refused(folder, runs, tmp_path):
    shorter = evaluate(folder, tmp_path / "short", PerfectTracker, "--max-frames", "6")
    with pytest.raises(EvaluationInputError, match=r"object a/1 is scored on 9 frames .* and on 4 .*--max-frames"):
        compare_runs(load_run(runs["flawed"]), load_run(shorter))


def test_results_without_visibility_counts(runs, tmp_path, capsys):
    # A results.json from before the visibility counts (same schema version: they were additions).
    data = json.loads(runs["perfect"].read_text())
    for sequence in data["sequences"]:
        for obj in sequence["objects"]:
            del obj["visible_frames"], obj["visible_missed"], obj["miss_rate"]
    older = tmp_path / "older.json"
    older.write_text(json.dumps(data))
    assert compare_main([str(runs["flawed"]), str(older)]) == 0
    out = capsys.readouterr().out
    assert "after: no visibility counts (a results.json from an older sam2-eval)" in out
    assert "before: hidden frames reported absent" in out


@pytest.mark.parametrize(("count", "words", "label"), [
    ("return_on_target", "on the target)", "returns found on the target"),
    ("visible_on_target", ", on the target", "visible frames on the target"),
])
def test_results_without_an_on_target_count(runs, tmp_path, capsys, count, words, label):
    """A results.json from before an on-target count: its frames are not said to be on the target
    (not read as 0 on the target), and no per-object difference of that count is printed."""
    data = json.loads(runs["perfect"].read_text())
    for sequence in data["sequences"]:
        for obj in sequence["objects"]:
            del obj[count]
    older = tmp_path / "older.json"
    older.write_text(json.dumps(data))
    assert compare_main([str(runs["flawed"]), str(older)]) == 0
    lines = capsys.readouterr().out.splitlines()
    before = next(l for l in lines if l.startswith("before: hidden"))
    after = next(l for l in lines if l.startswith("after: hidden"))
    assert words in before and words not in after
    assert not any(l.startswith(f"{label} per object") for l in lines)
    assert any(l.startswith("identity switches per object") for l in lines)


@pytest.mark.parametrize(("content", "message"), [
    (None, "results file not found"),
    ("not json {", "not readable as JSON"),
    (json.dumps({"schema_version": 2, "sequences": []}), "schema_version: 2"),
    (json.dumps([1, 2]), "not a sam2-eval results.json"),
    (json.dumps({"schema_version": 1}), "no 'sequences'"),
    (json.dumps({"schema_version": 1, "sequences": [{"name": "a", "objects": [{"obj_id": "x", "JF_mean": 0.5}]}]}),
     "malformed results"),
    (json.dumps({"schema_version": 1, "sequences": []}), "no scored object"),
])
def test_bad_files_exit_2_naming_the_problem(runs, tmp_path, capsys, content, message):
    bad = tmp_path / "bad.json"
    if content is not None:
        bad.write_text(content)
    assert compare_main([str(runs["flawed"]), str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sam2-eval-compare: error: ") and message in err and str(bad) in err


def test_visible_frames_one_run_reports_absent_and_where_the_other_was(runs, capsys):
    """Frame by frame: the flawed tracker never finds object 2, which the perfect one shows on the
    target on every such frame; the perfect one reports no visible frame absent."""
    flawed, perfect = (json.loads(runs[name].read_text()) for name in ("flawed", "perfect"))
    for data in (flawed, perfect):  # results.json keeps one outcome letter per scored frame
        for sequence in data["sequences"]:
            for obj in sequence["objects"]:
                assert len(obj["frame_outcomes"]) == len(obj["frames"])
                assert obj["frame_outcomes"].count("-") == obj["visible_missed"]
                assert obj["frame_outcomes"].count("T") == obj["visible_on_target"]
    missed = sum(o["visible_missed"] for s in flawed["sequences"] for o in s["objects"])
    assert missed > 0 and all(o["visible_missed"] == 0 for s in perfect["sequences"] for o in s["objects"])
    assert compare_main([str(runs["flawed"]), str(runs["perfect"])]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert (f"visible frames only before reports absent: {missed} "
            f"(after's mask there: on the target {missed}, on another object 0, elsewhere 0)") in lines
    assert ("visible frames only after reports absent: 0 "
            "(before's mask there: on the target 0, on another object 0, elsewhere 0)") in lines


def test_frame_outcomes_counted_against_each_other(runs, tmp_path, capsys):
    """Where the other run's mask was: on the target, on another labelled object (a switch) or
    elsewhere; a frame both runs report absent, or a hidden one, is in neither line."""
    data = json.loads(runs["perfect"].read_text())
    first = data["sequences"][0]["objects"][0]
    frames = len(first["frames"])
    before, after = dict(data), json.loads(json.dumps(data))
    pattern_before = ("TSE--h" * frames)[:frames]
    pattern_after = ("--T-Sx" * frames)[:frames]
    first["frame_outcomes"] = pattern_before
    after["sequences"][0]["objects"][0]["frame_outcomes"] = pattern_after
    paths = []
    for name, content in (("before", before), ("after", after)):
        paths.append(tmp_path / f"{name}.json")
        paths[-1].write_text(json.dumps(content))
    assert compare_main([str(p) for p in paths]) == 0
    lines = capsys.readouterr().out.splitlines()
    pairs = list(zip(pattern_before, pattern_after))
    only_after = {k: sum(1 for b, a in pairs if a == "-" and b == k) for k in "TSE"}
    only_before = {k: sum(1 for b, a in pairs if b == "-" and a == k) for k in "TSE"}
    assert sum(only_after.values()) > 0 and sum(only_before.values()) > 0
    assert (f"visible frames only after reports absent: {sum(only_after.values())} (before's mask there: on the "
            f"target {only_after['T']}, on another object {only_after['S']}, elsewhere {only_after['E']})") in lines
    assert (f"visible frames only before reports absent: {sum(only_before.values())} (after's mask there: on the "
            f"target {only_before['T']}, on another object {only_before['S']}, elsewhere {only_before['E']})") in lines


def test_results_without_frame_outcomes_print_no_absent_lines(runs, tmp_path, capsys):
    data = json.loads(runs["perfect"].read_text())
    for sequence in data["sequences"]:
        for obj in sequence["objects"]:
            del obj["frame_outcomes"]
    older = tmp_path / "older.json"
    older.write_text(json.dumps(data))
    assert compare_main([str(runs["flawed"]), str(older)]) == 0
    out = capsys.readouterr().out
    assert "reports absent:" not in out and "visible frames reported absent per object" in out


@pytest.mark.parametrize(("outcomes", "message"), [("TTQ", "string of the letters"), (7, "string of the letters"),
                                                   ("T", "1 frame_outcomes for")])
def test_malformed_frame_outcomes_are_named(runs, tmp_path, capsys, outcomes, message):
    data = json.loads(runs["perfect"].read_text())
    data["sequences"][0]["objects"][0]["frame_outcomes"] = outcomes
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    assert compare_main([str(runs["flawed"]), str(bad)]) == 2
    err = capsys.readouterr().err
    assert message in err and "object 1" in err


def test_frame_outcomes_are_counted_against_the_scored_frames_without_a_frames_list(runs, tmp_path, capsys):
    data = json.loads(runs["perfect"].read_text())
    obj = data["sequences"][0]["objects"][0]
    del obj["frames"]  # the length check must not lean on it
    obj["frame_outcomes"] = obj["frame_outcomes"][:-1]
    bad = tmp_path / "no_frames.json"
    bad.write_text(json.dumps(data))
    assert compare_main([str(runs["flawed"]), str(bad)]) == 2
    assert f"{len(obj['frame_outcomes'])} frame_outcomes for {obj['J']['num_frames']} scored frames" in \
        capsys.readouterr().err


def test_an_object_twice_in_one_file_is_refused(runs, tmp_path, capsys):
    data = json.loads(runs["perfect"].read_text())
    data["sequences"].append(data["sequences"][0])  # as a repeated --sequence wrote it
    twice = tmp_path / "twice.json"
    twice.write_text(json.dumps(data))
    assert compare_main([str(runs["flawed"]), str(twice)]) == 2
    name = data["sequences"][0]["name"]
    assert f"sequence {name}: object {data['sequences'][0]['objects'][0]['obj_id']} appears more than once" in \
        capsys.readouterr().err


def test_header_names_each_run_s_memory_policy(runs, tmp_path, capsys):
    # One file with the run's memory_policy field, one older --variant file naming it in its runner.
    paths = []
    for name, run in (("new", {"memory_policy": "official"}),
                      ("old", {"runner": "in-process sam2_model.StreamingTracker on cpu (float32), memory_policy "
                                         "robust,steady_size_ratio=2, image features shared by the variants"})):
        data = json.loads(runs["perfect"].read_text())
        data["run"].update(run)
        paths.append(tmp_path / f"{name}.json")
        paths[-1].write_text(json.dumps(data))
    assert compare_main([str(p) for p in paths]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert next(l for l in lines if l.startswith("before: ")).endswith("memory_policy official)")
    assert next(l for l in lines if l.startswith("after:  ")).endswith("memory_policy robust,steady_size_ratio=2)")
