"""tools/merge_results.py: sam2-eval runs joined for sam2-eval-compare, as chunks of one set or as
several sets pooled under labels (generated sets share sequence names). Real runs of the stub trackers
(test_eval_compare's), the tool run as a process."""

import json
import subprocess
import sys
from pathlib import Path

from sam2_ros.evaluation.compare import compare_runs, load_run

from eval_stubs import FlawedTracker
from test_eval_compare import evaluate, folder, per_object_jf, runs  # noqa: F401

TOOL = Path(__file__).resolve().parents[1] / "tools" / "merge_results.py"


def merge(out, *inputs):
    done = subprocess.run([sys.executable, str(TOOL), str(out), *map(str, inputs)], capture_output=True, text=True)
    return done.returncode, done.stdout + done.stderr


def test_sets_pooled_under_labels_compare_as_one(runs, tmp_path):
    """The same two runs pooled twice, as if they were two sets: every object appears under both
    labels with its own score, so the pooled comparison has twice the objects and the same mean."""
    pooled = {}
    for name in ("flawed", "perfect"):
        pooled[name] = tmp_path / f"{name}.json"
        code, said = merge(pooled[name], f"crowd={runs[name]}", f"fast={runs[name].parent}")
        assert code == 0 and "2 runs" in said
    single = per_object_jf(runs["flawed"])
    merged = per_object_jf(pooled["flawed"])
    assert merged == {(f"{label}/{name}", obj): jf for label in ("crowd", "fast") for (name, obj), jf in single.items()}
    once = compare_runs(load_run(runs["flawed"]), load_run(runs["perfect"]))
    twice = compare_runs(load_run(pooled["flawed"]), load_run(pooled["perfect"]))
    assert len(twice.changes) == 2 * len(once.changes)
    assert abs(twice.mean_difference - once.mean_difference) < 1e-12
    assert "summary" not in json.loads(pooled["flawed"].read_text())  # it described one input only


def test_chunks_of_one_study_join_and_runs_with_other_settings_are_refused(folder, runs, tmp_path):
    # Chunks over disjoint --sequence lists, as a study runs them: the same results as one run.
    chunks = [evaluate(folder, tmp_path / name, FlawedTracker, "--sequence", name) for name in ("a", "b")]
    code, said = merge(tmp_path / "joined.json", *chunks)
    assert code == 0, said
    assert per_object_jf(tmp_path / "joined.json") == per_object_jf(runs["flawed"])
    other = evaluate(folder, tmp_path / "b_th", FlawedTracker, "--sequence", "b", "--bound-th", "0.01")
    code, said = merge(tmp_path / "mixed.json", chunks[0], other)
    assert code == 2 and "run with other settings" in said and "bound_th 0.008 vs 0.01" in said
    assert not (tmp_path / "mixed.json").exists()


def test_source_may_differ_only_between_labelled_sets(runs, tmp_path):
    data = json.loads(runs["flawed"].read_text())
    data["run"]["source"] = "another_set"
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text(json.dumps(data))
    code, said = merge(tmp_path / "pooled.json", f"crowd={runs['flawed']}", f"fast={elsewhere}")
    assert code == 0, said
    code, said = merge(tmp_path / "chunks.json", runs["flawed"], f"fast={elsewhere}")
    assert code == 2 and "source" in said


def test_run_wide_blocks_are_dropped(runs, tmp_path):
    data = json.loads(runs["flawed"].read_text())
    data["discovery"] = {"found": 1, "missed": 0, "spurious": 0, "tracks": 1}
    data["live"] = {"frames_published": 3}
    with_blocks = tmp_path / "with_blocks.json"
    with_blocks.write_text(json.dumps(data))
    code, said = merge(tmp_path / "out.json", f"crowd={with_blocks}", f"fast={runs['flawed']}")
    assert code == 0, said
    merged = json.loads((tmp_path / "out.json").read_text())
    assert not {"summary", "discovery", "live"} & merged.keys()
    assert merged["schema_version"] == data["schema_version"]


def test_unusable_inputs_and_outputs_exit_2_with_one_line(runs, tmp_path):
    data = json.loads(runs["flawed"].read_text())
    no_version = dict(data)
    del no_version["schema_version"]
    no_name = json.loads(json.dumps(data))
    del no_name["sequences"][1]["name"]
    cases = {"no_version.json": (no_version, "no schema_version"), "no_name.json": (no_name, "sequence 2 has no name")}
    for file_name, (content, message) in cases.items():
        (tmp_path / file_name).write_text(json.dumps(content))
        code, said = merge(tmp_path / "out.json", tmp_path / file_name)
        assert code == 2 and message in said and file_name in said and "Traceback" not in said
    code, said = merge(tmp_path / "no_folder" / "out.json", runs["flawed"])
    assert code == 2 and "no folder" in said and "Traceback" not in said
    assert not (tmp_path / "out.json").exists()


def test_chunks_join_without_labels_and_clashes_are_named(runs, tmp_path):
    code, said = merge(tmp_path / "one.json", runs["flawed"].parent)
    assert code == 0 and per_object_jf(tmp_path / "one.json") == per_object_jf(runs["flawed"])
    code, said = merge(tmp_path / "twice.json", runs["flawed"], runs["flawed"])
    assert code == 2 and "is in more than one input" in said and "LABEL=PATH" in said
    assert not (tmp_path / "twice.json").exists()
    code, said = merge(tmp_path / "missing.json", f"crowd={tmp_path / 'nowhere.json'}")
    assert code == 2 and "cannot read" in said and "nowhere.json" in said
    (tmp_path / "garbage.json").write_text("{not json")
    code, said = merge(tmp_path / "bad.json", tmp_path / "garbage.json")
    assert code == 2 and "cannot read" in said
    (tmp_path / "list.json").write_text("[1, 2]")
    code, said = merge(tmp_path / "bad.json", f"crowd={tmp_path / 'list.json'}")
    assert code == 2 and "not a sam2-eval results.json" in said
