"""What the mask looks like where an identity switch starts (issue 25, round 8 diagnosis).

    python tools/switch_onsets.py --davis /work/runs_robust/dev200 --first 0 --count 40 --policy robust

Tracks each sequence with one memory policy (mask prompts on each object's first ground-truth
frame, as ``sam2-eval``), keeps per object and frame the model's own output before the policy
acts (the chosen mask, the decoder's candidates, the object score), and at each *switch onset*
(a scored frame whose output is an identity switch, ``scoring.identity_switched``, after one
that was not) counts:

* whether the object's mask was empty on the frame before (a re-appearance onto another object)
  or not (the mask slid or jumped while the object was called visible);
* the connected components of the switched output and of the one before, and whether one of the
  switched output's components lies mostly on the target (so that dropping the others would
  have kept the object);
* whether any of the decoder's candidates on the switched frame was not switched (covers the
  target more than the other object), and whether the chosen one was the one of highest IoU;
* the object-score logit at the onset and on the frame before.
"""

from __future__ import annotations

import argparse
import collections
import json
from pathlib import Path

import numpy as np
import torch

import sam2_model
from sam2_model.robust_options import MemoryPolicyError, parse_memory_policy
from sam2_model.transforms import resize_logits
from sam2_ros.evaluation.davis import list_sequences, read_sequence
from sam2_ros.evaluation.prompts import PromptKind, prompts_for_new_objects
from sam2_ros.evaluation.scoring import identity_switched


def components(mask: np.ndarray) -> np.ndarray:
    """4-connected component labels of a bool mask (0: background), by label propagation."""
    h, w = mask.shape
    labels = np.where(mask, np.arange(1, h * w + 1).reshape(h, w), 0)
    big = h * w + 1
    while True:
        padded = np.pad(np.where(mask, labels, big), 1, constant_values=big)
        smallest = np.minimum.reduce([padded[1:-1, 1:-1], padded[:-2, 1:-1], padded[2:, 1:-1],
                                      padded[1:-1, :-2], padded[1:-1, 2:]])
        updated = np.where(mask, smallest, 0)
        if np.array_equal(updated, labels):
            return labels
        labels = updated


def owner(mask: np.ndarray, labels: np.ndarray) -> int:
    """The ground-truth id covering most of ``mask`` (0: background or empty)."""
    covered = labels[mask]
    covered = covered[covered != 0]
    if covered.size == 0:
        return 0
    ids, counts = np.unique(covered, return_counts=True)
    return int(ids[counts.argmax()])


def probed_tracking(model, policy: str, sequence, probe):
    """Tracks ``sequence`` under ``policy`` with mask prompts on each object's first ground-truth
    frame (as ``sam2-eval``); ``probe(tracker, states, prediction)`` sees each frame's batched
    prediction before the policy acts and returns a dict by object id. Yields (frame, tracking
    result, that dict) per frame, before the frame's prompts are added."""
    tracker = robust_tracker(model, policy)
    probed = {}
    original = tracker._apply_robust_policy

    def recording(step, prediction):
        probed.update(probe(tracker, step.states, prediction))
        return original(step, prediction)

    tracker._apply_robust_policy = recording
    prompted: set = set()
    for frame in sequence:
        probed.clear()
        result = tracker.track(frame.image)
        yield frame, result, dict(probed)
        if frame.gt_labels is not None:
            for prompt in prompts_for_new_objects(frame.gt_labels, prompted, PromptKind.MASK, sequence.void_label):
                prompted.add(prompt.obj_id)
                tracker.add_prompt(prompt.obj_id, **prompt.tracker_kwargs())


def robust_policy(text: str) -> str:
    """``--policy``'s type: a robust memory policy, as ``parse_memory_policy`` reads it."""
    try:
        options = parse_memory_policy(text)
    except MemoryPolicyError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    if options is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} is the official policy: these studies record the model's output where a robust "
            "policy acts (the tracker's _apply_robust_policy), which the official policy never calls")
    return text


def robust_tracker(model, policy: str) -> sam2_model.StreamingTracker:
    """A tracker under ``policy``, refused unless robust: the studies patch _apply_robust_policy,
    and under the official policy they would see nothing and print empty results."""
    tracker = sam2_model.StreamingTracker(model, memory_policy=policy)
    if tracker._robust is None:
        raise ValueError(f"memory policy {policy!r} is not robust: nothing to record")
    return tracker


def _model_output(tracker, states, prediction):
    return {state.obj_id: (prediction.candidate_logits[row].clone(), prediction.candidate_ious[row].clone(),
                           float(prediction.object_score_logits[row]), float(prediction.iou_scores[row]))
            for row, state in enumerate(states)}


