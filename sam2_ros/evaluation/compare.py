"""``sam2-eval-compare``: is one evaluation run better than another, or is the difference noise?

    sam2-eval-compare eval_before/results.json eval_after/results.json

Two ``sam2-eval`` runs over the same sequences are compared object by object: each object's
J&F difference (after - before), their mean (which equals the difference of the two runs'
J&F), its standard error and a 95 % Student-t interval, how many objects got better or worse,
the objects that changed most, the visibility counts of both runs and, frame by frame, where each
run's mask was on the visible frames the other reports absent. Pairing by object
matters: objects differ far more from each other than two checkpoints differ on one object,
so two runs' J&F alone cannot tell a real gain from a lucky draw of sequences.
"""

from __future__ import annotations

import argparse
import json
import math
import re
from collections import Counter
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from .errors import EvaluationInputError, run_command
from .report import RESULTS_SCHEMA_VERSION, identity_phrase, predicted_box_phrase, visibility_phrases
from .scoring import FrameOutcome, VisibilityCounts

PROG = "sam2-eval-compare"
ObjectKey = Tuple[str, int]  # (sequence name, object id)
VISIBILITY_FIELDS = tuple(f.name for f in fields(VisibilityCounts))  # the counts; rates derive from them
# Counts added after the first visibility counts: missing in older results.json files, read as 0.
LATER_FIELDS = ("predicted_frames", "identity_switches", "return_on_target", "visible_on_target",
                "predicted_box_frames", "predicted_box_hits")


@dataclass(frozen=True)
class ObjectScore:
    jf: float
    scored_frames: int
    visibility: Optional[VisibilityCounts]  # None in results.json files older than the counts
    outcomes: Optional[str] = None  # a FrameOutcome letter per scored frame; None in older files


@dataclass(frozen=True)
class EvaluationRun:
    """The per-object scores of one results.json (objects without a scored frame left out)."""

    path: Path
    description: str
    source: str  # the bag or folder evaluated
    objects: Dict[ObjectKey, ObjectScore]
    missing_counts: frozenset = frozenset()  # LATER_FIELDS an older results.json lacks (read as 0)

    def visibility(self, keys: List[ObjectKey]) -> Optional[VisibilityCounts]:
        counts = [self.objects[k].visibility for k in keys]
        return None if any(c is None for c in counts) else VisibilityCounts.total(counts)


@dataclass(frozen=True)
class ObjectChange:
    key: ObjectKey
    before: float
    after: float

    @property
    def difference(self) -> float:
        return self.after - self.before


@dataclass(frozen=True)
class Comparison:
    before: EvaluationRun
    after: EvaluationRun
    changes: List[ObjectChange]      # the objects of both runs, in sorted key order
    dropped: int                     # objects of only one run (with --common)
    mean_difference: float
    standard_error: float            # 0 with one object
    interval: Tuple[float, float]    # 95 %, Student t with n - 1 degrees of freedom
    tolerance: float

    @property
    def better(self) -> int:
        return sum(c.difference > self.tolerance for c in self.changes)

    @property
    def worse(self) -> int:
        return sum(c.difference < -self.tolerance for c in self.changes)


def _field(record: dict, name: str, where: str):
    if name not in record:
        raise EvaluationInputError(f"{where}: no {name!r}: not a sam2-eval results.json")
    return record[name]


