"""What the robust policy's return checks act on (issue 25, round 9 diagnosis).

    python tools/withheld_returns.py --davis /work/runs_robust/dev200 --first 0 --count 40 \\
        --policy robust+confirmed_return+return_onto_other

Tracks each sequence with one memory policy (mask prompts as ``sam2-eval``, through
``switch_onsets.track_sequence``) and, for every object and frame where a return check acted
(``confirmed_return`` withheld a re-appearance: decision neither accepted nor admitted;
``return_onto_other`` refused one: its test held; otherwise the motion gate refused it), what the
model's mask was in the ground truth: on the target (a true return held back), on another object
(a look-alike caught) or on neither; for withheld frames also what came next (confirmed on the
following frame, and whether the target was visible there in the truth).
"""

from __future__ import annotations

import collections

import torch

import sam2_model
from sam2_model.return_evidence import covered_shares
from sam2_model.transforms import resize_logits
from sam2_ros.evaluation.prompts import PromptKind, prompts_for_new_objects
from switch_onsets import owner, robust_tracker, studied_sequences, study_parser


def track_with_decisions(model, policy: str, sequence):
    """Per frame: the ground truth, and per object (the policy's decision, the model's own mask
    at the frame's size, whether it is a re-appearance: called visible by the model after a frame
    the policy did not accept, whether return_onto_other's test holds)."""
    tracker = robust_tracker(model, policy)
    seen = {}
    original = tracker._apply_robust_policy

    def recording(step, prediction):
        states = step.states
        hidden = [s.robust is not None and s.robust.hidden for s in states]
        options = tracker._robust
        # return_onto_other's test, as the tracker makes it (before the decisions change anything)
        shares = covered_shares(prediction.low_res_masks, prediction.object_score_logits, [not h for h in hidden])
        scores = prediction.object_score_logits.reshape(-1).tolist()
        onto = [bool(options.return_onto_other and h and share >= options.onto_other_min_share
                     and score < options.onto_other_min_score)
                for h, share, score in zip(hidden, shares.tolist(), scores)]
        result, decisions = original(step, prediction)
        for row, state in enumerate(states):
            visible = float(prediction.object_score_logits.reshape(-1)[row]) > 0
            seen[state.obj_id] = (decisions[row], prediction.low_res_masks[row].clone(), hidden[row] and visible,
                                  onto[row])
        return result, decisions

    tracker._apply_robust_policy = recording
    prompted: set = set()
    frames = []
    for frame in sequence:
        seen.clear()
        tracker.track(frame.image)
        objects = {obj_id: (decision, resize_logits(low[None], tuple(frame.size))[0, 0].numpy() > 0, hidden, onto)
                   for obj_id, (decision, low, hidden, onto) in seen.items()}
        frames.append((frame.gt_labels, objects))
        if frame.gt_labels is not None:
            for prompt in prompts_for_new_objects(frame.gt_labels, prompted, PromptKind.MASK, sequence.void_label):
                prompted.add(prompt.obj_id)
                tracker.add_prompt(prompt.obj_id, **prompt.tracker_kwargs())
    return frames


def census(frames) -> collections.Counter:
    totals = collections.Counter()
    for t, (labels, objects) in enumerate(frames):
        if labels is None:
            continue
        for obj_id, (decision, mask, hidden, onto) in objects.items():
            if not hidden or not mask.any():
                continue
            on = owner(mask, labels)
            kind = "on the target" if on == obj_id else ("on another object" if on else "on neither")
            totals[f"re-appearances (called visible after a frame not accepted): {kind}"] += 1
            if decision.accepted:
                continue
            act = "withheld" if not decision.admitted else ("refused on another object" if onto else
                                                          "refused by the motion gate")
            totals[f"{act}: {kind}"] += 1
            if act == "withheld" and t + 1 < len(frames) and obj_id in frames[t + 1][1]:
                next_labels, next_objects = frames[t + 1]
                confirmed = next_objects[obj_id][0].accepted and next_objects[obj_id][1].any()
                target_there = next_labels is not None and bool((next_labels == obj_id).any())
                totals[f"withheld {kind}: next frame {'confirmed' if confirmed else 'not confirmed'}, "
                       f"target {'visible' if target_there else 'hidden'} in the truth"] += 1
    return totals


def main() -> None:
    args = study_parser(__doc__.splitlines()[0], "robust+confirmed_return+return_onto_other").parse_args()
    torch.manual_seed(0)
    model = sam2_model.build_model("default")
    totals = collections.Counter()
    for _, sequence in studied_sequences(args):
        with torch.inference_mode():
            totals.update(census(track_with_decisions(model, args.policy, sequence)))
    for key, value in sorted(totals.items()):
        print(f"{key}: {value}")


if __name__ == "__main__":
    main()
