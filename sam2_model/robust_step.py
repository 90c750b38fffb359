"""The robust memory policy's step inside ``StreamingTracker`` (issue 25): what runs on a frame's
batched prediction between the mask decoder and the memory encoder when ``memory_policy`` is robust.

``apply_robust_policy`` measures what the policy needs in one host copy (``robust_memory.observations``:
boxes, scores, colours under the masks and the unblanked masks, the exposure's ceiling), asks
``robust_memory`` for each object's verdict (with redetect, one batched click for the objects left
not visible) and decision, and returns the prediction as the output and the memory encoder must see it:
the component gate's cut masks, reacquired objects' unblanked masks (cut to their object's colour where
the whole mask's colour is too far for reacquire) and ungated pointers, redetected
objects' clicked masks, masks trimmed of far-coloured cells outside where their object is expected,
refused masks cut to their object's colour where that part passes the gates,
refused objects marked absent as the model marks absent objects; ``shown_output`` then gives the
output its shown masks (reacquire_shown: shown, remembered as the model scored them). The tracker
keeps the state (each object's ``RobustObjectState``, the frame's colour grid); the decisions are
``robust_memory``'s; this module applies them to the batch's tensors.
"""

from __future__ import annotations

import dataclasses
from typing import List, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from .appearance_memory import attended_places
from .colour_check import mask_colours
from .colour_cut import cut_to_colour, trim_far_cells
from .component_gate import keep_components_near
from .memory_bank import ObjectMemory
from .redetect import click_cells, nearest_in_colour, others_masks
from .return_evidence import covered_shares
from .robust_memory import (Decision, RobustObjectState, Verdict, advance, click_search, judge, judge_redetection,
                            judge_cut, mask_boxes, observations, settle, touches_edge)
from .robust_options import RobustMemoryOptions
from .sam2 import NO_OBJECT_LOGIT, MaskPrediction, SAM2Model


def apply_robust_policy(model: SAM2Model, options: RobustMemoryOptions, step, frame,
                        prediction: MaskPrediction) -> Tuple[MaskPrediction, List[Decision]]:
    """The robust policy on one frame's batched prediction: each object's verdict
    (``robust_memory.judge``; with redetect, a click for the objects left not visible, ``_redetect``),
    settled into its decision (``robust_memory.settle``); re-appearances it refuses are marked
    absent as the model marks absent objects (mask logits, object score and pointer), before
    their memory is encoded. Returns the prediction and each object's decision.

    ``step``: the tracker's frame between the decoder and the memory encoder (its ``states``, one
    ``ObjectMemory`` per row, and its memory-conditioned and high-resolution features, which redetect's
    clicks are decoded on); ``frame``: the tracker's current frame (its ``colours`` grid and the
    exposure's ``colour_ceiling``; None where no colour component is on)."""
    states = step.states
    fresh = [row for row, s in enumerate(states) if s.robust is None or s.robust.needs_prompt_box]
    if fresh:  # the filter starts from the prompted mask (the output kept since the prompt)
        prompted = torch.stack([states[row].output.low_res_logits for row in fresh])
        boxes = mask_boxes(prompted).cpu().numpy()
        grid_size = tuple(prompted.shape[-2:])
        for row, numbers in zip(fresh, boxes):
            states[row].robust = states[row].robust or RobustObjectState()
            box = numbers[:4] if numbers[4] else None
            states[row].robust.start(box, options, touches_edge(box, grid_size),
                                     attended_places(model.config.num_maskmem))
    if options.component_gate:
        prediction = _keep_expected_components(options, states, prediction)
    if options.colour_trim:
        prediction = _trim_far_cells(options, frame, states, prediction)
    covered = None
    if options.return_onto_other:  # which objects' masks a returning mask may be measured against
        established = [not s.robust.hidden for s in states]
        covered = covered_shares(prediction.low_res_masks, prediction.object_score_logits, established)
    colours = unblanked = unblanked_colours = None
    if options.measures_colour:
        colours = mask_colours(prediction.low_res_masks, frame.colours)
    if options.reacquire and prediction.unblanked_low_res is not None:
        unblanked_colours = mask_colours(prediction.unblanked_low_res, frame.colours)
        if options.reacquire_cut:  # (inside reacquire: it cuts the mask reacquire judges)
            prediction, unblanked_colours = _cut_unblanked_to_colour(options, frame, states, prediction,
                                                                     unblanked_colours)
        unblanked = prediction.unblanked_low_res
    seen = observations(prediction.low_res_masks, prediction.object_score_logits, prediction.iou_scores,
                        covered, colours, unblanked, unblanked_colours, frame.colour_ceiling)
    predicted = [advance(state.robust, options) for state in states]
    verdicts = [judge(state.robust, obs, box, options) for state, obs, box in zip(states, seen, predicted)]
    if options.colour_cut:
        verdicts, prediction = _cut_refused_to_colour(options, frame, states, prediction, seen, verdicts, predicted)
    clicked = None
    if options.redetect:
        verdicts, clicked = _redetect(model, options, frame, step, states, prediction, verdicts, predicted)
    decisions = [settle(state.robust, verdict, box, options)
                 for state, verdict, box in zip(states, verdicts, predicted)]
    reacquired = [row for row, d in enumerate(decisions) if d.reacquired]
    if reacquired:
        prediction = _take_unblanked(prediction, reacquired)
    if clicked is not None:
        prediction = _take_redetected(prediction, decisions, *clicked)
    rejected = [row for row, d in enumerate(decisions) if not d.accepted]
    if rejected:
        rows = torch.tensor(rejected, device=prediction.low_res_masks.device)
        scores = prediction.object_score_logits.clone()
        scores[rows] = -scores[rows].abs()
        low_res, high_res = prediction.low_res_masks.clone(), prediction.high_res_masks.clone()
        low_res[rows], high_res[rows] = NO_OBJECT_LOGIT, NO_OBJECT_LOGIT
        obj_ptr = prediction.obj_ptr.clone()
        obj_ptr[rows] = model.absent_pointer(obj_ptr[rows])
        prediction = dataclasses.replace(prediction, low_res_masks=low_res, high_res_masks=high_res,
                                         obj_ptr=obj_ptr, object_score_logits=scores)
    return prediction, decisions


