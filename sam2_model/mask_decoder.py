"""SAM 2's mask decoder: the two-way transformer plus mask, IoU and object-score heads."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch
from torch import nn

from .common import MLP, LayerNorm2d
from .transformer import TwoWayTransformer


@dataclass
class DecoderOutput:
    """What one decoder pass produces for a batch of B prompts.

    ``mask_logits`` holds 3 candidates when multimask output was asked, else 1.
    ``mask_tokens`` are the output tokens of those masks (the object pointer comes from one).
    """

    mask_logits: torch.Tensor          # [B, M, 4h, 4w]
    iou_scores: torch.Tensor           # [B, M]
    mask_tokens: torch.Tensor          # [B, M, C]
    object_score_logits: torch.Tensor  # [B, 1]


def _full_precision(reference: torch.Tensor):
    """Disable autocast on ``reference``'s device (a no-op context when autocast is off)."""
    return torch.autocast(device_type=reference.device.type, enabled=False)


class MaskDecoder(nn.Module):
    def __init__(self, transformer_dim: int, transformer: TwoWayTransformer, num_multimask_outputs: int = 3,
                 iou_head_depth: int = 3, iou_head_hidden_dim: int = 256, use_high_res_features: bool = False,
                 iou_prediction_use_sigmoid: bool = False, dynamic_multimask_via_stability: bool = False,
                 dynamic_multimask_stability_delta: float = 0.05, dynamic_multimask_stability_thresh: float = 0.98,
                 pred_obj_scores: bool = False, pred_obj_scores_mlp: bool = False,
                 use_multimask_token_for_obj_ptr: bool = False):
        super().__init__()
        self.transformer = transformer
        self.num_mask_tokens = num_multimask_outputs + 1  # token 0: single-mask output
        self.iou_token = nn.Embedding(1, transformer_dim)
        self.mask_tokens = nn.Embedding(self.num_mask_tokens, transformer_dim)
        self.pred_obj_scores = pred_obj_scores
        if pred_obj_scores:
            self.obj_score_token = nn.Embedding(1, transformer_dim)
            self.pred_obj_score_head = (MLP(transformer_dim, transformer_dim, 1, 3) if pred_obj_scores_mlp
                                        else nn.Linear(transformer_dim, 1))
        self.use_multimask_token_for_obj_ptr = use_multimask_token_for_obj_ptr
        self.output_upscaling = nn.Sequential(
            nn.ConvTranspose2d(transformer_dim, transformer_dim // 4, kernel_size=2, stride=2),
            LayerNorm2d(transformer_dim // 4),
            nn.GELU(),
            nn.ConvTranspose2d(transformer_dim // 4, transformer_dim // 8, kernel_size=2, stride=2),
            nn.GELU(),
        )
        self.use_high_res_features = use_high_res_features
        if use_high_res_features:
            # Project the stride-4 and stride-8 backbone maps; applied once per image by the model.
            self.conv_s0 = nn.Conv2d(transformer_dim, transformer_dim // 8, kernel_size=1)
            self.conv_s1 = nn.Conv2d(transformer_dim, transformer_dim // 4, kernel_size=1)
        self.output_hypernetworks_mlps = nn.ModuleList(
            MLP(transformer_dim, transformer_dim, transformer_dim // 8, 3) for _ in range(self.num_mask_tokens)
        )
        self.iou_prediction_head = MLP(transformer_dim, iou_head_hidden_dim, self.num_mask_tokens, iou_head_depth,
                                       sigmoid_output=iou_prediction_use_sigmoid)
        self.dynamic_multimask_via_stability = dynamic_multimask_via_stability
        self.stability_delta = dynamic_multimask_stability_delta
        self.stability_thresh = dynamic_multimask_stability_thresh

    def forward(self, image_embeddings: torch.Tensor, image_pe: torch.Tensor, sparse_prompt_embeddings: torch.Tensor,
                dense_prompt_embeddings: torch.Tensor, multimask_output: bool,
                high_res_features: Optional[Sequence[torch.Tensor]] = None) -> DecoderOutput:
        """``image_embeddings`` ``[B, C, h, w]`` (one per prompt), ``image_pe`` ``[1, C, h, w]``."""
        all_masks, all_iou, all_tokens, object_scores = self._predict_all_masks(
            image_embeddings, image_pe, sparse_prompt_embeddings, dense_prompt_embeddings, high_res_features)
        if multimask_output:
            masks, iou = all_masks[:, 1:], all_iou[:, 1:]
        elif self.dynamic_multimask_via_stability and not self.training:
            masks, iou = self._single_or_best_multimask(all_masks, all_iou)
        else:
            masks, iou = all_masks[:, :1], all_iou[:, :1]
        if multimask_output and self.use_multimask_token_for_obj_ptr:
            tokens = all_tokens[:, 1:]
        else:
            tokens = all_tokens[:, :1]
        return DecoderOutput(masks, iou, tokens, object_scores)

    def _predict_all_masks(self, image_embeddings, image_pe, sparse, dense, high_res_features):
        learned = [self.iou_token.weight, self.mask_tokens.weight]
        if self.pred_obj_scores:
            learned.insert(0, self.obj_score_token.weight)
        output_tokens = torch.cat(learned, dim=0).unsqueeze(0).expand(sparse.shape[0], -1, -1)
        tokens = torch.cat((output_tokens, sparse), dim=1)

        src = image_embeddings + dense
        batch, channels, height, width = src.shape
        pos = image_pe.expand(batch, -1, -1, -1)
        hidden, src = self.transformer(src, pos, tokens)
        iou_token_index = 1 if self.pred_obj_scores else 0
        iou_token_out = hidden[:, iou_token_index]
        mask_tokens_out = hidden[:, iou_token_index + 1: iou_token_index + 1 + self.num_mask_tokens]

        src = src.transpose(1, 2).reshape(batch, channels, height, width)
        if self.use_high_res_features:
            deconv1, norm1, act1, deconv2, act2 = self.output_upscaling
            feat_s0, feat_s1 = high_res_features
            upscaled = act1(norm1(deconv1(src) + feat_s1))
            upscaled = act2(deconv2(upscaled) + feat_s0)
        else:
            upscaled = self.output_upscaling(src)

        # The heads are tiny next to the transformer, but their outputs are thresholded at 0 (mask
        # pixels, object presence): under reduced-precision autocast they run in float32.
        with _full_precision(upscaled):
            hyper_in = torch.stack(
                [mlp(mask_tokens_out[:, index].float()) for index, mlp in enumerate(self.output_hypernetworks_mlps)],
                dim=1)
            b, c, h, w = upscaled.shape
            masks = (hyper_in @ upscaled.float().reshape(b, c, h * w)).reshape(b, -1, h, w)
            iou_pred = self.iou_prediction_head(iou_token_out.float())
            if self.pred_obj_scores:
                object_scores = self.pred_obj_score_head(hidden[:, 0].float())
            else:
                # Without an object-score head the object is always taken as present.
                object_scores = 10.0 * iou_pred.new_ones(iou_pred.shape[0], 1)
        return masks, iou_pred, mask_tokens_out, object_scores

    def _stability(self, mask_logits: torch.Tensor) -> torch.Tensor:
        """IoU between the masks thresholded at +delta and -delta (1 for an empty union)."""
        flat = mask_logits.flatten(-2)
        inner = (flat > self.stability_delta).sum(-1).float()
        outer = (flat > -self.stability_delta).sum(-1).float()
        return torch.where(outer > 0, inner / outer, torch.ones_like(inner))

    def _single_or_best_multimask(self, all_masks: torch.Tensor, all_iou: torch.Tensor):
        """Keep the single-mask output where it is stable, else the best multimask candidate.

        SAM 2 uses this whenever it is asked for one mask: the single-mask token is
        unreliable for ambiguous prompts.
        """
        best = all_iou[:, 1:].argmax(dim=-1)
        rows = torch.arange(all_masks.shape[0], device=all_masks.device)
        best_masks = all_masks[:, 1:][rows, best].unsqueeze(1)
        best_iou = all_iou[:, 1:][rows, best].unsqueeze(1)
        single_masks, single_iou = all_masks[:, :1], all_iou[:, :1]
        stable = self._stability(single_masks) >= self.stability_thresh  # [B, 1]
        masks = torch.where(stable[..., None, None], single_masks, best_masks)
        iou = torch.where(stable, single_iou, best_iou)
        return masks, iou
