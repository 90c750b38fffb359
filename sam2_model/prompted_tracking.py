"""Tracking a generated video prompted the way sam2-eval prompts: each target's true mask on frame 0.

Used by the GPU check (``sam2_ros.device_check``) and the default-model and bf16 tests.
"""

from __future__ import annotations

from typing import List, Optional

from .tracker import StreamingTracker, TrackingResult
from .train.procedural import ProceduralVideo


def track_prompted_by_first_masks(tracker: StreamingTracker, video: ProceduralVideo,
                                  frames: Optional[int] = None) -> List[TrackingResult]:
    """Every frame's result (the first ``frames``, or all); each target is prompted with its true
    mask on frame 0, after that frame is tracked."""
    results = []
    for index, frame in enumerate(video.frames[:frames or None]):
        result = tracker.track(frame)
        if index == 0:
            for obj_id in range(1, video.num_targets + 1):
                result = tracker.add_prompt(obj_id, mask=video.labels[0] == obj_id)
        results.append(result)
    return results
