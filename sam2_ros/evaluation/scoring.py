"""Scores a runner's predictions against the ground truth, frame by frame as they stream.

Which frames count, per object (the DAVIS / SA-V rule generalised to objects that
enter late and to sparse annotation): frames that carry ground truth, after the
frame the object was prompted on, and not the sequence's last annotated frame. For
an object present in the first frame of a fully annotated sequence this is exactly
DAVIS's "all frames but the first and the last".

Averages follow DAVIS: an object's J (F) is the mean over its frames; a sequence's
and the whole run's J (F) are means over objects; J&F is the mean of J and F.

Visibility, on the same scored frames: an empty predicted mask means the tracker reported
the object not visible (the tracker blanks absent objects, the node publishes empty masks
for them, and an object missing from a frame's prediction counts as empty). A *hidden*
frame has an empty ground-truth mask; a *return* frame has a non-empty one after some
earlier scored frame of that object was hidden. Absent accuracy is the fraction of hidden
frames predicted empty; redetection rate the fraction of return frames predicted non-empty;
a return *on the target* is a return frame whose prediction overlaps the object's own ground
truth and is no identity switch (a mask on a look-alike is found, but not on the target);
miss rate the fraction of frames with a non-empty ground truth (hidden before or not) predicted
empty: an object dropped while in plain view, the other half of a wrong presence decision.
Identity: a scored frame with a non-empty prediction is an *identity switch* when the predicted
mask covers more pixels of another ground-truth object than of its own (the mask jumped to a
look-alike or a neighbour); the switch rate is switches / frames with a non-empty prediction.
Predicted boxes (memory_policy robust): on a visible frame reported absent, the tracker may still
give a box where its motion filter predicts the object (``FramePrediction.predicted_boxes``), a hint
for a planner looking for it; such a frame counts as a *predicted-box frame*, and as a *hit* when the
box holds the centre of the object's ground-truth mask (``box_holds_centre``).
Sequences and the run add up the counts over objects and take the rates of the sums.
Each scored frame's outcome is also kept, one letter per frame (``FrameOutcome``), so that two
runs can be compared frame by frame (``sam2-eval-compare``: where one run reports a visible object
absent, was the other's mask on it?).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, fields
from enum import Enum

import numpy as np
from PIL import Image

from .errors import EvaluationInputError
from .matching import max_weight_assignment
from .position_error import PositionErrorStats, error_stats, position_error
from .metrics import DEFAULT_BOUND_TH, SeriesStats, boundary_f, jf_mean, region_similarity, series_stats
from .prompts import PromptKind
from .runner import FramePrediction, Runner
from .sequence import Sequence, object_ids_in

THUMBNAIL_MAX_SIDE = 320


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


@dataclass(frozen=True)
class VisibilityCounts:
    """Whether the tracker said "not visible" exactly when the object was hidden.

    hidden_frames: scored frames with an empty ground-truth mask; hidden_correct: of those,
    frames with an empty prediction. return_frames: scored frames with a non-empty ground
    truth after an earlier hidden scored frame; return_found: of those, frames with a
    non-empty prediction; return_on_target: of those, frames whose prediction overlaps the
    object's ground truth and is no identity switch. visible_frames: scored frames with a non-empty ground truth;
    visible_missed: of those, frames with an empty prediction; visible_on_target: of those, frames
    whose prediction overlaps the object's ground truth and is no identity switch (the frames a
    planner is given the right object). predicted_frames: scored frames
    with a non-empty prediction; identity_switches: of those, frames whose predicted mask covers
    more pixels of another ground-truth object than of its own (``identity_switched``).
    predicted_box_frames: visible_missed frames on which the tracker gave a predicted box for the
    object (memory_policy robust; always 0 under official); predicted_box_hits: of those, frames
    whose box holds the centre of the object's ground-truth mask (``box_holds_centre``).
    """

    hidden_frames: int = 0
    hidden_correct: int = 0
    return_frames: int = 0
    return_found: int = 0
    return_on_target: int = 0
    visible_frames: int = 0
    visible_missed: int = 0
    visible_on_target: int = 0
    predicted_frames: int = 0
    identity_switches: int = 0
    predicted_box_frames: int = 0
    predicted_box_hits: int = 0

    @property
    def absent_accuracy(self) -> float | None:
        """hidden_correct / hidden_frames; None when the object is never hidden."""
        return _rate(self.hidden_correct, self.hidden_frames)

    @property
    def redetection_rate(self) -> float | None:
        """return_found / return_frames; None when the object never comes back."""
        return _rate(self.return_found, self.return_frames)

    @property
    def miss_rate(self) -> float | None:
        """visible_missed / visible_frames; None when the object is never in the truth."""
        return _rate(self.visible_missed, self.visible_frames)

    @property
    def identity_switch_rate(self) -> float | None:
        """identity_switches / predicted_frames; None when nothing was ever predicted."""
        return _rate(self.identity_switches, self.predicted_frames)

    def as_dict(self) -> dict[str, int | float | None]:
        """Counts and rates, each rate after the counts it divides (results.json's order)."""
        return {
            "hidden_frames": self.hidden_frames,
            "hidden_correct": self.hidden_correct,
            "absent_accuracy": self.absent_accuracy,
            "return_frames": self.return_frames,
            "return_found": self.return_found,
            "redetection_rate": self.redetection_rate,
            "return_on_target": self.return_on_target,
            "visible_frames": self.visible_frames,
            "visible_missed": self.visible_missed,
            "miss_rate": self.miss_rate,
            "visible_on_target": self.visible_on_target,
            "predicted_frames": self.predicted_frames,
            "identity_switches": self.identity_switches,
            "identity_switch_rate": self.identity_switch_rate,
            "predicted_box_frames": self.predicted_box_frames,
            "predicted_box_hits": self.predicted_box_hits,
        }

    def __add__(self, other: VisibilityCounts) -> VisibilityCounts:
        return VisibilityCounts(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(VisibilityCounts)))

    @classmethod
    def total(cls, counts: Iterable[VisibilityCounts]) -> VisibilityCounts:
        return sum(counts, cls())


