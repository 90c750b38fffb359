"""The robust memory policy's per-object state and decisions; ``StreamingTracker`` calls it once
per frame for all objects when ``memory_policy`` is ``robust``.

Per object (``RobustObjectState``, kept on the object's ``ObjectMemory``, so it is removed with
the object and reset with the tracker): a constant-velocity Kalman filter on the mask's box, how
many frames the object has been hidden, and the box predicted for the current frame. Each frame,
``decide`` turns the model's output for the object into a ``Decision``: whether its mask is
accepted as the object (the motion gate may refuse a re-appearance far from the predicted box),
whether the frame enters memory (the memory gate), and the box predicted while it is hidden.

Boxes are ``(x0, y0, x1, y1)`` in the model's low-resolution mask grid (pixel edges: a mask
covering columns 3..5 spans x0 = 3, x1 = 6). The decisions are plain numpy on a few numbers per
object: the tracker brings every object's box, score and IoU to the host in one copy.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np
import torch

from .appearance_memory import AppearanceMemory
from .colour_check import as_shown, colour_distance, unclipped
from .redetect import ClickSearch
from .return_evidence import box_iou
from .robust_options import RobustMemoryOptions

STATE_SIZE = 8  # cx, cy, w, h and their velocities
MEASURED = 4    # cx, cy, w, h
MIN_SIZE = 1.0  # grid cells: the noise scales never reach zero for a tiny box


class BoxKalman:
    """Constant-velocity Kalman filter on a box's centre and size (SORT-like, noise scaled by the
    box's size so that one setting fits objects of every size)."""

    def __init__(self, box: np.ndarray, process_noise: float, measurement_noise: float):
        self.process_noise = process_noise
        self.measurement_noise = measurement_noise
        self.state = np.zeros(STATE_SIZE)
        self.state[:MEASURED] = _centre_size(box)
        size = self._size()
        # The first box is measured; the velocity is unknown (a box size per frame, one sigma).
        self.covariance = np.diag([(measurement_noise * size) ** 2] * MEASURED + [size ** 2] * MEASURED)
        self.transition = np.eye(STATE_SIZE)
        self.transition[:MEASURED, MEASURED:] = np.eye(MEASURED)
        self.observation = np.eye(MEASURED, STATE_SIZE)

    def _size(self) -> float:
        return max(MIN_SIZE, float(self.state[2]), float(self.state[3]))

    def predict(self, velocity_decay: float = 1.0) -> np.ndarray:
        """Advance one frame; the predicted box. ``velocity_decay`` < 1 first scales the velocities
        (centre and size) by that factor, with their uncertainty: a damped motion, for an object not
        seen for a while."""
        if velocity_decay != 1.0:
            damping = np.diag([1.0] * MEASURED + [velocity_decay] * MEASURED)
            self.state = damping @ self.state
            self.covariance = damping @ self.covariance @ damping.T
        size = self._size()
        q = (self.process_noise * size) ** 2
        self.state = self.transition @ self.state
        self.covariance = self.transition @ self.covariance @ self.transition.T + np.diag(
            [q] * MEASURED + [q] * MEASURED)
        self.state[2:4] = np.maximum(self.state[2:4], 0.0)  # a size never goes negative
        return self.box()

    def update(self, box: np.ndarray) -> None:
        """Correct with a measured box (after ``predict`` for this frame)."""
        size = self._size()
        noise = np.eye(MEASURED) * (self.measurement_noise * size) ** 2
        residual = _centre_size(box) - self.observation @ self.state
        innovation = self.observation @ self.covariance @ self.observation.T + noise
        gain = self.covariance @ self.observation.T @ np.linalg.inv(innovation)
        self.state = self.state + gain @ residual
        self.covariance = (np.eye(STATE_SIZE) - gain @ self.observation) @ self.covariance

    def peek(self) -> np.ndarray:
        """The box ``predict`` would give, without advancing the filter."""
        cx, cy, w, h = (self.transition @ self.state)[:MEASURED]
        w, h = max(w, 0.0), max(h, 0.0)
        return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])

    def box(self) -> np.ndarray:
        cx, cy, w, h = self.state[:MEASURED]
        return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])

    @property
    def velocity(self) -> np.ndarray:
        return self.state[MEASURED:MEASURED + 2].copy()


