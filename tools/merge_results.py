"""Join the results.json of several sam2-eval runs into one, for sam2-eval-compare: a study run in
chunks over disjoint sequences (so that partial results survive an interruption), or several sets
pooled into one paired comparison.

    python tools/merge_results.py OUT.json study/dev_c0/official study/dev_c1/official ...
    python tools/merge_results.py pooled_official.json crowd48=r/crowd48_official.json fast48=r/fast48_official.json

An input given as LABEL=PATH has its sequences renamed LABEL/NAME: generated sets share sequence
names (gen_0000, ...), and sam2-eval-compare pairs objects by sequence and id, so sets are pooled
under labels (the same labels on both sides). Only the per-sequence entries are joined; the run-wide
summary of the first input is dropped, since it no longer describes the whole.
"""

import json
import sys
from pathlib import Path


def _labelled(argument):
    """``LABEL=PATH`` -> (LABEL, PATH); a plain path (or one whose '=' is part of a folder name that
    exists) has no label."""
    label, equals, path = argument.partition("=")
    if not equals or Path(argument).exists() or not label or "/" in label:
        return None, Path(argument)
    return label, Path(path)


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    out, inputs = Path(argv[1]), [_labelled(argument) for argument in argv[2:]]
    merged, names = None, set()
    for label, path in inputs:
        try:
            data = json.loads((path / "results.json" if path.is_dir() else path).read_text())
        except (OSError, ValueError) as error:
            print(f"cannot read {path}: {error}", file=sys.stderr)
            return 2
        if not isinstance(data, dict) or not isinstance(data.get("sequences"), list):
            print(f"{path} is not a sam2-eval results.json (no list of sequences)", file=sys.stderr)
            return 2
        if merged is None:
            merged = {k: v for k, v in data.items() if k != "summary"}
            merged["sequences"] = []
        for sequence in data["sequences"]:
            if label is not None:
                sequence = dict(sequence, name=f"{label}/{sequence['name']}")
            if sequence["name"] in names:
                print(f"sequence {sequence['name']} is in more than one input (pool sets under LABEL=PATH)",
                      file=sys.stderr)
                return 2
            names.add(sequence["name"])
            merged["sequences"].append(sequence)
    out.write_text(json.dumps(merged))
    print(f"{out}: {len(names)} sequences from {len(inputs)} runs")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