class FrameOutcome(str, Enum):
    """One scored frame of one object, as a letter (results.json's ``frame_outcomes``)."""

    HIDDEN_ABSENT = "h"  # hidden, reported absent
    HIDDEN_SHOWN = "x"   # hidden, yet a mask shown
    ON_TARGET = "T"      # visible, the mask on it (visible_on_target)
    SWITCHED = "S"       # visible, the mask mostly on another labelled object (an identity switch)
    ELSEWHERE = "E"      # visible, a mask touching neither it nor mostly another labelled object:
    #                      background, or a look-alike the truth does not label
    MISSED = "-"         # visible, reported absent (visible_missed)

    @classmethod
    def of(cls, gt_empty: bool, pred_empty: bool, switched: bool, overlaps_target: bool) -> "FrameOutcome":
        if gt_empty:
            return cls.HIDDEN_ABSENT if pred_empty else cls.HIDDEN_SHOWN
        if pred_empty:
            return cls.MISSED
        if switched:
            return cls.SWITCHED
        return cls.ON_TARGET if overlaps_target else cls.ELSEWHERE


@dataclass
class ObjectResult:
    """One object's per-frame scores and their DAVIS statistics."""

    obj_id: int
    prompt_frame: int
    frames: list[int] = field(default_factory=list)  # scored frame indices
    j: list[float] = field(default_factory=list)
    f: list[float] = field(default_factory=list)
    j_stats: SeriesStats | None = None  # None when no frame could be scored
    f_stats: SeriesStats | None = None
    visibility: VisibilityCounts = field(default_factory=VisibilityCounts)
    # With depth (position_error.py): metres between the 3D positions from the tracked and the
    # ground-truth masks, on the scored frames where both have 3D.
    position_frames: list[int] = field(default_factory=list)
    position_errors: list[float] = field(default_factory=list)
    outcomes: list[FrameOutcome] = field(default_factory=list)  # per scored frame, as ``frames``

    @property
    def position_error(self) -> PositionErrorStats | None:
        return error_stats(self.position_errors)

    def count_visibility(self, gt_empty: bool, pred_empty: bool, switched: bool = False,
                         overlaps_target: bool = False, box_on_object: bool | None = None) -> None:
        """Add one scored frame to the visibility counts (frames in order); ``switched``: the
        prediction is an identity switch (``identity_switched``); ``overlaps_target``: it shares a
        pixel with the object's ground truth; ``box_on_object``: the tracker gave a predicted box for
        the object, and whether it holds the centre of its ground truth (``box_holds_centre``); None:
        no box. A box counts only on a visible frame reported absent: there it is the planner's one
        hint where the object is; elsewhere the mask (or the truth's emptiness) says more."""
        outcome = FrameOutcome.of(gt_empty, pred_empty, switched, overlaps_target)
        self.outcomes.append(outcome)
        if not pred_empty:
            self.visibility += VisibilityCounts(predicted_frames=1, identity_switches=int(switched))
        if gt_empty:
            self.visibility += VisibilityCounts(hidden_frames=1, hidden_correct=int(pred_empty))
            return
        on_target = outcome is FrameOutcome.ON_TARGET
        if self.visibility.hidden_frames:  # hidden on an earlier scored frame: it came back
            self.visibility += VisibilityCounts(return_frames=1, return_found=int(not pred_empty),
                                                return_on_target=int(on_target))
        self.visibility += VisibilityCounts(visible_frames=1, visible_missed=int(pred_empty),
                                            visible_on_target=int(on_target))
        if pred_empty and box_on_object is not None:
            self.visibility += VisibilityCounts(predicted_box_frames=1, predicted_box_hits=int(box_on_object))

    @property
    def scored(self) -> bool:
        return self.j_stats is not None

    @property
    def jf_mean(self) -> float | None:
        if not self.scored:
            return None
        return jf_mean(self.j_stats.mean, self.f_stats.mean)