def load_run(path: Path) -> EvaluationRun:
    """Read a sam2-eval results.json (or the --out folder holding it); a missing, unreadable or
    foreign file is an input error."""
    if path.is_dir():
        path = path / "results.json"
    if not path.is_file():
        raise EvaluationInputError(f"results file not found: {path}")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EvaluationInputError(f"{path}: not readable as JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("schema_version") != RESULTS_SCHEMA_VERSION:
        found = data.get("schema_version") if isinstance(data, dict) else None
        raise EvaluationInputError(
            f"{path}: not a sam2-eval results.json of schema version {RESULTS_SCHEMA_VERSION} "
            f"(schema_version: {found!r})")
    objects: Dict[ObjectKey, ObjectScore] = {}
    seen: set = set()
    missing: set = set()
    try:
        for sequence in _field(data, "sequences", str(path)):
            name = _field(sequence, "name", str(path))
            for obj in _field(sequence, "objects", f"{path}, sequence {name}"):
                where = f"{path}, sequence {name}"
                key = (str(name), int(_field(obj, "obj_id", where)))
                # A repeated key would silently replace the first object's scores in the pairing.
                if key in seen:
                    raise EvaluationInputError(f"{where}: object {key[1]} appears more than once "
                                               "(a sequence scored twice, or a merge of overlapping runs)")
                seen.add(key)
                jf = _field(obj, "JF_mean", where)
                if jf is None:  # no scored frame: nothing to compare
                    continue
                counts = (VisibilityCounts(**{f: int(obj[f]) for f in VISIBILITY_FIELDS if f in obj})
                          if all(f in obj for f in VISIBILITY_FIELDS if f not in LATER_FIELDS) else None)
                missing.update(f for f in LATER_FIELDS if f not in obj)
                scored_frames = int((_field(obj, "J", where) or {}).get("num_frames", 0))
                objects[key] = ObjectScore(float(jf), scored_frames, counts,
                                           _frame_outcomes(obj, scored_frames, f"{where}, object {key[1]}"))
    except EvaluationInputError:
        raise
    except (TypeError, ValueError, AttributeError) as exc:
        raise EvaluationInputError(f"{path}: malformed results ({exc})") from None
    if not objects:
        raise EvaluationInputError(f"{path}: no scored object")
    run = data.get("run") or {}
    description = ", ".join(f"{k} {run[k]}" for k in ("model", "checkpoint", "prompt") if run.get(k))
    policy = _memory_policy(run)
    if policy:  # two --variant runs differ in nothing else
        description += (", " if description else "") + f"memory_policy {policy}"
    return EvaluationRun(path, description or str(run.get("runner", "")), str(run.get("source", "")), objects,
                         frozenset(missing))


def _memory_policy(run: dict) -> Optional[str]:
    """The run's memory policy: its ``memory_policy`` field, or in files older than that field the
    one a --variant runner's description names ("..., memory_policy robust, ..."); None if neither."""
    if run.get("memory_policy"):
        return str(run["memory_policy"])
    # A policy may carry settings after commas ("robust,steady_size_ratio=2"), never a space.
    found = re.search(r"memory_policy (\S+?)(?:,\s|$)", str(run.get("runner", "")))
    return found.group(1) if found else None


OUTCOME_LETTERS = frozenset(outcome.value for outcome in FrameOutcome)


def _frame_outcomes(obj: dict, scored_frames: int, where: str) -> Optional[str]:
    """An object's ``frame_outcomes`` (None in results.json files older than them), checked: one
    known letter per scored frame (``scored_frames``, the count its J statistics were taken over)."""
    outcomes = obj.get("frame_outcomes")
    if outcomes is None:
        return None
    if not isinstance(outcomes, str) or not set(outcomes) <= OUTCOME_LETTERS:
        raise EvaluationInputError(f"{where}: frame_outcomes must be a string of the letters "
                                   f"{''.join(sorted(OUTCOME_LETTERS))}, got {outcomes!r:.60}")
    if len(outcomes) != scored_frames:
        raise EvaluationInputError(f"{where}: {len(outcomes)} frame_outcomes for {scored_frames} scored frames")
    return outcomes


def _student_t_density(t: float, dof: int) -> float:
    log_norm = math.lgamma((dof + 1) / 2) - math.lgamma(dof / 2) - 0.5 * math.log(dof * math.pi)
    return math.exp(log_norm - (dof + 1) / 2 * math.log1p(t * t / dof))


def student_t_quantile(probability: float, dof: int) -> float:
    """The ``probability`` quantile (> 0.5) of Student's t with ``dof`` degrees of freedom:
    bisection on the CDF, integrated with Simpson's rule (no SciPy needed for one number)."""
    if not 0.5 < probability < 1 or dof < 1:
        raise ValueError("probability must lie in (0.5, 1) and dof be >= 1")

    def upper_half_mass(t: float, steps: int = 2000) -> float:  # P(0 < T < t)
        h = t / steps
        total = _student_t_density(0.0, dof) + _student_t_density(t, dof)
        total += sum((4 if i % 2 else 2) * _student_t_density(i * h, dof) for i in range(1, steps))
        return total * h / 3

    target, low, high = probability - 0.5, 0.0, 1.0
    while upper_half_mass(high) < target:  # heavy tails at dof 1: the quantile can be large
        low, high = high, high * 2
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (mid, high) if upper_half_mass(mid) < target else (low, mid)
    return (low + high) / 2


def compare_runs(before: EvaluationRun, after: EvaluationRun, tolerance: float = 0.02,
                 common_only: bool = False) -> Comparison:
    """Pair the two runs' objects; both must hold the same objects (or ``common_only``), each
    scored on as many frames in both (else they did not see the same data)."""
    only_before = sorted(before.objects.keys() - after.objects.keys())
    only_after = sorted(after.objects.keys() - before.objects.keys())
    if (only_before or only_after) and not common_only:
        def listing(keys: List[ObjectKey]) -> str:
            shown = ", ".join(f"{name}/{obj_id}" for name, obj_id in keys[:5])
            return shown + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")

        parts = [f"{len(keys)} object(s) only in {run.path}: {listing(keys)}"
                 for keys, run in ((only_before, before), (only_after, after)) if keys]
        raise EvaluationInputError("the runs do not hold the same objects: " + "; ".join(parts)
                                   + " (--common compares the objects both hold)")
    keys = sorted(before.objects.keys() & after.objects.keys())
    if not keys:
        raise EvaluationInputError(f"{before.path} and {after.path} have no object in common")
    for key in keys:
        frames_before, frames_after = before.objects[key].scored_frames, after.objects[key].scored_frames
        if frames_before != frames_after:
            raise EvaluationInputError(
                f"object {key[0]}/{key[1]} is scored on {frames_before} frames in {before.path} and on "
                f"{frames_after} in {after.path}: not the same data (--max-frames?)")
    changes = [ObjectChange(k, before.objects[k].jf, after.objects[k].jf) for k in keys]
    mean, standard_error, interval = paired_interval([c.difference for c in changes])
    return Comparison(before, after, changes, len(only_before) + len(only_after), mean, standard_error,
                      interval, tolerance)


def paired_interval(differences: List[float]) -> Tuple[float, float, Tuple[float, float]]:
    """Mean of paired differences, its standard error and 95 % Student-t interval (infinite with one)."""
    n = len(differences)
    mean = sum(differences) / n
    if n > 1:
        variance = sum((d - mean) ** 2 for d in differences) / (n - 1)
        standard_error = math.sqrt(variance / n)
        half_width = student_t_quantile(0.975, n - 1) * standard_error
    else:
        standard_error, half_width = 0.0, math.inf
    return mean, standard_error, (mean - half_width, mean + half_width)


# The visibility counts given a paired interval per object (field of VisibilityCounts, label): the
# issue-25 goals (switches down, returns found up, hidden objects still reported absent) and the cost
# of refusing masks (visible frames reported absent).
PER_OBJECT_COUNTS = (("identity_switches", "identity switches"),
                     ("return_on_target", "returns found on the target"),
                     ("return_found", "returns found (any mask)"),
                     ("hidden_correct", "hidden frames reported absent"),
                     ("visible_missed", "visible frames reported absent"),
                     ("visible_on_target", "visible frames on the target"),
                     ("predicted_box_hits", "predicted boxes on the object"))
# Counts of frames that only some trackers have (count -> the frames it is counted among): their line
# is left out where neither run has such a frame, so two official runs (no predicted boxes) print as before.
COUNTED_AMONG = {"predicted_box_hits": "predicted_box_frames"}


def count_difference_line(comparison: "Comparison", count: str, label: str) -> Optional[str]:
    """One visibility count per object (a ``VisibilityCounts`` field), after - before, with its
    paired 95 % interval; None where either run lacks the count, or where neither run has a frame
    of those it is counted among (``COUNTED_AMONG``)."""
    if count in comparison.before.missing_counts or count in comparison.after.missing_counts:
        return None
    keys = [change.key for change in comparison.changes]
    counts = [(comparison.before.objects[k].visibility, comparison.after.objects[k].visibility) for k in keys]
    if any(b is None or a is None for b, a in counts):
        return None
    among = COUNTED_AMONG.get(count)
    if among is not None and not any(getattr(v, among) for pair in counts for v in pair):
        return None
    before = [getattr(b, count) for b, _ in counts]
    after = [getattr(a, count) for _, a in counts]
    mean, _, (low, high) = paired_interval([a - b for b, a in zip(before, after)])
    return (f"{label} per object: difference {mean:+.3f}, 95 % interval [{low:+.3f}, {high:+.3f}]"
            f" ({sum(before)} -> {sum(after)})")


# Where a mask shown on a visible frame lay (FrameOutcome), as the absent-frame lines name it.
SHOWN_VISIBLE = ((FrameOutcome.ON_TARGET, "on the target"), (FrameOutcome.SWITCHED, "on another object"),
                 (FrameOutcome.ELSEWHERE, "elsewhere"))


def reported_absent_lines(comparison: "Comparison") -> List[str]:
    """Frame by frame: the visible frames only one run reports absent, and where the other run's
    mask was on them. A policy that refuses wrong masks reports more visible frames absent; these
    lines tell a refused mask that was on another object from a lost object. No lines where either
    run lacks the outcomes (results.json files older than them)."""
    keys = [change.key for change in comparison.changes]
    pairs = [(comparison.before.objects[k].outcomes, comparison.after.objects[k].outcomes) for k in keys]
    if any(before is None or after is None for before, after in pairs):
        return []
    lines = []
    for absent_run, shown_run, side in (("after", "before", 1), ("before", "after", 0)):
        shown = Counter()
        for pair in pairs:
            shown.update(other for mine, other in zip(pair[side], pair[1 - side])
                         if mine == FrameOutcome.MISSED.value and other != FrameOutcome.MISSED.value)
        where = ", ".join(f"{words} {shown[outcome.value]}" for outcome, words in SHOWN_VISIBLE)
        total = sum(shown[outcome.value] for outcome, _ in SHOWN_VISIBLE)
        lines.append(f"visible frames only {absent_run} reports absent: {total} "
                     f"({shown_run}'s mask there: {where})")
    return lines


def format_comparison(comparison: Comparison, largest: int = 3) -> str:
    c = comparison
    n = len(c.changes)
    keys = [change.key for change in c.changes]
    jf_before = sum(ch.before for ch in c.changes) / n
    jf_after = sum(ch.after for ch in c.changes) / n
    low, high = c.interval
    if n < 2:
        verdict = "one object: no interval"
    elif low > 0:
        verdict = "better beyond noise (95 % interval above 0)"
    elif high < 0:
        verdict = "worse beyond noise (95 % interval below 0)"
    else:
        verdict = "not distinguishable from noise (95 % interval contains 0)"
    lines = [
        f"before: {c.before.path}" + (f" ({c.before.description})" if c.before.description else ""),
        f"after:  {c.after.path}" + (f" ({c.after.description})" if c.after.description else ""),
        f"J&F {jf_before:.3f} -> {jf_after:.3f} over {n} paired object(s)"
        + (f" ({c.dropped} object(s) of only one run left out)" if c.dropped else ""),
        f"difference {c.mean_difference:+.4f}, standard error {c.standard_error:.4f}, "
        f"95 % interval [{low:+.4f}, {high:+.4f}]: {verdict}",
        f"objects better / worse by more than {c.tolerance:g}: {c.better} / {c.worse} "
        f"(unchanged {n - c.better - c.worse})",
    ]
    if c.before.source != c.after.source:
        # Allowed (a bag and the DAVIS folder it was made from hold the same data), but sequence
        # names alone do not prove that two sources hold the same videos.
        lines.append(f"note: the runs read different sources ({c.before.source} and {c.after.source}); "
                     "objects are paired by sequence name and object id")
    for label, run in (("before", c.before), ("after", c.after)):
        v = run.visibility(keys)
        if v is None:
            lines.append(f"{label}: no visibility counts (a results.json from an older sam2-eval)")
            continue
        box = predicted_box_phrase(v)  # None without boxes, also in files older than the count
        phrases = visibility_phrases(v, run.missing_counts) + ((box,) if box else ()) + (identity_phrase(v),)
        lines.append(f"{label}: " + ", ".join(phrases))
    for count, count_label in PER_OBJECT_COUNTS:
        line = count_difference_line(c, count, count_label)
        if line is not None:
            lines.append(line)
    lines.extend(reported_absent_lines(c))
    ordered = sorted(c.changes, key=lambda ch: (ch.difference, ch.key))
    worse = [ch for ch in ordered[:largest] if ch.difference < 0]
    better = [ch for ch in ordered[::-1][:largest] if ch.difference > 0]
    for label, picked in (("most worse", worse), ("most better", better)):
        if picked:
            lines.append(f"{label}: " + ", ".join(f"{ch.key[0]}/{ch.key[1]} {ch.before:.3f} -> {ch.after:.3f}"
                                                  for ch in picked))
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Compare two sam2-eval runs (results.json) object by object: the J&F difference, "
                    "its standard error and 95 % interval, objects better and worse, visibility counts.",
        epilog="exit status: 0 done, 2 bad input")
    parser.add_argument("before", type=Path, help="results.json (or its folder) of the reference run")
    parser.add_argument("after", type=Path, help="results.json (or its folder) of the run to judge")
    parser.add_argument("--tolerance", type=float, default=0.02,
                        help="J&F change an object needs to count as better or worse (default: %(default)s)")
    parser.add_argument("--common", action="store_true",
                        help="compare the objects both runs hold instead of refusing runs that differ")
    return parser


def main(argv: List[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.tolerance < 0:
        parser.error("--tolerance must be >= 0")

    def work() -> int:
        comparison = compare_runs(load_run(args.before), load_run(args.after), args.tolerance, args.common)
        print(format_comparison(comparison))
        return 0

    return run_command(PROG, work, "nothing compared")


if __name__ == "__main__":
    raise SystemExit(main())