def _trim_far_cells(options: RobustMemoryOptions, frame, states: List[ObjectMemory],
                    prediction: MaskPrediction) -> MaskPrediction:
    """Colour trim: each mask of an object with a remembered colour and an expected region without
    its cells far from that colour outside the region (``colour_cut.trim_far_cells``), in the output
    and in what the memory encoder sees; all objects in one pass."""
    rows = [row for row, state in enumerate(states) if state.robust.colour is not None]
    if not rows:
        return prediction
    device = prediction.low_res_masks.device
    colours = _remembered_colours(states, rows, frame, device)
    regions = [states[row].robust.expected_region(options.trim_margin) for row in rows]
    index = torch.tensor(rows, device=device)
    trimmed, changed = trim_far_cells(prediction.low_res_masks[index], frame.colours, colours, regions,
                                      options.trim_max_distance, options.cut_min_cells, NO_OBJECT_LOGIT)
    if not changed:
        return prediction
    return _with_rows_replaced(prediction, index[changed], trimmed[changed])


def _remembered_colours(states: List[ObjectMemory], rows: List[int], frame, device: torch.device) -> torch.Tensor:
    """``[len(rows), 3]``: the given objects' remembered colours as this frame can show them
    (``colour_check.as_shown`` on the device, without a host copy of the exposure's ceiling)."""
    colours = torch.from_numpy(np.stack([states[row].robust.colour for row in rows]).astype(np.float32)).to(device)
    if frame.colour_ceiling is not None:
        colours = torch.minimum(colours, frame.colour_ceiling.to(device, torch.float32))
    return colours


def _cut_refused_to_colour(options: RobustMemoryOptions, frame, states: List[ObjectMemory],
                           prediction: MaskPrediction, seen: list, verdicts: List[Verdict], predicted: list
                           ) -> Tuple[List[Verdict], MaskPrediction]:
    """Colour cut: each mask the model called visible and a gate refused, cut to its cells in its
    object's remembered colour (as this frame can show it), all such masks in one pass; each verdict
    after ``judge_cut``. Returns the verdicts and the prediction with the cut masks taken (low-res
    logits, and their upsampling for the memory encoder)."""
    rows = [row for row, (state, observed, verdict) in enumerate(zip(states, seen, verdicts))
            if verdict.rejected and not verdict.withheld and observed.visible and observed.box is not None
            and state.robust.colour is not None]
    if not rows:
        return verdicts, prediction
    device = prediction.low_res_masks.device
    index = torch.tensor(rows, device=device)
    colours = _remembered_colours(states, rows, frame, device)
    cut = cut_to_colour(prediction.low_res_masks[index], frame.colours, colours, options.cut_max_distance,
                        NO_OBJECT_LOGIT)
    found = observations(cut, prediction.object_score_logits[index], prediction.iou_scores[index],
                         colours=mask_colours(cut, frame.colours), colour_ceiling=frame.colour_ceiling)
    verdicts = list(verdicts)
    taken = []
    for k, (row, candidate) in enumerate(zip(rows, found)):
        # return_onto_other judges the cut by the whole mask's share on other objects: a hesitant
        # return onto another object is not let through by cutting it down to the object's colour.
        candidate = dataclasses.replace(candidate, covered=seen[row].covered)
        verdicts[row] = judge_cut(states[row].robust, verdicts[row], candidate, predicted[row], options)
        if verdicts[row].cut:
            taken.append(k)
    if not taken:
        return verdicts, prediction
    source = torch.tensor(taken, device=device)
    return verdicts, _with_rows_replaced(prediction, index[source], cut[source])


