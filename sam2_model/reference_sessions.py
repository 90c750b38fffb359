"""Replaying reference sessions (official SAM 2 outputs) through the StreamingTracker.

A session file (format: ../shared/parity/README.md) holds a small official-format model, its frames,
a list of events (track a frame, prompt, remove an object) and the official video predictor's
output for each event. Used by the parity tests (tests/parity_sessions.py) and by the GPU check
(``sam2_ros.device_check``), which replays the same sessions on CUDA.
"""

from __future__ import annotations

import io
import lzma
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import torch

from .build import build_model
from .sam2 import SAM2Model
from .tracker import StreamingTracker, TrackingResult

# The bar of the parity data (README beside it): independent float32 code lands near 1e-4.
LOGIT_TOLERANCE = 1e-2
SCORE_TOLERANCE = 1e-2


def load_session(path: Union[str, os.PathLike]) -> Dict[str, Any]:
    """A session file, ``.pt`` or ``.pt.xz`` (tensors only: ``weights_only`` loading)."""
    path = Path(path)
    if path.suffix == ".xz":
        with lzma.open(path, "rb") as handle:
            return torch.load(io.BytesIO(handle.read()), weights_only=True)
    return torch.load(path, weights_only=True)


def build_session_model(session: Dict[str, Any], device: Union[str, torch.device] = "cpu") -> SAM2Model:
    """The session's model, from its official-format YAML and state_dict."""
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as handle:
        handle.write(session["resolved_config_yaml"])
        config_path = handle.name
    try:
        return build_model(config_path, {"model": session["state_dict"]}, device=device)
    finally:
        os.unlink(config_path)


# The official predictor's options (as a session records them) -> our TrackerOptions names.
OFFICIAL_OPTION_NAMES = {"fill_hole_area": "fill_hole_area", "non_overlap_masks": "non_overlap_masks",
                         "add_all_frames_to_correct_as_cond": "corrections_as_cond",
                         "clear_non_cond_mem_around_input": "clear_non_cond_mem_around_input"}


def make_tracker(session: Dict[str, Any], model: Optional[SAM2Model] = None, **explicit) -> StreamingTracker:
    """A tracker on the session's model (unless one is given) with nothing else: its options come from
    the model's YAML, which carries the official predictor's settings, and must equal those the session
    records. ``explicit`` options (e.g. to show that an option matters) skip that check."""
    tracker = StreamingTracker(model if model is not None else build_session_model(session), **explicit)
    if not explicit:
        recorded = session["predictor_options"]
        for official, ours in OFFICIAL_OPTION_NAMES.items():
            if official in recorded and getattr(tracker.options, ours) != recorded[official]:
                raise ValueError(f"the session's model YAML gives {ours}={getattr(tracker.options, ours)!r}, "
                                 f"but the session was recorded with {official}={recorded[official]!r}")
    return tracker


def apply_event(tracker: StreamingTracker, frames: torch.Tensor, event: Dict[str, Any]) -> Optional[TrackingResult]:
    """Run one session event; returns the tracker's result for it."""
    kind = event["type"]
    if kind == "track":
        return tracker.track(frames[event["frame"]].numpy())
    if kind == "remove":
        tracker.remove_object(event["obj_id"])
        return tracker.current_result()
    frame = event["frame"]
    while tracker.frame_index < frame:  # the frame the prompt is on arrives first
        tracker.track(frames[tracker.frame_index + 1].numpy())
    if kind == "points":
        return tracker.add_prompt(event["obj_id"], points=event.get("points"), labels=event.get("labels"),
                                  box=event.get("box"), clear_old_points=event.get("clear_old_points", True))
    if kind == "mask":
        return tracker.add_prompt(event["obj_id"], mask=event["mask"].numpy())
    raise ValueError(f"unknown event type {kind}")


@dataclass
class Comparison:
    """Our result for one event against the official one."""

    event_index: int
    event: Dict[str, Any]
    max_logit_diff: float
    max_score_diff: float
    same_ids: bool
    same_presence: bool

    @property
    def within_tolerance(self) -> bool:
        return (self.same_ids and self.same_presence and self.max_logit_diff <= LOGIT_TOLERANCE
                and self.max_score_diff <= SCORE_TOLERANCE)


def compare(result: TrackingResult, expected: Dict[str, Any], event_index: int, event: Dict[str, Any]) -> Comparison:
    ids = list(expected["obj_ids"])
    same_ids = list(result.obj_ids) == ids
    exp_scores = expected["object_score_logits"].reshape(-1)
    exp_logits = expected["low_res_logits"]
    max_logit, max_score, same_presence = 0.0, 0.0, True
    if same_ids:
        # The reference is on the CPU; the result may be on a GPU.
        ours_scores = result.object_score_logits.detach().float().cpu().reshape(-1)
        ours_logits = result.low_res_logits.detach().float().cpu()
        for row in range(len(ids)):
            if math.isnan(float(exp_scores[row])):
                continue
            ours_score = float(ours_scores[row])
            max_score = max(max_score, abs(ours_score - float(exp_scores[row])))
            same_presence &= (ours_score > 0) == (float(exp_scores[row]) > 0)
            diff = (ours_logits[row] - exp_logits[row].float()).abs().max().item()
            max_logit = max(max_logit, diff)
    return Comparison(event_index, event, max_logit, max_score, same_ids, same_presence)


def replay(session: Dict[str, Any], tracker: Optional[StreamingTracker] = None) -> List[Comparison]:
    """Every event of the session, each compared with the official output."""
    tracker = tracker or make_tracker(session)
    frames = session["frames"]
    comparisons = []
    for index, (event, expected) in enumerate(zip(session["events"], session["outputs"])):
        result = apply_event(tracker, frames, event)
        comparisons.append(compare(result, expected, index, event))
    return comparisons
