"""Frames the model scores an object absent: what the mask it chose looked like (issue 25, round 12).

    python tools/scored_absent.py --davis /work/runs_robust/dev200 --first 0 --count 80

Tracks each sequence under one memory policy (by default round 11's ``robust``, where the round-12
diagnosis ran; mask prompts on each object's first ground-truth frame, as ``sam2-eval``) and, on
every scored frame whose output is empty because the model scored the object absent, keeps the
mask the model chose before SAM 2 blanked it (``MaskPrediction.unblanked_low_res``): its IoU with
the object's truth, whether it is an identity switch, its mean colour's distance from the object's
remembered colour, and its centre's distance from the predicted or last seen centre in box sizes.
Prints how many such frames there are, with the object visible or hidden, how many of those masks
are on the target, and what rules on score, colour distance and reach would take (counted on the
trajectory as it is: no tracking feedback).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

import numpy as np
import torch

import sam2_model
from sam2_model.colour_check import colour_distance, mask_colours
from sam2_model.robust_memory import mask_boxes
from sam2_model.transforms import resize_logits
from sam2_ros.evaluation.scoring import identity_switched
from switch_onsets import probed_tracking, studied_sequences, study_parser

ROUND_11 = "robust:kalman+motion_gate+last_seen+appearance_memory+colour_check+colour_drift"


@dataclass
class ScoredAbsent:
    """One object on one frame where the model scored it absent."""

    score: float
    object_visible: bool
    iou: float                         # of the unblanked mask with the object's truth
    switched: bool
    colour_distance: Optional[float]   # None: no remembered colour, or an empty mask
    reach: Optional[float]             # centre distance in last box sizes; None: no box to compare

    @property
    def on_target(self) -> bool:
        return self.object_visible and self.iou > 0.3 and not self.switched

    def taken(self, min_score: float, max_distance: float, reach: float) -> bool:
        return (self.score >= min_score and self.colour_distance is not None and self.reach is not None
                and self.colour_distance <= max_distance and self.reach <= reach)


def _centre(box) -> np.ndarray:
    return np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2], float)


def _unblanked(tracker, states, prediction):
    """Per object: the object score, the unblanked mask, its colour distance and its reach."""
    unblanked = prediction.unblanked_low_res
    colours = mask_colours(unblanked, tracker._frame.colours).cpu().numpy()
    boxes = mask_boxes(unblanked).cpu().numpy()
    probed = {}
    for row, state in enumerate(states):
        robust, box = state.robust, boxes[row]
        distance = reach = None
        if robust is not None and robust.colour is not None and np.all(np.isfinite(colours[row])):
            distance = colour_distance(robust.colour, colours[row])
        if robust is not None and box[4] and robust.last_box is not None:
            references = [robust.last_box] + ([robust.kalman.peek()] if robust.kalman is not None else [])
            reach = min(np.hypot(*(_centre(box) - _centre(r))) for r in references) / robust.last_size
        probed[state.obj_id] = (float(prediction.object_score_logits[row]), unblanked[row, 0].clone(), distance, reach)
    return probed


def track(model, policy: str, sequence) -> List[ScoredAbsent]:
    found = []
    for frame, result, probed in probed_tracking(model, policy, sequence, _unblanked):
        labels = frame.gt_labels
        if labels is None:
            continue
        for obj_id, mask in zip(result.obj_ids, result.masks):
            if obj_id not in probed or mask.any() or probed[obj_id][0] > 0:
                continue  # prompted now, output not empty, or emptied by the policy (not by the model)
            score, logits, distance, reach = probed[obj_id]
            full = resize_logits(logits[None, None], tuple(frame.size))[0, 0].numpy() > 0
            truth = labels == obj_id
            iou = float((full & truth).sum() / max(1, (full | truth).sum()))
            found.append(ScoredAbsent(score, bool(truth.any()), iou,
                                      identity_switched(full, labels, obj_id, sequence.void_label), distance, reach))
    return found


def main() -> None:
    args = study_parser(__doc__.splitlines()[0], ROUND_11).parse_args()
    model = sam2_model.build_model("default")
    found: List[ScoredAbsent] = []
    with torch.inference_mode():
        for _, sequence in studied_sequences(args):
            found += track(model, args.policy, sequence)
    visible = [f for f in found if f.object_visible]
    print(f"{len(found)} frames scored absent: object visible on {len(visible)}, "
          f"hidden on {len(found) - len(visible)}; the chosen mask on the target (IoU > 0.3, no switch) on {sum(f.on_target for f in visible)}")
    for min_score in (-0.5, -1.0, -2.0):
        for max_distance in (25.0, 40.0, 55.0):
            taken = [f for f in found if f.taken(min_score, max_distance, reach=3.0)]
            touching = [f for f in taken if f.object_visible and f.iou > 0 and not f.switched]
            print(f"score >= {min_score}, colour distance <= {max_distance}, reach 3: takes {len(taken)}: "
                  f"{sum(f.on_target for f in taken)} on the target (IoU > 0.3), {len(touching)} touching it, "
                  f"{sum(f.object_visible for f in taken) - len(touching)} elsewhere while visible, "
                  f"{sum(not f.object_visible for f in taken)} while hidden")


if __name__ == "__main__":
    main()