@dataclass(frozen=True)
class TimingStats:
    """Wall time per frame, in milliseconds (tracking; prompts counted apart)."""

    num_frames: int
    track_ms_mean: float
    track_ms_median: float
    track_ms_p95: float
    track_ms_max: float
    prompt_ms_total: float

    @property
    def fps(self) -> float:
        return 1e3 / self.track_ms_mean if self.track_ms_mean > 0 else float("inf")


@dataclass(frozen=True)
class WorstFrame:
    """A low-scoring (object, frame) pair, with small images for the contact sheet."""

    frame_index: int
    obj_id: int
    j: float
    f: float
    image: np.ndarray  # thumbnail, hxwx3 uint8
    gt_mask: np.ndarray  # thumbnail, hxw bool
    pred_mask: np.ndarray  # thumbnail, hxw bool

    @property
    def jf(self) -> float:
        return jf_mean(self.j, self.f)


def _mean_over(objects: list[ObjectResult], pick: Callable[[ObjectResult], float]) -> float | None:
    values = [pick(o) for o in objects if o.scored]
    return float(np.mean(values)) if values else None


@dataclass(frozen=True)
class DiscoveryCounts:
    """How discovered tracks matched the ground truth (``--prompt auto``).

    found: ground-truth objects assigned a track that overlaps them (mean J above 0); missed: the
    other ground-truth objects (assigned an empty padding, or a track that never touches them);
    spurious: tracks standing for no found object; tracks: all tracks.
    """

    found: int = 0
    missed: int = 0
    spurious: int = 0
    tracks: int = 0

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(DiscoveryCounts)}

    def __add__(self, other: DiscoveryCounts) -> DiscoveryCounts:
        return DiscoveryCounts(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(DiscoveryCounts)))