def track_sequence(model, policy: str, sequence):
    """Per frame: the ground truth, the output masks by object, and the model's raw output by object."""
    return [(frame.gt_labels, {i: m.numpy() for i, m in zip(result.obj_ids, result.masks)}, model_raw, frame.size)
            for frame, result, model_raw in probed_tracking(model, policy, sequence, _model_output)]


def onsets(frames, void_label):
    """Each switch onset's numbers."""
    found = []
    previous = {}  # obj_id -> (switched, mask, object score)
    for t, (labels, masks, model_raw, size) in enumerate(frames):
        if labels is None:
            continue
        for obj_id, mask in masks.items():
            if obj_id not in model_raw:
                continue  # prompted on this frame
            switched = identity_switched(mask, labels, obj_id, void_label)
            before = previous.get(obj_id)
            candidates, ious, score, _ = model_raw[obj_id]
            if switched and before is not None and not before[0]:
                other = owner(mask & (labels != obj_id), labels)
                comps = components(mask)
                n = int(comps.max() and len(np.unique(comps[comps > 0])))
                on_target = any(owner(comps == c, labels) == obj_id for c in np.unique(comps[comps > 0]))
                full = resize_logits(candidates[:, None], tuple(size))[:, 0].numpy() > 0
                candidate_ok = [bool(c.any()) and not identity_switched(c, labels, obj_id, void_label) for c in full]
                prev_mask = before[1]
                prev_comps = components(prev_mask) if prev_mask.any() else None
                found.append({
                    "frame": t, "obj_id": obj_id, "other": other,
                    "target_visible": bool((labels == obj_id).any()),
                    "previous_empty": not prev_mask.any(),
                    "previous_components": 0 if prev_comps is None else len(np.unique(prev_comps[prev_comps > 0])),
                    "previous_touches_other": bool((prev_mask & (labels == other)).any()),
                    "components": n, "a_component_on_target": bool(on_target),
                    "gt_touching": bool(_touching(labels == obj_id, labels == other)),
                    "candidate_not_switched": candidate_ok,
                    "chosen_best_iou": int(ious.argmax()),
                    "object_score": score, "previous_object_score": before[2],
                })
            previous[obj_id] = (switched, mask, score)
    return found


def _touching(a: np.ndarray, b: np.ndarray) -> bool:
    grown = a.copy()
    grown[1:] |= a[:-1]
    grown[:-1] |= a[1:]
    grown[:, 1:] |= a[:, :-1]
    grown[:, :-1] |= a[:, 1:]
    return bool((grown & b).any())


def summarise(found) -> dict:
    count = collections.Counter()
    for f in found:
        count["onsets"] += 1
        count["target visible at onset"] += f["target_visible"]
        count["previous mask empty (re-appearance onto another)"] += f["previous_empty"]
        slide = not f["previous_empty"]
        count["slide/jump while visible (previous mask not empty)"] += slide
        if slide:
            count["slide: previous mask already touched the other object"] += f["previous_touches_other"]
            count["slide: previous mask had >= 2 components"] += f["previous_components"] >= 2
            count["slide: switched mask has >= 2 components"] += f["components"] >= 2
            count["slide: switched mask has a component on the target"] += f["a_component_on_target"]
            count["slide: target and other touch in the truth"] += f["gt_touching"]
            count["slide: object score fell by > 1 from the frame before"] += (
                f["object_score"] < f["previous_object_score"] - 1)
        count["some candidate not switched"] += any(f["candidate_not_switched"])
        count["all candidates switched"] += not any(f["candidate_not_switched"])
        count["object score < 1 at onset"] += f["object_score"] < 1
    return dict(count)


def _box(mask: np.ndarray):
    rows, cols = np.nonzero(mask)
    return np.array([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1], float)


def _near(box: np.ndarray, region: np.ndarray, margin: float) -> bool:
    """Whether ``box`` meets ``region`` grown by ``margin`` times the region's larger side."""
    grow = margin * max(region[2] - region[0], region[3] - region[1])
    return not (box[2] < region[0] - grow or box[0] > region[2] + grow or box[3] < region[1] - grow
                or box[1] > region[3] + grow)


def _with_previous(frames):
    """Each annotated frame as (labels, masks, model_raw, previous): ``previous`` holds every
    object's output on the annotated frames before it (the latest one)."""
    previous = {}
    for labels, masks, model_raw, _ in frames:
        if labels is None:
            continue
        yield labels, masks, model_raw, previous
        previous = {**previous, **masks}


