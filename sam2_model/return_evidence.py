"""Evidence about a re-appearance for the robust policy's return checks (issue 25, round 9):
``robust_step.apply_robust_policy`` calls ``covered_shares`` once per frame for all objects
(``return_onto_other``), ``robust_memory.judge`` calls ``box_iou`` (``confirmed_return``).

Why: round 8 (docs/benchmarks.md) found that 14 of 32 switch onsets on dev 0-39 are re-appearances
of a hidden object onto another tracked object, most with a low object score, while a gate on the
score alone (``return_gate``) also refused true returns, each of them again on every frame. Two
narrower cues: a look-alike flickers where a true return persists (``confirmed_return`` waits for a
second frame that agrees with the first), and a look-alike taken for the target usually lies on
another object the tracker follows (``return_onto_other`` asks for a higher score there only).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boxes ``(x0, y0, x1, y1)`` (pixel edges); 0 for empty boxes."""
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(width, 0.0) * max(height, 0.0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def covered_shares(logits: torch.Tensor, object_scores: torch.Tensor, established: Sequence[bool]) -> torch.Tensor:
    """``[N]``: the share of each object's mask (``logits`` ``[N, 1, h, w]`` > 0) that the masks of
    the *other established* objects cover on the same frame: those accepted as visible on the
    frame before (``established``) and called visible now (object-score logit > 0). An object
    that is itself returning is no one's reference, so two returns never refuse each other. 0 for
    an empty mask. One pass for all objects, on the logits' device."""
    mask = logits[:, 0] > 0                                        # [N, h, w]
    anchors = torch.tensor(list(established), dtype=torch.bool, device=logits.device)
    anchors = anchors & (object_scores.reshape(-1) > 0)
    anchor_masks = mask & anchors[:, None, None]
    # Cells covered by an established object other than the row itself: all of them, less its own.
    others = anchor_masks.sum(dim=0, dtype=torch.int32)[None] - anchor_masks.int()
    covered = (mask & (others > 0)).flatten(1).sum(dim=1).float()
    return covered / mask.flatten(1).sum(dim=1).clamp(min=1).float()
