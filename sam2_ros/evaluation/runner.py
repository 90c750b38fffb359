"""Runners turn a sequence of frames into per-frame predicted masks.

``Runner`` is the extension point between "where frames come from and where the
tracker runs" and scoring. ``InProcessRunner`` drives a ``sam2_model.StreamingTracker``
in this process. A live runner (play the bag into the running ROS node, prompt it
through its service, collect its mask topic) implements the same ``run`` method and
everything downstream (scoring, reports, the CLI) works unchanged.

Prompt policy, shared by every runner: an object is prompted on the first frame whose
ground truth contains it, right after that frame has been tracked, with the prompt
built by ``prompts.prompts_for_new_objects``. With ``PromptKind.AUTO`` no ground truth is
used: the runner's ``discoverer`` (the automatic mask generator and ``sam2_model.discovery``,
built in model.py) finds objects on the first frame, and every ``discover_every`` frames when
that is above 0, and they are tracked under their own ids 1, 2, ... (track ids, matched to the
ground-truth objects afterwards by ``scoring.score_auto``).

Under ``memory_policy="robust"`` a tracker result also carries, per object it reports not visible,
the box its motion filter predicts (``TrackingResult.predicted_boxes``); runners pass them on in
``FramePrediction.predicted_boxes`` for the predicted-box measure (``scoring.box_holds_centre``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from .prompts import PromptKind, prompts_for_new_objects
from .sequence import Frame, Sequence


@runtime_checkable
class TrackerLike(Protocol):
    """The part of ``sam2_model.StreamingTracker`` the in-process runner uses."""

    def track(self, frame: np.ndarray) -> Any: ...

    def add_prompt(
        self,
        obj_id: int,
        points: Any = None,
        labels: Any = None,
        box: Any = None,
        mask: Any = None,
        clear_old_points: bool = True,
    ) -> Any: ...


@dataclass(frozen=True)
class FramePrediction:
    """What a runner produced for one frame."""

    frame: Frame
    masks: dict[int, np.ndarray]  # obj_id -> HxW bool, every object tracked on this frame
    prompted: tuple[int, ...]  # objects whose first prompt was given on this frame
    track_ms: float  # tracking this frame until its masks were on the host
    prompt_ms: float  # the prompts given on this frame (0 when none)
    # The 3D positions (metres, camera frame) the tracker itself reported, by object (the live
    # node with use_depth; an object without one had no 3D); None: scoring computes them from the
    # masks as the node would (position_error.py).
    positions: dict[int, np.ndarray] | None = None
    # The boxes (x0, y0, x1, y1 in the frame's pixels) the tracker predicted for objects it reports
    # not visible, by object (only objects with a box); None: the tracker gives no boxes (memory_policy
    # official, or a runner that cannot see them).
    predicted_boxes: dict[int, tuple[float, float, float, float]] | None = None


# (frame image HxWx3 uint8, tracked masks [N, H, W] bool or None, most new objects or None)
#   -> the new objects' HxW bool masks, in the order to add them.
Discoverer = Callable[[np.ndarray, "np.ndarray | None", "int | None"], list[np.ndarray]]


class Runner(Protocol):
    """Produces one FramePrediction per frame of a sequence, in order."""

    description: str  # how the tracker ran, for the report ("in-process sam2_model on cpu", ...)

    def run(self, sequence: Sequence, prompt_kind: PromptKind) -> Iterator[FramePrediction]: ...


def masks_from_result(result: Any, size: tuple[int, int]) -> dict[int, np.ndarray]:
    """obj_id -> HxW bool numpy mask from a tracker result (``obj_ids`` + ``masks`` [N, H, W])."""
    obj_ids = [int(i) for i in result.obj_ids]
    masks = result.masks
    if hasattr(masks, "detach"):  # a torch tensor, maybe on an accelerator
        masks = masks.detach().to("cpu").numpy()
    masks = np.asarray(masks).astype(bool, copy=False)
    if masks.shape != (len(obj_ids), *size):
        raise RuntimeError(
            f"tracker returned masks of shape {masks.shape} for objects {obj_ids} "
            f"on a {size[1]}x{size[0]} frame; expected {(len(obj_ids), *size)}"
        )
    return {obj_id: masks[i] for i, obj_id in enumerate(obj_ids)}


def predicted_boxes_from_result(result: Any) -> dict[int, tuple[float, float, float, float]] | None:
    """obj_id -> predicted box (x0, y0, x1, y1, frame pixels) from a tracker result's
    ``predicted_boxes`` (a list aligned with ``obj_ids``, None where an object has no box); None
    when the result has none: the official policy, or a tracker stand-in without the attribute."""
    boxes = getattr(result, "predicted_boxes", None)
    if boxes is None:
        return None
    obj_ids = [int(i) for i in result.obj_ids]
    if len(boxes) != len(obj_ids):
        raise RuntimeError(f"tracker returned {len(boxes)} predicted boxes for objects {obj_ids}")
    return {obj_id: tuple(float(v) for v in box) for obj_id, box in zip(obj_ids, boxes) if box is not None}


class InProcessRunner:
    """Runs a fresh tracker from ``tracker_factory`` over each sequence in this process."""

    def __init__(
        self,
        tracker_factory: Callable[[], TrackerLike],
        description: str = "in-process tracker",
        synchronize: Callable[[], None] | None = None,
        discoverer: Discoverer | None = None,
        discover_every: int = 0,
    ) -> None:
        """Args:
            tracker_factory: makes a fresh tracker for each sequence.
            description: how the tracker runs, for the report.
            synchronize: waits for the device (None: nothing to wait for).
            discoverer: finds new objects on a frame, for ``PromptKind.AUTO`` (None: auto refused).
            discover_every: with AUTO, discover again every this many frames; 0 = first frame only.
        """
        if discover_every < 0:
            raise ValueError(f"discover_every must be >= 0 (0 = first frame only), got {discover_every}")
        self._tracker_factory = tracker_factory
        self._discoverer = discoverer
        self.discover_every = discover_every
        self.description = description
        # Converting masks to numpy already waits for the device; synchronize is for trackers
        # whose results stay lazy (kept optional so stubs need no torch).
        self._synchronize = synchronize or (lambda: None)

    def run(self, sequence: Sequence, prompt_kind: PromptKind) -> Iterator[FramePrediction]:
        """Track every frame; after each, prompt what the prompt kind asks for on it (the ground truth's
        new objects, or with AUTO the objects discovered on that frame), timed apart from tracking."""
        tracker = self._tracker_factory()
        if PromptKind(prompt_kind) is PromptKind.AUTO:
            new_prompts = self._discovered_prompts(tracker)
        else:
            new_prompts = self._ground_truth_prompts(PromptKind(prompt_kind), sequence.void_label)
        for position, frame in enumerate(sequence):
            start = time.perf_counter()
            result = tracker.track(frame.image)
            self._synchronize()
            masks = masks_from_result(result, frame.size)
            tracked = time.perf_counter()
            added: list[int] = []
            for obj_id, kwargs in new_prompts(position, frame, masks):
                result = tracker.add_prompt(obj_id, **kwargs)
                added.append(obj_id)
            if added:
                self._synchronize()
                masks = masks_from_result(result, frame.size)
            done = time.perf_counter()
            yield FramePrediction(
                frame=frame,
                masks=masks,
                prompted=tuple(added),
                track_ms=(tracked - start) * 1e3,
                prompt_ms=(done - tracked) * 1e3,
                predicted_boxes=predicted_boxes_from_result(result),
            )

    @staticmethod
    def _ground_truth_prompts(prompt_kind: PromptKind, void_label):
        """Each ground-truth object, prompted on the first frame it appears on."""
        prompted: set[int] = set()

        def on_frame(position, frame, masks):
            if frame.gt_labels is None:
                return
            for prompt in prompts_for_new_objects(frame.gt_labels, prompted, prompt_kind, void_label):
                prompted.add(prompt.obj_id)
                yield prompt.obj_id, prompt.tracker_kwargs()

        return on_frame

    def _discovered_prompts(self, tracker):
        """Objects discovered on the first frame (and every discover_every frames), by mask, with new ids."""
        if self._discoverer is None:
            raise ValueError("this runner has no discoverer: it cannot run --prompt auto")
        # The node leaves room for max_objects; stubs without options have no limit.
        max_objects = getattr(getattr(tracker, "options", None), "max_objects", None)
        next_id = [1]

        def on_frame(position, frame, masks):
            if not (position == 0 or (self.discover_every and position % self.discover_every == 0)):
                return
            current = np.stack(list(masks.values())) if masks else None
            room = None if max_objects is None else max(0, max_objects - len(masks))
            for mask in self._discoverer(frame.image, current, room):
                yield next_id[0], {"mask": mask}
                next_id[0] += 1

        return on_frame