@dataclass
class SequenceResult:
    name: str
    source: str
    num_frames: int
    num_annotated: int
    objects: list[ObjectResult]
    timing: TimingStats
    worst: list[WorstFrame]  # lowest J&F first
    discovery: DiscoveryCounts | None = None  # --prompt auto only
    matches: dict[int, int] | None = None  # --prompt auto: ground-truth object -> the track scored as it

    @property
    def j_mean(self) -> float | None:
        return _mean_over(self.objects, lambda o: o.j_stats.mean)

    @property
    def f_mean(self) -> float | None:
        return _mean_over(self.objects, lambda o: o.f_stats.mean)

    @property
    def jf_mean(self) -> float | None:
        j, f = self.j_mean, self.f_mean
        return None if j is None else jf_mean(j, f)

    @property
    def visibility(self) -> VisibilityCounts:
        """The objects' visibility counts added up."""
        return VisibilityCounts.total(o.visibility for o in self.objects)


@dataclass(frozen=True)
class Summary:
    """Run-wide DAVIS numbers: means over all scored objects of all sequences."""

    num_sequences: int
    num_objects: int
    jf_mean: float
    j_mean: float
    j_recall: float
    j_decay: float
    f_mean: float
    f_recall: float
    f_decay: float
    track_ms_mean: float  # over every frame of every sequence
    # Visibility: counts summed over every object of every sequence, rates of the sums.
    hidden_frames: int = 0
    hidden_correct: int = 0
    absent_accuracy: float | None = None
    return_frames: int = 0
    return_found: int = 0
    redetection_rate: float | None = None
    return_on_target: int = 0
    visible_frames: int = 0
    visible_missed: int = 0
    miss_rate: float | None = None
    visible_on_target: int = 0
    predicted_frames: int = 0
    identity_switches: int = 0
    identity_switch_rate: float | None = None
    predicted_box_frames: int = 0
    predicted_box_hits: int = 0
    # With depth: 3D position errors (metres) over every object-frame of every sequence; None without.
    position_error: PositionErrorStats | None = None

    @property
    def visibility(self) -> VisibilityCounts:
        return VisibilityCounts(**{f.name: getattr(self, f.name) for f in fields(VisibilityCounts)})


def summarize(results: list[SequenceResult]) -> Summary:
    objects = [o for r in results for o in r.objects if o.scored]
    if not objects:
        raise EvaluationInputError("no object could be scored in any sequence")
    frames = sum(r.timing.num_frames for r in results)
    total_ms = sum(r.timing.track_ms_mean * r.timing.num_frames for r in results)

    def mean(pick: Callable[[ObjectResult], float]) -> float:
        return float(np.mean([pick(o) for o in objects]))

    j_mean, f_mean = mean(lambda o: o.j_stats.mean), mean(lambda o: o.f_stats.mean)
    visibility = VisibilityCounts.total(r.visibility for r in results)
    return Summary(
        num_sequences=len(results),
        num_objects=len(objects),
        jf_mean=jf_mean(j_mean, f_mean),
        j_mean=j_mean,
        j_recall=mean(lambda o: o.j_stats.recall),
        j_decay=mean(lambda o: o.j_stats.decay),
        f_mean=f_mean,
        f_recall=mean(lambda o: o.f_stats.recall),
        f_decay=mean(lambda o: o.f_stats.decay),
        track_ms_mean=total_ms / frames,
        **visibility.as_dict(),
        position_error=error_stats([e for r in results for o in r.objects for e in o.position_errors]),
    )


def identity_switched(mask: np.ndarray, labels: np.ndarray, obj_id: int, void_label: int | None = None) -> bool:
    """Whether the predicted ``mask`` of ``obj_id`` covers more pixels of one other ground-truth
    object than of ``obj_id`` itself (background and void pixels count for nobody). An empty mask
    never switches; a mask over another object while its own is hidden does."""
    covered = np.asarray(labels)[np.asarray(mask, dtype=bool)]
    if covered.size == 0:
        return False
    ids, counts = np.unique(covered, return_counts=True)
    own = int(counts[ids == obj_id].sum())
    others = (ids != 0) & (ids != obj_id)
    if void_label is not None:
        others &= ids != void_label
    return bool(others.any()) and int(counts[others].max()) > own


def box_holds_centre(box: tuple[float, float, float, float], mask: np.ndarray) -> bool:
    """Whether ``box`` (x0, y0, x1, y1 in the frame's pixels, bounds included) holds the centre of
    ``mask``: the mean column and the mean row of its pixels. The centre, not an overlap, because
    a planner sent to a predicted box looks at its middle, and an overlap would reward a box grown
    wide. An empty mask has no centre: False."""
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        return False
    x0, y0, x1, y1 = box
    return bool(x0 <= cols.mean() <= x1 and y0 <= rows.mean() <= y1)