def census(frames, void_label, margins=(0.0, 0.5, 1.0)):
    """Over every output with several components, after a non-empty output: what trimming the
    components that do not meet the previous output's box (grown by each margin) would drop."""
    totals = collections.Counter()
    for labels, masks, model_raw, previous in _with_previous(frames):
        for obj_id, mask in masks.items():
            before = previous.get(obj_id)
            if obj_id not in model_raw or before is None or not before.any() or not mask.any():
                continue
            totals["frames, visible after visible"] += 1
            comps = components(mask)
            ids = np.unique(comps[comps > 0])
            if len(ids) < 2:
                continue
            totals["frames with >= 2 components"] += 1
            switched = identity_switched(mask, labels, obj_id, void_label)
            totals["... of which switched"] += switched
            region = _box(before)
            for margin in margins:
                kept = np.zeros_like(mask)
                for c in ids:
                    if _near(_box(comps == c), region, margin):
                        kept |= comps == c
                dropped = mask & ~kept
                if not dropped.any():
                    continue
                key = f"margin {margin}"
                totals[f"{key}: frames trimmed"] += 1
                totals[f"{key}: frames emptied"] += not kept.any()
                totals[f"{key}: pixels dropped on target"] += int((dropped & (labels == obj_id)).sum())
                other = (labels != obj_id) & (labels != 0)
                if void_label is not None:
                    other &= labels != void_label
                totals[f"{key}: pixels dropped on other objects"] += int((dropped & other).sum())
                totals[f"{key}: pixels dropped on background"] += int((dropped & (labels == 0)).sum())
                totals[f"{key}: switched -> not switched"] += switched and kept.any() and not identity_switched(
                    kept, labels, obj_id, void_label)
                totals[f"{key}: not switched -> switched"] += (not switched) and identity_switched(
                    kept, labels, obj_id, void_label)
    return dict(totals)


def competitors(frames, void_label, shares=(0.3, 0.5, 0.7), scores=(0.5, 1.0, 2.0)):
    """Re-appearances (an output after an empty one): the share of the mask that other objects'
    outputs of the same frame cover, for those that are identity switches and for the others
    (true returns or look-alikes nobody tracks); how many each share threshold would refuse, and
    how many have an object-score logit below each of ``scores``."""
    totals = collections.Counter()
    for labels, masks, model_raw, previous in _with_previous(frames):
        for obj_id, mask in masks.items():
            before = previous.get(obj_id)
            if obj_id not in model_raw or before is None or before.any() or not mask.any():
                continue
            others = np.zeros_like(mask)
            for other_id, other in masks.items():
                if other_id != obj_id and previous.get(other_id) is not None and previous[other_id].any():
                    others |= other
            share = (mask & others).sum() / mask.sum()
            switched = identity_switched(mask, labels, obj_id, void_label)
            kind = "switch" if switched else ("true return" if (labels == obj_id).any() else "false return")
            totals[f"re-appearances: {kind}"] += 1
            for limit in shares:
                totals[f"share > {limit}: refuses {kind}"] += share > limit
            for limit in scores:
                totals[f"object score < {limit}: {kind}"] += model_raw[obj_id][2] < limit
    return dict(totals)


def study_parser(description: str, policy: str) -> argparse.ArgumentParser:
    """The arguments of a study over a DAVIS-format set (this tool's, tools/withheld_returns.py's and
    tools/scored_absent.py's):
    the set, which of its sequences (``--first``, ``--count``) and the memory policy (a robust one:
    ``robust_policy``)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--davis", type=Path, required=True)
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--count", type=int, default=40)
    parser.add_argument("--policy", type=robust_policy, default=policy,
                        help=f"a robust memory policy (default: {policy})")
    return parser


def studied_sequences(args: argparse.Namespace):
    """(name, sequence) for the sequences ``study_parser``'s arguments pick, in the set's order."""
    for name in list_sequences(args.davis)[args.first:args.first + args.count]:
        yield name, read_sequence(args.davis, name)


def main() -> None:
    parser = study_parser(__doc__.splitlines()[0], "robust")
    parser.add_argument("--out", type=Path, help="write every onset's numbers here (JSON)")
    args = parser.parse_args()
    torch.manual_seed(0)
    model = sam2_model.build_model("default")
    found, trimmed, competing = [], collections.Counter(), collections.Counter()
    for name, sequence in studied_sequences(args):
        with torch.inference_mode():
            frames = track_sequence(model, args.policy, sequence)
        for item in onsets(frames, sequence.void_label):
            found.append({"sequence": name, **item})
        trimmed.update(census(frames, sequence.void_label))
        competing.update(competitors(frames, sequence.void_label))
    for key, value in summarise(found).items():
        print(f"{key}: {value}")
    print("trimming components that miss the previous output's box (offline, memory unchanged):")
    for key, value in trimmed.items():
        print(f"  {key}: {value}")
    print("re-appearances on other objects' outputs:")
    for key, value in sorted(competing.items()):
        print(f"  {key}: {value}")
    if args.out:
        args.out.write_text(json.dumps(found, indent=1))


if __name__ == "__main__":
    main()