def _centre_size(box: np.ndarray) -> np.ndarray:
    x0, y0, x1, y1 = (float(v) for v in box)
    return np.array([(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0])


@dataclass
class Unblanked:
    """The mask the model chose for an object it scored absent, before SAM 2 blanked it (reacquire)."""

    box: Optional[np.ndarray]      # None: that mask is empty too
    colour: Optional[np.ndarray]   # mean RGB under it; None where it is empty
    on_edge: bool = False          # its box touches the mask grid's edge
    area: Optional[float] = None   # its cells in the mask grid (None: not counted)


@dataclass
class Observation:
    """The model's output for one object on one frame."""

    visible: bool                 # object-score logit > 0
    box: Optional[np.ndarray]     # mask box in the grid; None when the mask is empty
    iou: float
    object_score: float
    covered: float = 0.0          # share of the mask on other tracked objects' masks (return_onto_other)
    colour: Optional[np.ndarray] = None  # mean RGB (0-255) under the mask (colour_check); None: not measured
    unblanked: Optional[Unblanked] = None  # reacquire: the mask before an absent object was blanked
    on_edge: bool = False         # the mask's box touches the mask grid's edge (the frame's edge)
    area: Optional[float] = None  # the mask's cells in the grid (steady_size: how well it fills its box;
    #                               None: not counted, the box is taken as it is)
    colour_ceiling: float = math.inf  # exposure: the brightest channel value this frame can show, in
    #                                   the remembered colours' units (colour_check.ExposureReference)

    @property
    def measured_colour(self) -> Optional[np.ndarray]:
        """The mask's mean colour, or None where none was measured or the mask was empty (NaN)."""
        if self.colour is None or not np.all(np.isfinite(self.colour)):
            return None
        return self.colour


@dataclass
class Decision:
    accepted: bool                # the output stays as the model made it (False: marked not visible)
    admitted: bool                # the frame enters the object's memory
    predicted_box: Optional[np.ndarray]  # while not visible: where the filter expects the object
    confident: bool = False       # appearance memory: accepted, admitted and of good quality
    reacquired: bool = False      # reacquire: the output is the unblanked mask, taken as the object
    redetected: bool = False      # redetect: the output is the mask decoded from a click, taken as the object
    shown: bool = False           # reacquire_shown: the output is the unblanked mask; state and memory as absent


@dataclass
class RobustObjectState:
    """The robust policy's memory of one object (bounded: a fixed handful of numbers)."""

    kalman: Optional[BoxKalman] = None
    frames_hidden: int = 0              # frames since the object was last accepted as visible
    last_size: float = 0.0              # larger side of the last accepted box
    steady_size: float = 0.0            # steady_size: largest side seen lately (decays per accepted frame)
    last_on_edge: bool = False          # the last accepted box touched the frame's edge (it may have left)
    last_box: Optional[np.ndarray] = None  # the last accepted box
    predicted_box: Optional[np.ndarray] = None  # for the current frame, while not visible
    needs_prompt_box: bool = True       # (re)start the filter from the prompt's mask on the next frame
    appearance: Optional[AppearanceMemory] = None  # with the appearance_memory component
    pending_box: Optional[np.ndarray] = None  # confirmed_return: the box of a withheld return, one frame
    colour: Optional[np.ndarray] = None  # colour_check: remembered mean RGB; None until a confident frame
    # appearance_until_scored: accepted since it was last lost only where the model scored it absent
    # (reacquired or redetected), so its appearance memory stays lent.
    taken_back: bool = False

    def restart_from_prompt(self) -> None:
        """A prompt defines the object again: the filter restarts from the prompted mask, and the
        appearance memory from nothing (the prompt may correct a drift the old looks followed)."""
        self.kalman = None
        self.frames_hidden = 0
        self.predicted_box = None
        self.needs_prompt_box = True
        self.pending_box = None
        self.steady_size = 0.0
        self.colour = None
        self.taken_back = False
        if self.appearance is not None:
            self.appearance.clear()

    def expected_region(self, margin: float) -> Optional[np.ndarray]:
        """Where the object is expected on the coming frame (component gate): the box that holds
        the filter's prediction and the last accepted box, grown by ``margin`` times the last
        box's larger side. None while the object is hidden (a re-appearance is the motion gate's
        question) or before any box."""
        if self.hidden or self.last_box is None:
            return None
        boxes = [self.last_box] + ([self.kalman.peek()] if self.kalman is not None else [])
        low, high = np.min([b[:2] for b in boxes], axis=0), np.max([b[2:] for b in boxes], axis=0)
        grow = margin * self.last_size
        return np.concatenate([low - grow, high + grow])

    @property
    def hidden(self) -> bool:
        """The last frame did not accept the object as visible."""
        return self.frames_hidden > 0

    @property
    def lends_appearance(self) -> bool:
        """The appearance memory takes the oldest places of the recent window on the next frame: the
        object is hidden, or (appearance_until_scored) only the policy has taken it back since."""
        return self.hidden or self.taken_back

    def start(self, box: Optional[np.ndarray], options: RobustMemoryOptions, on_edge: bool = False,
              attended: Optional[int] = None) -> None:
        """Start the filter from the prompted frame's mask box (nothing when it is empty;
        ``on_edge``: that box touches the frame's edge). ``attended``: how many appearance memories
        the tracker attends to (``appearance_memory.attended_places``); no more are kept."""
        self.needs_prompt_box = False
        if options.appearance_memory and self.appearance is None:
            slots = options.appearance_slots if attended is None else min(options.appearance_slots, attended)
            self.appearance = AppearanceMemory(slots, options.appearance_interval)
        if box is not None and options.kalman:
            self.kalman = BoxKalman(box, options.process_noise, options.measurement_noise)
            self._accept_box(box, options, on_edge)

    def _accept_box(self, box: np.ndarray, options: RobustMemoryOptions, on_edge: bool,
                    area: Optional[float] = None) -> None:
        """Remember an accepted box (``area``: its mask's cells; None: not counted, trusted)."""
        self.last_on_edge = on_edge
        self.last_size = _larger_side(box)
        self.steady_size *= options.size_decay
        # A mask scattered over a large box (stray cells far apart: seen on dev, a 35 x 38 cell
        # box around a few cells of an object 11 cells across) says nothing of the object's size.
        if area is None or area >= options.size_min_fill * _box_area(box):
            self.steady_size = max(self.steady_size, self.last_size)
        self.last_box = np.asarray(box, float)

    def gate_size(self, options: RobustMemoryOptions) -> float:
        """The gates' unit of distance: the last accepted box's larger side, or with steady_size
        the largest side seen lately (an object sliding behind an occluder or out of the frame
        shrinks to a sliver on its last frames; its true size is what bounds where it returns)."""
        return self.steady_size if options.steady_size else self.last_size


def _box_area(box: np.ndarray) -> float:
    return float(box[2] - box[0]) * float(box[3] - box[1])


def _larger_side(box: np.ndarray) -> float:
    return max(MIN_SIZE, float(box[2] - box[0]), float(box[3] - box[1]))


def gate_limit(frames_hidden: int, options: RobustMemoryOptions) -> float:
    """How far (in box sizes) a re-appearance may lie from the predicted centre."""
    return options.gate_distance + options.gate_growth * frames_hidden


@dataclass
class Verdict:
    """What the gates made of one object's frame, before the object's state changes (``judge``)."""

    seen: Observation     # the observation judged: the model's, or the mask taken in its place
    visible: bool         # accepted as the object
    rejected: bool        # refused by a gate (or withheld): the tracker marks the output not visible
    withheld: bool        # confirmed_return: neither output nor remembered until the next frame agrees
    reacquired: bool = False  # the unblanked mask taken as the object
    redetected: bool = False  # redetect: the mask decoded from a click taken as the object
    cut: bool = False         # colour_cut: the refused mask's cells in the object's colour taken as the object
    shown: bool = False       # reacquire_shown: the unblanked mask shown, the frame remembered as absent


def advance(state: RobustObjectState, options: RobustMemoryOptions) -> Optional[np.ndarray]:
    """The object's predicted box on the new frame (its filter advanced one frame); None
    without a filter. While the object has not been accepted for a frame or more, its velocity decays
    by ``hidden_velocity_decay`` per frame (1: constant velocity)."""
    if state.kalman is None:
        return None
    return state.kalman.predict(options.hidden_velocity_decay if state.frames_hidden > 0 else 1.0)


def decide(state: RobustObjectState, seen: Observation, options: RobustMemoryOptions) -> Decision:
    """One object's frame under the robust policy; advances its filter and hidden count."""
    predicted = advance(state, options)
    return settle(state, judge(state, seen, predicted, options), predicted, options)


def judge(state: RobustObjectState, seen: Observation, predicted: Optional[np.ndarray],
          options: RobustMemoryOptions) -> Verdict:
    """The gates' verdict on one object's frame (``predicted``: ``advance``'s box). Changes nothing."""
    # Reacquire's tests on the unblanked mask other than its score bar are asked once: reacquire takes
    # the mask at its bar; below it, reacquire_shown shows it (down to its own bar) if every gate would
    # accept it.
    fits = reacquired = False
    if options.reacquire and not seen.visible:
        bar = _reacquire_min_score(state, seen, options)
        lowest = min(bar, options.shown_min_score) if options.reacquire_shown else bar
        fits = (seen.object_score >= lowest
                and _reacquirable(state, seen.unblanked, predicted, options, seen.colour_ceiling))
        reacquired = fits and seen.object_score >= bar
    if reacquired:  # from here on the unblanked mask is the frame's observation, and every gate applies
        seen = _unblanked_as_seen(seen)
    elif fits and _gated(state, _unblanked_as_seen(seen), predicted, options) == (True, False):
        # Shown, not learnt: the object stays hidden for its state and memory (the model's own absent frame).
        return Verdict(seen, visible=False, rejected=False, withheld=False, shown=True)
    visible, withheld = _gated(state, seen, predicted, options)
    rejected = (seen.visible and seen.box is not None and not visible) or withheld
    return Verdict(seen, visible, rejected, withheld, reacquired=reacquired and visible)


def _unblanked_as_seen(seen: Observation) -> Observation:
    """The observation with the frame's unblanked mask in place of the model's blanked one."""
    return dataclasses.replace(seen, visible=True, box=seen.unblanked.box, colour=seen.unblanked.colour,
                               on_edge=seen.unblanked.on_edge, area=seen.unblanked.area)


def judge_redetection(state: RobustObjectState, verdict: Verdict, candidate: Optional[Observation],
                      predicted: Optional[np.ndarray], options: RobustMemoryOptions) -> Verdict:
    """Redetect: where the verdict leaves the object not visible, the mask decoded from a click
    (``candidate``) taken in its place if the model scores it present (object-score logit at least
    ``redetect_min_score``), it passes reacquire's tests (colour, reach, size, edge) and every
    gate; else the verdict as it was."""
    if (verdict.visible or verdict.withheld or candidate is None or not candidate.visible
            or candidate.object_score < options.redetect_min_score):
        return verdict
    found = Unblanked(candidate.box, candidate.measured_colour, candidate.on_edge, candidate.area)
    if not _reacquirable(state, found, predicted, options, candidate.colour_ceiling):
        return verdict
    seen = dataclasses.replace(verdict.seen, visible=True, box=candidate.box, iou=candidate.iou,
                               object_score=candidate.object_score, colour=candidate.colour,
                               on_edge=candidate.on_edge, area=candidate.area)
    visible, withheld = _gated(state, seen, predicted, options)
    if not visible or withheld:
        return verdict
    return Verdict(seen, visible=True, rejected=False, withheld=False, redetected=True)


def judge_cut(state: RobustObjectState, verdict: Verdict, cut: Optional[Observation],
              predicted: Optional[np.ndarray], options: RobustMemoryOptions) -> Verdict:
    """Colour cut: where a gate refused the model's visible mask, its part in the object's colour
    (``cut``: that mask cut by ``colour_cut.cut_to_colour``, the model's score and IoU) taken in its
    place if it keeps at least ``cut_min_cells`` cells and every gate accepts it; else the verdict as
    it was."""
    if (not verdict.rejected or verdict.withheld or cut is None or not cut.visible or cut.box is None
            or cut.area is None or cut.area < options.cut_min_cells):
        return verdict
    judged = judge(state, cut, predicted, options)
    if not judged.visible:
        return verdict
    return dataclasses.replace(judged, cut=True)


def click_search(state: RobustObjectState, predicted: np.ndarray, options: RobustMemoryOptions,
                 colour_ceiling: float = math.inf) -> ClickSearch:
    """Redetect: where to look for a lost object's colour (as a frame clipping at ``colour_ceiling``
    shows it): near its predicted centre (and, with last_seen, the centre where it was last
    accepted), within reacquire's reach."""
    boxes = [predicted] + ([state.last_box] if options.last_seen and state.last_box is not None else [])
    centres = [(float(x), float(y)) for x, y in (_centre_size(box)[:2] for box in boxes)]
    return ClickSearch(as_shown(state.colour, colour_ceiling), centres,
                       options.reacquire_gate * state.gate_size(options))


def _gated(state: RobustObjectState, seen: Observation, predicted: Optional[np.ndarray],
           options: RobustMemoryOptions) -> Tuple[bool, bool]:
    """Whether the gates accept ``seen`` as the object, and whether confirmed_return withholds it."""
    visible = seen.visible and seen.box is not None
    reappearing = state.frames_hidden > 0
    if visible and predicted is not None and ((options.motion_gate and reappearing) or options.jump_gate):
        visible = _within_gate(state, seen.box, predicted, options)
    if visible and reappearing and options.return_gate and seen.object_score < options.return_min_score:
        # A hesitant return: on the dev set mostly the mask taking another object for the target.
        visible = False
    if (visible and reappearing and options.return_onto_other and seen.covered >= options.onto_other_min_share
            and seen.object_score < options.onto_other_min_score):
        # Mostly on another tracked object's mask, and not sure of itself: a look-alike taken for it.
        visible = False
    if visible and reappearing and options.colour_check and _off_colour(state, seen, options.colour_max_distance,
                                                                       options):
        # Another colour than the object had: most often another target the mask took for it.
        visible = False
    if visible and not reappearing and options.colour_drift and _off_colour(state, seen, options.drift_max_distance,
                                                                           options):
        # The mask slid onto something of another colour: another object, or the background
        # around an object that has gone behind an occluder.
        visible = False
    withheld = visible and reappearing and options.confirmed_return and _unconfirmed(state, seen, options)
    return visible and not withheld, withheld


def settle(state: RobustObjectState, verdict: Verdict, predicted: Optional[np.ndarray],
           options: RobustMemoryOptions) -> Decision:
    """Apply a verdict to the object's state (filter, hidden count, sizes, colour) and say what the
    tracker does with the frame."""
    seen, visible, withheld = verdict.seen, verdict.visible, verdict.withheld
    state.pending_box = np.asarray(seen.box, float) if withheld else None
    if visible:
        if state.kalman is not None:
            state.kalman.update(seen.box)
        elif options.kalman:
            state.kalman = BoxKalman(seen.box, options.process_noise, options.measurement_noise)
        state.frames_hidden = 0
        # The model itself still scores the object absent: the window holds mostly absent frames.
        state.taken_back = options.appearance_until_scored and (verdict.reacquired or verdict.redetected)
        state._accept_box(seen.box, options, seen.on_edge, seen.area)
        state.predicted_box = None
    else:
        state.frames_hidden += 1
        # A shown frame's output is a mask, not a predicted box.
        state.predicted_box = None if verdict.shown else predicted
    # A refused re-appearance enters memory as an absent frame (the tracker re-marks it); a
    # visible frame of poor quality stays out; absent frames always enter (absence evidence).
    admitted = not withheld
    if visible and options.memory_gate:
        admitted = seen.iou >= options.min_iou and seen.object_score >= options.min_object_score
    # Appearance evidence only from frames where the object is plainly there: never a frame
    # judged absent or refused (those are the recent window's absence evidence), nor a mask the
    # policy found where the model saw nothing (redetect: a guess, however sure the decoder is of it),
    # nor a mask the policy cut to the object's colour (its colour is the remembered one by choice).
    plainly_there = (visible and admitted and not verdict.redetected and not verdict.cut
                     and seen.iou >= options.appearance_min_iou and seen.object_score >= options.appearance_min_score)
    confident = options.appearance_memory and plainly_there
    colour = seen.measured_colour
    if options.measures_colour and plainly_there and colour is not None:
        state.colour = _learned_colour(state.colour, colour, options, seen.colour_ceiling)
    return Decision(accepted=not verdict.rejected, admitted=admitted, predicted_box=state.predicted_box,
                    confident=confident, reacquired=verdict.reacquired, redetected=verdict.redetected,
                    shown=verdict.shown)


def _within_gate(state: RobustObjectState, box: np.ndarray, predicted: np.ndarray,
                 options: RobustMemoryOptions, limit: Optional[float] = None) -> bool:
    """The motion gate's test: the box's centre lies within ``limit`` (default ``gate_limit``) box
    sizes of the predicted centre (or of the last accepted one, with ``last_seen``)."""
    centre = _centre_size(box)[:2]
    distance = np.hypot(*(centre - _centre_size(predicted)[:2]))
    if options.last_seen and state.last_box is not None:
        distance = min(distance, np.hypot(*(centre - _centre_size(state.last_box)[:2])))
    if limit is None:
        limit = gate_limit(state.frames_hidden, options)
    return distance <= limit * state.gate_size(options)


def _reacquire_min_score(state: RobustObjectState, seen: Observation, options: RobustMemoryOptions) -> float:
    """Reacquire's least object score for the frame's unblanked mask: ``reacquire_min_score``, or
    with reacquire_close the lower ``reacquire_close_min_score`` for a mask within
    ``reacquire_close_max_distance`` of the object's colour (as the frame can show it)."""
    unblanked = seen.unblanked
    if options.reacquire_close and unblanked is not None:
        distance = _distance_from_remembered(state, unblanked.colour, seen.colour_ceiling)
        if distance is not None and distance <= options.reacquire_close_max_distance:
            return min(options.reacquire_min_score, options.reacquire_close_min_score)
    return options.reacquire_min_score


def _distance_from_remembered(state: RobustObjectState, colour: Optional[np.ndarray],
                              colour_ceiling: float = math.inf) -> Optional[float]:
    """The RGB distance of ``colour`` from the object's remembered colour as a frame clipping at
    ``colour_ceiling`` shows it; None while nothing is remembered or nothing was measured."""
    if state.colour is None or colour is None:
        return None
    return float(colour_distance(as_shown(state.colour, colour_ceiling), colour))


def _reacquirable(state: RobustObjectState, candidate: Optional[Unblanked], predicted: Optional[np.ndarray],
                  options: RobustMemoryOptions, colour_ceiling: float = math.inf) -> bool:
    """Reacquire (and redetect): a mask the model did not output as the object (unblanked, or
    decoded from a click) has the object's colour (as a frame clipping at ``colour_ceiling`` shows
    it) where the object can be."""
    if candidate is None or candidate.box is None or predicted is None:
        return False
    distance = _distance_from_remembered(state, candidate.colour, colour_ceiling)
    if distance is None or distance > options.reacquire_max_distance:
        return False
    if options.steady_size and _larger_side(candidate.box) > options.reacquire_max_growth * state.steady_size:
        # A hidden object does not come back at several times its size: such a mask (seen on
        # dev: one spread over the whole frame) is the background or something else of its colour.
        return False
    if options.edge_return and state.last_on_edge and not candidate.on_edge:
        # Last seen at the frame's edge, the object may have left the view: it comes back into
        # view across the edge, so a mask wholly inside the frame is something else.
        return False
    # No growth with time hidden (unlike the motion gate's): the longer the object is hidden, the
    # likelier a look-alike of its colour wanders within a growing reach.
    return _within_gate(state, candidate.box, predicted, options, options.reacquire_gate)


def _off_colour(state: RobustObjectState, seen: Observation, max_distance: float,
                options: RobustMemoryOptions) -> bool:
    """Colour check and drift: the mask's mean colour lies farther than ``max_distance`` (plus
    ``colour_score_allowance`` per unit of a positive object score) from the object's remembered
    colour as the frame can show it (never, while nothing is remembered or nothing measured)."""
    distance = _distance_from_remembered(state, seen.measured_colour, seen.colour_ceiling)
    if distance is None:
        return False
    return distance > max_distance + options.colour_score_allowance * max(0.0, seen.object_score)


def _learned_colour(remembered: Optional[np.ndarray], colour: np.ndarray, options: RobustMemoryOptions,
                    colour_ceiling: float = math.inf) -> np.ndarray:
    """The remembered colour after a confident frame of ``colour``: a moving average; with
    colour_anchor a frame far from the remembered colour is not learned (a mask that slid onto
    another object while called visible is often confident, and the average would follow it,
    so that the checks then guard the look-alike's colour). On a frame clipping at
    ``colour_ceiling`` (exposure) a clipped channel teaches no duller value."""
    if remembered is None:
        return colour
    shown = as_shown(remembered, colour_ceiling)
    if options.colour_anchor and colour_distance(shown, colour) > options.anchor_max_distance:
        return remembered
    colour = unclipped(colour, remembered, colour_ceiling)
    return (1 - options.colour_rate) * remembered + options.colour_rate * colour


def _unconfirmed(state: RobustObjectState, seen: Observation, options: RobustMemoryOptions) -> bool:
    """Confirmed return: a re-appearance below ``confirm_min_score`` that the frame before did not
    already show (a withheld box it overlaps by ``confirm_min_iou``) waits for the next frame."""
    if seen.object_score >= options.confirm_min_score:
        return False
    return state.pending_box is None or box_iou(state.pending_box, seen.box) < options.confirm_min_iou


def touches_edge(box: Optional[np.ndarray], grid_size: Tuple[int, int]) -> bool:
    """The box (x0, y0, x1, y1, pixel edges) reaches the edge of a grid of (height, width); an
    empty mask's (None) does not."""
    if box is None:
        return False
    height, width = grid_size
    return bool(box[0] <= 0 or box[1] <= 0 or box[2] >= width or box[3] >= height)


def mask_boxes(logits: torch.Tensor) -> torch.Tensor:
    """``[N, 1, h, w]`` logits -> ``[N, 6]``: the box (x0, y0, x1, y1, pixel edges) of each mask
    (logits > 0), 1 where the mask is not empty (else the box is zeros) and its cells. On the
    logits' device."""
    mask = logits[:, 0] > 0
    rows, cols = mask.any(dim=2), mask.any(dim=1)  # [N, h], [N, w]

    def span(occupied: torch.Tensor):
        positions = torch.arange(occupied.shape[1], device=occupied.device)
        first = torch.where(occupied, positions, occupied.shape[1]).amin(dim=1)
        last = torch.where(occupied, positions, -1).amax(dim=1) + 1
        return first, last

    x0, x1 = span(cols)
    y0, y1 = span(rows)
    present = rows.any(dim=1)
    boxes = torch.stack([x0, y0, x1, y1], dim=1) * present[:, None]
    return torch.cat([boxes.float(), present[:, None].float(), mask.sum(dim=(1, 2))[:, None].float()], dim=1)


def observations(prediction_logits: torch.Tensor, object_scores: torch.Tensor, ious: torch.Tensor,
                 covered: Optional[torch.Tensor] = None, colours: Optional[torch.Tensor] = None,
                 unblanked_logits: Optional[torch.Tensor] = None, unblanked_colours: Optional[torch.Tensor] = None,
                 colour_ceiling: Optional[torch.Tensor] = None) -> List[Observation]:
    """Every object's observation from one batched prediction, with one copy to the host
    (``covered``: ``[N]`` shares of each mask on other tracked objects, ``return_onto_other``;
    ``colours``: ``[N, 3]`` mean colours under the masks, ``colour_check``; ``unblanked_logits``
    ``[N, 1, h, w]`` and ``unblanked_colours`` ``[N, 3]``: the chosen masks before absent objects
    were blanked and their colours, ``reacquire``; ``colour_ceiling``: the frame's 0-dim brightest
    channel value, ``exposure``)."""
    count = object_scores.numel()
    device = object_scores.device
    if covered is None:
        covered = torch.zeros(count, device=device)
    measured = colours is not None
    if colours is None:
        colours = torch.zeros(count, 3, device=device)
    columns = [mask_boxes(prediction_logits), object_scores.reshape(-1, 1).float(), ious.reshape(-1, 1).float(),
               covered.reshape(-1, 1).float(), colours.reshape(-1, 3).float().to(device)]
    if unblanked_logits is not None:
        columns += [mask_boxes(unblanked_logits).to(device), unblanked_colours.reshape(-1, 3).float().to(device)]
    if colour_ceiling is not None:  # the last column
        columns.append(colour_ceiling.reshape(1, 1).float().to(device).expand(count, 1))
    numbers = torch.cat(columns, dim=1).cpu().numpy()
    grid_size = tuple(prediction_logits.shape[-2:])
    found = []
    for row in numbers:
        x0, y0, x1, y1, present, area, score, iou, share = row[:9]
        box = np.array([x0, y0, x1, y1]) if present else None
        unblanked = None
        if unblanked_logits is not None:  # its columns follow the chosen mask's 12
            ux0, uy0, ux1, uy1, unblanked_present, unblanked_area = row[12:18]
            unblanked_colour = row[18:21]
            unblanked_box = np.array([ux0, uy0, ux1, uy1]) if unblanked_present else None
            unblanked = Unblanked(unblanked_box, unblanked_colour if np.all(np.isfinite(unblanked_colour)) else None,
                                  touches_edge(unblanked_box, grid_size),
                                  float(unblanked_area))
        found.append(Observation(bool(score > 0), box, float(iou), float(score), float(share),
                                 np.array(row[9:12]) if measured else None, unblanked,
                                 touches_edge(box, grid_size), float(area),
                                 float(row[-1]) if colour_ceiling is not None else math.inf))
    return found

