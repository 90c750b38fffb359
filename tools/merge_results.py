"""Join the results.json of several sam2-eval runs into one, for sam2-eval-compare: a study run in
chunks over disjoint sequences (so that partial results survive an interruption), or several sets
pooled into one paired comparison.

    python tools/merge_results.py OUT.json study/dev_c0/official study/dev_c1/official ...
    python tools/merge_results.py pooled_official.json crowd48=r/crowd48_official.json fast48=r/fast48_official.json

An input given as LABEL=PATH has its sequences renamed LABEL/NAME: generated sets share sequence
names (gen_0000, ...), and sam2-eval-compare pairs objects by sequence and id, so sets are pooled
under labels (the same labels on both sides). Only the per-sequence entries are joined; the run-wide
parts of the first input (summary, discovery totals, live counts) are dropped, since they no longer
describe the whole.

Every input must be a results.json of one schema version and of the same settings: their `run`
blocks must be equal (model, checkpoint, memory policy, prompt, bound_th, ...), so that runs made
with different settings are not joined into one. Chunks of one study differ only in their
sequences, which the `run` block does not name; pooled sets differ in their `source`, which is
left out of the comparison when every input is labelled.
"""

import json
import sys
from pathlib import Path


class MergeError(Exception):
    """An input or the output that cannot be used: the message names it and the problem."""


def _labelled(argument):
    """``LABEL=PATH`` -> (LABEL, PATH); a plain path (or one whose '=' is part of a folder name that
    exists) has no label."""
    label, equals, path = argument.partition("=")
    if not equals or Path(argument).exists() or not label or "/" in label:
        return None, Path(argument)
    return label, Path(path)


def _read(path):
    """The results.json at path (or in the folder path), checked as far as merging needs."""
    try:
        data = json.loads((path / "results.json" if path.is_dir() else path).read_text())
    except (OSError, ValueError) as error:
        raise MergeError(f"cannot read {path}: {error}") from None
    if not isinstance(data, dict) or not isinstance(data.get("sequences"), list):
        raise MergeError(f"{path} is not a sam2-eval results.json (no list of sequences)")
    if "schema_version" not in data:
        raise MergeError(f"{path} is not a sam2-eval results.json (no schema_version)")
    if not isinstance(data.get("run"), dict):
        raise MergeError(f"{path} is not a sam2-eval results.json (no run block)")
    for position, sequence in enumerate(data["sequences"]):
        if not isinstance(sequence, dict) or not isinstance(sequence.get("name"), str):
            raise MergeError(f"{path}: sequence {position + 1} has no name")
    return data


def _settings(data, ignore_source):
    run = dict(data["run"])
    if ignore_source:
        run.pop("source", None)
    return run


def merge(inputs):
    """The merged results of (label, path) inputs."""
    all_labelled = all(label is not None for label, _ in inputs)
    merged, first_path, names = None, None, set()
    for label, path in inputs:
        data = _read(path)
        if merged is None:
            merged = {k: v for k, v in data.items() if k not in ("summary", "discovery", "live")}
            merged["sequences"] = []
            first_path = path
        elif data["schema_version"] != merged["schema_version"]:
            raise MergeError(f"{path} has schema_version {data['schema_version']!r}, {first_path} "
                             f"{merged['schema_version']!r}")
        else:
            mine, theirs = _settings(data, all_labelled), _settings(merged, all_labelled)
            differing = sorted(k for k in mine.keys() | theirs.keys() if mine.get(k) != theirs.get(k))
            if differing:
                shown = "; ".join(f"{k} {theirs.get(k)!r} vs {mine.get(k)!r}" for k in differing)
                raise MergeError(f"{path} was run with other settings than {first_path}: {shown}")
        for sequence in data["sequences"]:
            if label is not None:
                sequence = dict(sequence, name=f"{label}/{sequence['name']}")
            if sequence["name"] in names:
                raise MergeError(f"sequence {sequence['name']} is in more than one input "
                                 "(pool sets under LABEL=PATH)")
            names.add(sequence["name"])
            merged["sequences"].append(sequence)
    return merged, len(names)


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    out, inputs = Path(argv[1]), [_labelled(argument) for argument in argv[2:]]
    try:
        if not out.parent.is_dir():
            raise MergeError(f"cannot write {out}: no folder {out.parent}")
        merged, count = merge(inputs)
        try:
            out.write_text(json.dumps(merged))
        except OSError as error:
            raise MergeError(f"cannot write {out}: {error}") from None
    except MergeError as error:
        print(f"merge_results: {error}", file=sys.stderr)
        return 2
    print(f"{out}: {count} sequences from {len(inputs)} runs")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
