"""tools/merge_results.py: sam2-eval runs joined for sam2-eval-compare, as chunks of one set or as
several sets pooled under labels (generated sets share sequence names). Real runs of the stub trackers
(test_eval_compare's), the tool run as a process."""

import json
import subprocess
import sys
from pathlib import Path

from sam2_ros.evaluation.compare import compare_runs, load_run

from test_eval_compare import folder, per_object_jf, runs  # noqa: F401

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


def test_chunks_join_without_labels_and_clashes_are_named(runs, tmp_path):
    code, said = merge(tmp_path / "one.json", runs["flawed"].parent)
    assert code == 0 and per_object_jf(tmp_path / "one.json") == per_object_jf(runs["flawed"])
    code, said = merge(tmp_path / "twice.json", runs["flawed"], runs["perfect"])
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