def _thumbnail(image: np.ndarray, gt: np.ndarray, pred: np.ndarray):
    h, w = gt.shape
    scale = min(1.0, THUMBNAIL_MAX_SIDE / max(h, w))
    if scale == 1.0:
        return image.copy(), gt.copy(), pred.copy()
    size = (max(1, round(w * scale)), max(1, round(h * scale)))

    def shrink_mask(mask: np.ndarray) -> np.ndarray:
        return np.array(Image.fromarray(mask.astype(np.uint8) * 255).resize(size, Image.NEAREST)) > 127

    return np.array(Image.fromarray(image).resize(size, Image.BILINEAR)), shrink_mask(gt), shrink_mask(pred)


class _WorstFrames:
    """The k lowest-scoring (object, frame) pairs, spread over objects.

    One lost object would otherwise fill the whole contact sheet with near-identical
    frames, so each object gets an equal share of the k places first and the places
    left over go to the lowest scores overall. Ties go to the earlier frame, lower id.
    """

    def __init__(self, k: int) -> None:
        self.k = k
        # Per object, the k worst seen so far as a max-heap (negated keys).
        self._heaps: dict[int, list[tuple[float, int, WorstFrame]]] = {}

    def offer(self, frame_index: int, obj_id: int, j: float, f: float, image, gt, pred) -> None:
        if self.k <= 0:
            return
        heap = self._heaps.setdefault(obj_id, [])
        key = (jf_mean(j, f), frame_index)
        if len(heap) == self.k and key >= (-heap[0][0], -heap[0][1]):
            return  # not worse than anything kept: skip the thumbnail work
        entry = (-key[0], -key[1], WorstFrame(frame_index, obj_id, j, f, *_thumbnail(image, gt, pred)))
        if len(heap) < self.k:
            heapq.heappush(heap, entry)
        else:
            heapq.heapreplace(heap, entry)

    def sorted(self) -> list[WorstFrame]:
        """The chosen frames, lowest J&F first."""
        if not self._heaps:
            return []

        def order(w: WorstFrame) -> tuple[float, int, int]:
            return (w.jf, w.frame_index, w.obj_id)

        per_object = {obj: sorted((e[2] for e in heap), key=order) for obj, heap in self._heaps.items()}
        share = max(1, self.k // len(per_object))
        chosen = [w for items in per_object.values() for w in items[:share]]
        rest = [w for items in per_object.values() for w in items[share:]]
        chosen = sorted(chosen, key=order)[: self.k]
        chosen += sorted(rest, key=order)[: self.k - len(chosen)]
        return sorted(chosen, key=order)


def score_predictions(
    sequence: Sequence,
    predictions: Iterable[FramePrediction],
    bound_th: float = DEFAULT_BOUND_TH,
    worst_k: int = 8,
    progress: Callable[[int], object] | None = None,
    every_annotated_frame: bool = False,
) -> SequenceResult:
    """Score a stream of predictions for one sequence (consumes it frame by frame).

    every_annotated_frame: score objects on every annotated frame from their prompt frame on,
    the last included (the DAVIS unsupervised protocol, ``score_auto``), instead of after it.
    """
    if not sequence.annotated:
        raise EvaluationInputError(f"{sequence.name}: no frame has ground truth")
    last_annotated = max(sequence.annotated)
    objects: dict[int, ObjectResult] = {}
    worst = _WorstFrames(worst_k)
    track_ms: list[float] = []
    prompt_ms = 0.0
    for pred in predictions:
        frame = pred.frame
        track_ms.append(pred.track_ms)
        prompt_ms += pred.prompt_ms
        for obj_id in pred.prompted:
            objects[obj_id] = ObjectResult(obj_id=obj_id, prompt_frame=frame.index)
        if frame.gt_labels is not None and (every_annotated_frame or frame.index != last_annotated):
            void = None if sequence.void_label is None else frame.gt_labels == sequence.void_label
            for obj_id, obj in objects.items():
                if obj.prompt_frame > frame.index or (obj.prompt_frame == frame.index and not every_annotated_frame):
                    continue
                gt = frame.gt_labels == obj_id
                # An object the tracker dropped is scored as an empty prediction.
                mask = pred.masks.get(obj_id)
                mask = np.zeros_like(gt) if mask is None else mask
                box = None if pred.predicted_boxes is None else pred.predicted_boxes.get(obj_id)
                j = region_similarity(mask, gt, void)
                f = boundary_f(mask, gt, bound_th, void)
                obj.frames.append(frame.index)
                obj.j.append(j)
                obj.f.append(f)
                obj.count_visibility(gt_empty=not gt.any(), pred_empty=not mask.any(),
                                     switched=identity_switched(mask, frame.gt_labels, obj_id, sequence.void_label),
                                     overlaps_target=bool((mask & gt).any()),
                                     box_on_object=None if box is None else box_holds_centre(box, gt))
                if frame.depth_m is not None and sequence.intrinsics is not None:
                    if pred.positions is None:
                        error = position_error(mask, gt, frame.depth_m, sequence.intrinsics)
                    elif obj_id in pred.positions:
                        error = position_error(mask, gt, frame.depth_m, sequence.intrinsics,
                                               reported=pred.positions[obj_id])
                    else:  # the tracker reported no 3D for it
                        error = None
                    if error is not None:
                        obj.position_frames.append(frame.index)
                        obj.position_errors.append(error)
                worst.offer(frame.index, obj_id, j, f, frame.image, gt, mask)
        if progress is not None:
            progress(1)
    if len(track_ms) != sequence.num_frames:
        raise EvaluationInputError(
            f"{sequence.name}: the runner produced {len(track_ms)} of {sequence.num_frames} frames"
        )
    if not objects:
        raise EvaluationInputError(f"{sequence.name}: the ground truth contains no object (only background)")
    for obj in objects.values():
        if obj.j:
            obj.j_stats = series_stats(obj.j)
            obj.f_stats = series_stats(obj.f)
    if not any(o.scored for o in objects.values()):
        raise EvaluationInputError(
            f"{sequence.name}: nothing to score; every object first appears on the last annotated frames "
            "(an object is scored on annotated frames after its first one, the sequence's last annotated "
            "frame excluded)"
        )
    ms = np.asarray(track_ms)
    return SequenceResult(
        name=sequence.name,
        source=sequence.source,
        num_frames=sequence.num_frames,
        num_annotated=len(sequence.annotated),
        objects=[objects[k] for k in sorted(objects)],
        timing=TimingStats(
            num_frames=int(ms.size),
            track_ms_mean=float(ms.mean()),
            track_ms_median=float(np.median(ms)),
            track_ms_p95=float(np.percentile(ms, 95)),
            track_ms_max=float(ms.max()),
            prompt_ms_total=float(prompt_ms),
        ),
        worst=worst.sorted(),
    )


def _pack(masks: dict[int, np.ndarray]) -> dict[int, np.ndarray]:
    return {k: np.packbits(m, axis=None) for k, m in masks.items()}


def _unpack(packed: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return np.unpackbits(packed, count=size[0] * size[1]).reshape(size).astype(bool)


def score_auto(
    sequence: Sequence,
    predictions: Iterable[FramePrediction],
    bound_th: float = DEFAULT_BOUND_TH,
    worst_k: int = 8,
    progress: Callable[[int], object] | None = None,
) -> SequenceResult:
    """Score discovered tracks against the ground truth as in the DAVIS unsupervised protocol.

    As davis2017-evaluation's ``_evaluate_unsupervised``: every track is compared with every
    ground-truth object on every annotated frame (a track not yet started counts as empty), J and
    F; when there are fewer tracks than objects, empty predictions pad the tracks to as many as
    the objects. The one-to-one assignment maximising the sum of (mean J + mean F) / 2
    (``matching.max_weight_assignment``) decides which track (or padding) stands for which object,
    and every object is scored with its track's masks on every annotated frame, also when they
    never overlap it; an object assigned a padding is scored with an empty prediction (J and F 0
    where it is visible, 1 where it is hidden).

    The discovery counts describe the assignment: an object is *found* when its track overlaps
    it (mean J above 0), *missed* otherwise (a padding, or a track that never touches it); a
    track standing for no found object is *spurious*.
    """
    buffered = []  # (frame, packed masks, track_ms, prompt_ms, predicted boxes)
    tracks: list[int] = []
    for pred in predictions:
        buffered.append((pred.frame, _pack(pred.masks), pred.track_ms, pred.prompt_ms, pred.predicted_boxes))
        tracks += [t for t in pred.prompted if t not in tracks]
        if progress is not None:
            progress(1)
    annotated = [entry for entry in buffered if entry[0].gt_labels is not None]
    gt_ids = sorted({i for entry in annotated for i in object_ids_in(entry[0].gt_labels, sequence.void_label)})
    # Mean J and F of every (ground-truth object, track or padding) over the annotated frames; the
    # paddings are all the same empty mask, so one column scores them all.
    paddings = max(0, len(gt_ids) - len(tracks))
    j_sum = np.zeros((len(gt_ids), len(tracks) + 1))
    f_sum = np.zeros_like(j_sum)
    for frame, packed, *_ in annotated:
        labels = frame.gt_labels
        void = None if sequence.void_label is None else labels == sequence.void_label
        empty = np.zeros(frame.size, dtype=bool)
        track_masks = [_unpack(packed[t], frame.size) if t in packed else empty for t in tracks] + [empty]
        for row, gt_id in enumerate(gt_ids):
            gt = labels == gt_id
            for col, mask in enumerate(track_masks):
                j_sum[row, col] += region_similarity(mask, gt, void)
                f_sum[row, col] += boundary_f(mask, gt, bound_th, void)
    columns = list(range(len(tracks))) + [len(tracks)] * paddings
    j_mean = j_sum[:, columns] / max(1, len(annotated))
    f_mean = f_sum[:, columns] / max(1, len(annotated))
    pairs = [(row, col) for row, col in max_weight_assignment((j_mean + f_mean) / 2) if col < len(tracks)]
    matches = {gt_ids[row]: tracks[col] for row, col in pairs}
    found = sum(1 for row, col in pairs if j_mean[row, col] > 0)
    first = buffered[0][0].index if buffered else 0

    def renamed() -> Iterator[FramePrediction]:
        for frame, packed, track_ms, prompt_ms, boxes in buffered:
            masks = {gt_id: _unpack(packed[t], frame.size) for gt_id, t in matches.items() if t in packed}
            if boxes is not None:  # a track's predicted box belongs to the object it stands for
                boxes = {gt_id: boxes[t] for gt_id, t in matches.items() if t in boxes}
            yield FramePrediction(frame, masks, tuple(gt_ids) if frame.index == first else (), track_ms, prompt_ms,
                                  predicted_boxes=boxes)

    result = score_predictions(sequence, renamed(), bound_th, worst_k, every_annotated_frame=True)
    result.matches = matches
    result.discovery = DiscoveryCounts(
        found=found, missed=len(gt_ids) - found, spurious=len(tracks) - found, tracks=len(tracks)
    )
    return result


def evaluate_sequence(
    runner: Runner,
    sequence: Sequence,
    prompt_kind: PromptKind,
    bound_th: float = DEFAULT_BOUND_TH,
    worst_k: int = 8,
    progress: Callable[[int], object] | None = None,
) -> SequenceResult:
    """Run the runner over the sequence and score it (``score_auto`` for ``PromptKind.AUTO``)."""
    if PromptKind(prompt_kind) is PromptKind.AUTO:
        return score_auto(
            sequence, runner.run(sequence, PromptKind.AUTO), bound_th=bound_th, worst_k=worst_k, progress=progress
        )
    return score_predictions(
        sequence, runner.run(sequence, PromptKind(prompt_kind)), bound_th=bound_th, worst_k=worst_k, progress=progress
    )
