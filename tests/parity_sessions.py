"""Replaying reference sessions (official SAM 2 outputs, see ../shared/parity/README.md)."""

from __future__ import annotations

import io
import lzma
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List

import torch

import sam2_model

PARITY_DIR = Path(os.environ.get("SAM2_PARITY_DIR", Path(__file__).resolve().parents[2] / "shared" / "parity"))
STREAM_FILES = sorted(PARITY_DIR.glob("*_stream.pt"))
# More sessions made with the official predictor (tools/oracle), shipped with the tests.
EXTRA_SESSION_FILES = sorted((Path(__file__).resolve().parent / "data").glob("*.pt.xz"))
LOGIT_TOLERANCE = 1e-2
SCORE_TOLERANCE = 1e-2


def load_session(path: Path) -> Dict[str, Any]:
    if path.suffix == ".xz":
        with lzma.open(path, "rb") as handle:
            return torch.load(io.BytesIO(handle.read()), weights_only=True)
    return torch.load(path, weights_only=True)


def build_session_model(session: Dict[str, Any]) -> sam2_model.SAM2Model:
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as handle:
        handle.write(session["resolved_config_yaml"])
        config_path = handle.name
    try:
        return sam2_model.build_model(config_path, {"model": session["state_dict"]})
    finally:
        os.unlink(config_path)


# The official predictor's options (as recorded in a session) -> our TrackerOptions names.
OFFICIAL_OPTION_NAMES = {"fill_hole_area": "fill_hole_area", "non_overlap_masks": "non_overlap_masks",
                         "add_all_frames_to_correct_as_cond": "corrections_as_cond",
                         "clear_non_cond_mem_around_input": "clear_non_cond_mem_around_input"}


def make_tracker(session: Dict[str, Any], model=None, **explicit) -> sam2_model.StreamingTracker:
    """A tracker with nothing but the session's model: its options come from the model's YAML,
    which carries the official predictor's settings; they must equal those the session records."""
    tracker = sam2_model.StreamingTracker(model if model is not None else build_session_model(session), **explicit)
    if not explicit:
        for official, ours in OFFICIAL_OPTION_NAMES.items():
            if official in session["predictor_options"]:
                assert getattr(tracker.options, ours) == session["predictor_options"][official], ours
    return tracker


def apply_event(tracker: sam2_model.StreamingTracker, frames: torch.Tensor, event: Dict[str, Any]):
    """Run one session event; returns the tracker's result for it (None for removals)."""
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
    event_index: int
    event: Dict[str, Any]
    max_logit_diff: float
    max_score_diff: float
    same_ids: bool
    same_presence: bool


def compare(result, expected: Dict[str, Any], event_index: int, event: Dict[str, Any]) -> Comparison:
    ids = list(expected["obj_ids"])
    same_ids = list(result.obj_ids) == ids
    exp_scores = expected["object_score_logits"].reshape(-1)
    exp_logits = expected["low_res_logits"]
    max_logit, max_score, same_presence = 0.0, 0.0, True
    if same_ids:
        for row in range(len(ids)):
            if math.isnan(float(exp_scores[row])):
                continue
            ours_score = float(result.object_score_logits[row])
            max_score = max(max_score, abs(ours_score - float(exp_scores[row])))
            same_presence &= (ours_score > 0) == (float(exp_scores[row]) > 0)
            diff = (result.low_res_logits[row].float() - exp_logits[row].float()).abs().max().item()
            max_logit = max(max_logit, diff)
    return Comparison(event_index, event, max_logit, max_score, same_ids, same_presence)


def replay(session: Dict[str, Any], tracker=None) -> List[Comparison]:
    tracker = tracker or make_tracker(session)
    frames = session["frames"]
    comparisons = []
    for index, (event, expected) in enumerate(zip(session["events"], session["outputs"])):
        result = apply_event(tracker, frames, event)
        comparisons.append(compare(result, expected, index, event))
    return comparisons
