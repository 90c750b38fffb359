"""Join the results.json of several sam2-eval runs over disjoint sequences into one, for
sam2-eval-compare (a study run in chunks, so that partial results survive an interruption).

    python tools/merge_results.py OUT.json study/dev_c0/official study/dev_c1/official ...

Only the per-sequence entries are joined (sam2-eval-compare pairs objects by sequence and id);
the run-wide summary of the first input is dropped, since it no longer describes the whole.
"""

import json
import sys
from pathlib import Path


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    out, inputs = Path(argv[1]), [Path(p) for p in argv[2:]]
    merged, names = None, set()
    for path in inputs:
        data = json.loads((path / "results.json" if path.is_dir() else path).read_text())
        if merged is None:
            merged = {k: v for k, v in data.items() if k != "summary"}
            merged["sequences"] = []
        for sequence in data["sequences"]:
            if sequence["name"] in names:
                print(f"sequence {sequence['name']} is in more than one input", file=sys.stderr)
                return 2
            names.add(sequence["name"])
            merged["sequences"].append(sequence)
    out.write_text(json.dumps(merged))
    print(f"{out}: {len(names)} sequences from {len(inputs)} runs")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
