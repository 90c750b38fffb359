"""SAM 2's training losses: focal + dice on masks, L1 on predicted IoU, BCE on object scores.

Weights are those of the official SAM 2.1 training recipe (mask 20, dice 1, IoU 1, object
score 1). After an ambiguous prompt (one click) only the best of the candidate masks (lowest
focal + dice) is trained on the mask, as in SAM: the others stay free to cover other plausible
readings of the click. On tracked frames there is nothing ambiguous (memory defines the
object), so every candidate is trained on it: with the best-of-three rule there, a small
model learns to propose three salient objects instead of learning to read its memory (we saw
this on the generator: identical masks for every object after 1,250 steps). Every
candidate's IoU prediction is supervised.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class LossWeights:
    mask_focal: float = 20.0
    dice: float = 1.0
    iou: float = 1.0
    object_score: float = 1.0
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0


@dataclass
class LossTerms:
    """Sums over supervised predictions; ``total`` is what is backpropagated."""

    focal: torch.Tensor
    dice: torch.Tensor
    iou: torch.Tensor
    object_score: torch.Tensor
    total: torch.Tensor

    def as_floats(self) -> dict:
        return {name: float(getattr(self, name).detach()) for name in ("total", "focal", "dice", "iou", "object_score")}


def focal_loss(logits: torch.Tensor, target: torch.Tensor, alpha: float, gamma: float) -> torch.Tensor:
    """Mean sigmoid focal loss per mask: ``[..., H, W]`` -> ``[...]``."""
    probability = logits.sigmoid()
    cross_entropy = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_true = probability * target + (1 - probability) * (1 - target)
    loss = cross_entropy * (1 - p_true) ** gamma
    if alpha >= 0:
        loss = (alpha * target + (1 - alpha) * (1 - target)) * loss
    return loss.flatten(-2).mean(-1)


def dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Soft dice loss per mask: ``[..., H, W]`` -> ``[...]``."""
    probability = logits.sigmoid().flatten(-2)
    target = target.flatten(-2)
    numerator = 2 * (probability * target).sum(-1)
    denominator = probability.sum(-1) + target.sum(-1)
    return 1 - (numerator + 1) / (denominator + 1)


def mask_iou(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """IoU of the binarised logits with the target, per mask (no gradient).

    Not ``mask_geometry.mask_iou``: this one scores a whole batch ``[..., H, W]`` of logits at
    once on the training device (the IoU head's target and validation's J), where a numpy
    round trip per mask would stall the GPU; the empty-union convention (1.0) is the same."""
    predicted = (logits > 0).flatten(-2)
    truth = target.bool().flatten(-2)
    intersection = (predicted & truth).sum(-1).float()
    union = (predicted | truth).sum(-1).float()
    return torch.where(union > 0, intersection / union.clamp(min=1), torch.ones_like(union))


def prediction_losses(candidate_logits: torch.Tensor, candidate_ious: torch.Tensor,
                      object_score_logits: torch.Tensor, target: torch.Tensor,
                      weights: LossWeights = LossWeights(), ambiguous: bool = True) -> LossTerms:
    """Losses of one decoder pass for B objects.

    ``candidate_logits`` ``[B, M, h, w]`` (upsampled here to the target's size), ``candidate_ious``
    ``[B, M]``, ``object_score_logits`` ``[B, 1]``, ``target`` ``[B, H, W]`` float 0/1. Mask and
    IoU terms count only for objects present in the target, as upstream. ``ambiguous``: train
    only the best candidate's mask (else all candidates, averaged).
    """
    size = tuple(target.shape[-2:])
    logits = candidate_logits.float()
    if tuple(logits.shape[-2:]) != size:
        logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
    target = target.float()
    expanded = target[:, None].expand_as(logits)
    focal = focal_loss(logits, expanded, weights.focal_alpha, weights.focal_gamma)   # [B, M]
    dice = dice_loss(logits, expanded)                                              # [B, M]
    best = (focal * weights.mask_focal + dice).argmin(dim=1)
    rows = torch.arange(logits.shape[0], device=logits.device)
    present = target.flatten(1).any(dim=1).float()                                  # [B]
    with torch.no_grad():
        actual_iou = mask_iou(logits, expanded)
    iou = (candidate_ious.float() - actual_iou).abs().mean(dim=1)
    score = F.binary_cross_entropy_with_logits(object_score_logits.float().reshape(-1), present, reduction="none")
    if ambiguous:
        focal_per_object, dice_per_object = focal[rows, best], dice[rows, best]
    else:
        focal_per_object, dice_per_object = focal.mean(dim=1), dice.mean(dim=1)
    focal_sum = (focal_per_object * present).sum()
    dice_sum = (dice_per_object * present).sum()
    iou_sum = (iou * present).sum()
    score_sum = score.sum()
    total = (weights.mask_focal * focal_sum + weights.dice * dice_sum + weights.iou * iou_sum
             + weights.object_score * score_sum)
    return LossTerms(focal_sum, dice_sum, iou_sum, score_sum, total)


def add_terms(a: LossTerms, b: LossTerms) -> LossTerms:
    return LossTerms(a.focal + b.focal, a.dice + b.dice, a.iou + b.iou, a.object_score + b.object_score,
                     a.total + b.total)