def _redetect(model: SAM2Model, options: RobustMemoryOptions, frame, step, states: List[ObjectMemory],
              prediction: MaskPrediction, verdicts: List[Verdict], predicted: list):
    """Redetect: for each object the verdicts leave not visible, one click at the cell nearest its
    remembered colour where it can be (``redetect.click_cells``), decoded on its memory-conditioned
    features, all such objects in one decoder pass, each keeping the candidate mask nearest its
    colour (``redetect.nearest_in_colour``); each verdict after ``judge_redetection``.
    Returns the verdicts and, where any click was decoded, (its prediction, the rows it holds)."""
    rows = [row for row, (state, verdict, box) in enumerate(zip(states, verdicts, predicted))
            if not verdict.visible and not verdict.withheld and box is not None
            and state.robust.colour is not None and state.robust.gate_size(options) > 0]
    if not rows:
        return verdicts, None
    searches = [click_search(states[row].robust, predicted[row], options, verdicts[row].seen.colour_ceiling)
                for row in rows]
    cells = click_cells(frame.colours, searches, others_masks(prediction.low_res_masks, rows),
                        options.reacquire_max_distance)
    clicked = [(row, cell) for row, cell in zip(rows, cells) if cell is not None]
    if not clicked:
        return verdicts, None
    # Each clicked object's colour as this frame can show it (its search's), to choose a candidate by.
    colours = [search.colour for search, cell in zip(searches, cells) if cell is not None]
    scale = model.image_size / frame.colours.shape[-1]  # model-input pixels per grid cell
    index = torch.tensor([row for row, _ in clicked], device=step.conditioned.device)
    coords = torch.tensor([[[x * scale, y * scale]] for _, (x, y) in clicked], device=model.device)
    labels = torch.ones(len(clicked), 1, dtype=torch.int32, device=model.device)
    # Three candidates (a click is ambiguous: a part, the object, the object with its surroundings).
    decoded = model.predict_masks(step.conditioned[index], [level[index] for level in step.high_res], coords,
                                  labels, multimask=True,
                                  choose=lambda masks, _: nearest_in_colour(masks, frame.colours, colours))
    found = observations(decoded.low_res_masks, decoded.object_score_logits, decoded.iou_scores,
                         colours=mask_colours(decoded.low_res_masks, frame.colours),
                         colour_ceiling=frame.colour_ceiling)
    verdicts = list(verdicts)
    for (row, _), candidate in zip(clicked, found):
        verdicts[row] = judge_redetection(states[row].robust, verdicts[row], candidate, predicted[row], options)
    return verdicts, (decoded, [row for row, _ in clicked])


def _take_redetected(prediction: MaskPrediction, decisions: List[Decision], decoded: MaskPrediction,
                     rows: List[int]) -> MaskPrediction:
    """Redetect: the objects taken from a click as the decoder made them (mask, score, IoU and
    pointer), for the output and for the memory encoder."""
    taken = [(k, row) for k, row in enumerate(rows) if decisions[row].redetected]
    if not taken:
        return prediction
    source = torch.tensor([k for k, _ in taken], device=prediction.low_res_masks.device)
    target = torch.tensor([row for _, row in taken], device=prediction.low_res_masks.device)
    replaced = {}
    for name in ("low_res_masks", "high_res_masks", "iou_scores", "obj_ptr", "object_score_logits"):
        values = getattr(prediction, name).clone()
        values[target] = getattr(decoded, name)[source].to(values.dtype)
        replaced[name] = values
    return dataclasses.replace(prediction, **replaced)


def _cut_unblanked_to_colour(options: RobustMemoryOptions, frame, states: List[ObjectMemory],
                             prediction: MaskPrediction, unblanked_colours: torch.Tensor
                             ) -> Tuple[MaskPrediction, torch.Tensor]:
    """Reacquire cut: the unblanked mask of each object the model scored absent whose mean colour
    (``unblanked_colours``) lies beyond ``reacquire_max_distance`` of its remembered colour (as this
    frame can show it), cut to its cells within ``cut_max_distance`` of that colour, and emptied where
    fewer than ``cut_min_cells`` stay; all such masks in one pass, on the device (the policy's one host
    copy comes after). Returns the prediction with those unblanked masks, and every unblanked mask's
    mean colour."""
    rows = [row for row, state in enumerate(states) if state.robust.colour is not None]
    if not rows:
        return prediction, unblanked_colours
    device = prediction.unblanked_low_res.device
    index = torch.tensor(rows, device=device)
    colours = _remembered_colours(states, rows, frame, device)
    # An empty mask's colour is NaN: the comparison is False and the mask stays (empty).
    far = (unblanked_colours[index].to(device) - colours).norm(dim=1) > options.reacquire_max_distance
    absent = prediction.object_score_logits[index].reshape(-1) <= 0
    masks = prediction.unblanked_low_res[index]
    cut = cut_to_colour(masks, frame.colours, colours, options.cut_max_distance, NO_OBJECT_LOGIT)
    too_few = (cut > 0).flatten(1).sum(dim=1) < options.cut_min_cells
    cut = torch.where(too_few[:, None, None, None], torch.full_like(cut, NO_OBJECT_LOGIT), cut)
    unblanked = prediction.unblanked_low_res.clone()
    unblanked[index] = torch.where((far & absent)[:, None, None, None], cut, masks).to(unblanked.dtype)
    return (dataclasses.replace(prediction, unblanked_low_res=unblanked),
            mask_colours(unblanked, frame.colours))


