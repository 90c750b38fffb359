"""Tracking a generated video the way the default-model tests need it."""

from __future__ import annotations

from typing import List

from sam2_model import StreamingTracker
from sam2_model.tracker import TrackingResult
from sam2_model.train.procedural import ProceduralVideo


def track_prompted_by_first_masks(tracker: StreamingTracker, video: ProceduralVideo) -> List[TrackingResult]:
    """Every frame's result; each target is prompted with its true mask on frame 0 (after that
    frame is tracked, as sam2-eval prompts)."""
    results = []
    for index, frame in enumerate(video.frames):
        result = tracker.track(frame)
        if index == 0:
            for obj_id in range(1, video.num_targets + 1):
                result = tracker.add_prompt(obj_id, mask=video.labels[0] == obj_id)
        results.append(result)
    return results