def _take_unblanked(prediction: MaskPrediction, reacquired: List[int]) -> MaskPrediction:
    """Reacquire: the given objects as the model would have output them had it scored them
    present (their unblanked masks and ungated pointers, the object-score logit's sign
    flipped), for the output and for the memory encoder."""
    rows = torch.tensor(reacquired, device=prediction.low_res_masks.device)
    low_res, scores = _unblanked_rows(prediction, rows)
    high_res = _upsampled_rows(prediction.high_res_masks, low_res, rows)
    obj_ptr = prediction.obj_ptr.clone()
    obj_ptr[rows] = prediction.ungated_obj_ptr[rows].to(obj_ptr.dtype)
    return dataclasses.replace(prediction, low_res_masks=low_res, high_res_masks=high_res, obj_ptr=obj_ptr,
                               object_score_logits=scores)


def shown_output(prediction: MaskPrediction, decisions: List[Decision]) -> MaskPrediction:
    """Reacquire_shown: the frame's prediction as the output shows it, the shown objects' unblanked
    masks scored present; the memory encoder has already seen them as the model scored them (absent)."""
    shown = [row for row, d in enumerate(decisions) if d.shown]
    if not shown:
        return prediction
    low_res, scores = _unblanked_rows(prediction, torch.tensor(shown, device=prediction.low_res_masks.device))
    return dataclasses.replace(prediction, low_res_masks=low_res, object_score_logits=scores)


def _unblanked_rows(prediction: MaskPrediction, rows: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """The low-res logits and object scores with the given rows' unblanked masks, scored present."""
    low_res = prediction.low_res_masks.clone()
    low_res[rows] = prediction.unblanked_low_res[rows].to(low_res.dtype)
    scores = prediction.object_score_logits.clone()
    # A score of exactly 0 counts as absent (> 0 is present): the flipped score stays above it.
    scores[rows] = scores[rows].abs().clamp(min=torch.finfo(scores.dtype).tiny)
    return low_res, scores


def _keep_expected_components(options: RobustMemoryOptions, states: List[ObjectMemory],
                              prediction: MaskPrediction) -> MaskPrediction:
    """Component gate: each mask without its parts that miss the object's expected region
    (``component_gate``), in the output and in what the memory encoder sees (the high-res
    logits are the decoder's upsampling of the trimmed low-res ones, as ``predict_masks``
    makes them)."""
    regions = [s.robust.expected_region(options.component_margin) for s in states]
    low_res, rows = keep_components_near(prediction.low_res_masks, regions, NO_OBJECT_LOGIT)
    if not rows:
        return prediction
    high_res = _upsampled_rows(prediction.high_res_masks, low_res, rows)
    return dataclasses.replace(prediction, low_res_masks=low_res, high_res_masks=high_res)


def _with_rows_replaced(prediction: MaskPrediction, rows: torch.Tensor, low_res_rows: torch.Tensor
                        ) -> MaskPrediction:
    """The prediction with the given rows' low-res logits replaced (a trimmed or cut mask), and their
    high-res logits the decoder's upsampling of them, for the output and the memory encoder."""
    low_res = prediction.low_res_masks.clone()
    low_res[rows] = low_res_rows.to(low_res.dtype)
    high_res = _upsampled_rows(prediction.high_res_masks, low_res, rows)
    return dataclasses.replace(prediction, low_res_masks=low_res, high_res_masks=high_res)


def _upsampled_rows(high_res: torch.Tensor, low_res: torch.Tensor, rows) -> torch.Tensor:
    """``high_res`` with the given rows replaced by the decoder's upsampling of the changed low-res
    logits (as ``predict_masks`` makes them), for the memory encoder."""
    high_res = high_res.clone()
    high_res[rows] = F.interpolate(low_res[rows], size=tuple(high_res.shape[-2:]), mode="bilinear",
                                   align_corners=False).to(high_res.dtype)
    return high_res
