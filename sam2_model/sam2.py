"""The SAM 2 model: its modules (named as in official checkpoints) and the computations the
image predictor and the streaming tracker compose.

The official ``SAM2Base`` mixes these computations with the video predictor's bookkeeping;
here the model only computes, on batches of objects, and the tracker owns all state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .common import MLP
from .config import ModelConfig
from .image_encoder import build_image_encoder
from .mask_decoder import MaskDecoder
from .memory_attention import MemoryAttention, MemoryAttentionLayer
from .memory_encoder import CXBlock, Fuser, MaskDownSampler, MemoryEncoder
from .position_encoding import SinePositionEncoding
from .prompt_encoder import LABEL_PADDING, PromptEncoder
from .transformer import RoPEAttention, TwoWayTransformer

# Logit given to every pixel of an object judged absent (official NO_OBJ_SCORE).
NO_OBJECT_LOGIT = -1024.0
# A mask prompt used directly as output becomes logits of +10 inside / -10 outside.
MASK_AS_OUTPUT_SCALE, MASK_AS_OUTPUT_BIAS = 20.0, -10.0


@dataclass
class FrameFeatures:
    """Image-encoder output of one frame (or a batch of frames)."""

    image_embed: torch.Tensor        # [B, C, h, w]: stride-16 features
    image_pos: torch.Tensor          # [B, C, h, w]: their sine position encoding
    high_res: List[torch.Tensor]     # stride-4 and stride-8 maps after conv_s0 / conv_s1 (may be empty)

    def expand(self, batch: int) -> "FrameFeatures":
        """The same single-frame features seen by ``batch`` objects (no copy)."""
        grow = lambda t: t.expand(batch, *t.shape[1:])  # noqa: E731
        return FrameFeatures(grow(self.image_embed), grow(self.image_pos), [grow(t) for t in self.high_res])


@dataclass
class MaskPrediction:
    """One decoder pass for B objects, after SAM 2's selection and object-score gating."""

    low_res_masks: torch.Tensor        # [B, 1, S/4, S/4] chosen mask logits
    high_res_masks: torch.Tensor       # [B, 1, S, S] the same, upsampled to the model size
    iou_scores: torch.Tensor           # [B] predicted IoU of the chosen mask
    obj_ptr: torch.Tensor              # [B, C] object pointer
    object_score_logits: torch.Tensor  # [B, 1]
    # Every candidate the decoder made, before the choice and before absent objects are blanked
    # (what training supervises; None where no decoder mask was made).
    candidate_logits: Optional[torch.Tensor] = None  # [B, M, S/4, S/4]
    candidate_ious: Optional[torch.Tensor] = None    # [B, M]
    # The chosen mask and pointer as they were before an absent object was blanked (the robust
    # policy's reacquire may take an object the model scored just below present).
    unblanked_low_res: Optional[torch.Tensor] = None  # [B, 1, S/4, S/4]
    ungated_obj_ptr: Optional[torch.Tensor] = None    # [B, C]


@dataclass
class MemoryBatch:
    """Memory tokens of B objects, padded to one length so they attend in one pass.

    Layout of each row: ``num_frames`` spatial memories of ``h*w`` tokens each, then
    ``num_pointer_tokens`` object-pointer tokens. ``valid`` marks real (not padding) tokens.
    """

    tokens: torch.Tensor       # [B, L, mem_dim]
    positions: torch.Tensor    # [B, L, mem_dim]
    valid: Optional[torch.Tensor]  # [B, L] bool, None when nothing is padded
    num_pointer_tokens: int

    @property
    def layout(self) -> tuple:
        """What batches must share to attend in one pass: length, pointer tokens, padding, dtype."""
        return self.tokens.shape[1], self.num_pointer_tokens, self.valid is None, self.tokens.dtype

    @staticmethod
    def join(batches: Sequence["MemoryBatch"]) -> "MemoryBatch":
        """Batches of one ``layout`` as one (rows in order)."""
        if len({b.layout for b in batches}) != 1:
            raise ValueError("memory batches of different layouts cannot be joined")
        valid = None if batches[0].valid is None else torch.cat([b.valid for b in batches])
        return MemoryBatch(torch.cat([b.tokens for b in batches]), torch.cat([b.positions for b in batches]),
                           valid, batches[0].num_pointer_tokens)


def sine_encoding_1d(positions: torch.Tensor, dim: int, temperature: float = 10000.0) -> torch.Tensor:
    """1-D sine/cosine encoding (sines then cosines) of ``positions`` -> ``[..., dim]``."""
    half = dim // 2
    index = torch.arange(half, dtype=torch.float32, device=positions.device)
    freqs = temperature ** (2 * torch.div(index, 2, rounding_mode="floor") / half)
    angles = positions.unsqueeze(-1) / freqs
    return torch.cat((angles.sin(), angles.cos()), dim=-1)


class SAM2Model(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        config.validate()
        self.config = config
        hidden = config.hidden_dim
        mem_dim = config.memory_dim
        self.hidden_dim = hidden
        self.mem_dim = mem_dim
        self.image_size = config.image_size
        self.embedding_size = config.image_size // config.backbone_stride

        self.image_encoder = build_image_encoder(config.trunk, config.neck, config.scalp)
        if config.compile_image_encoder:
            # As official SAM2Base: the first forward pass compiles (slow), later ones run the graph.
            self.image_encoder.compile(mode="max-autotune", fullgraph=True, dynamic=False)
        self.memory_attention = self._build_memory_attention(config)
        self.memory_encoder = self._build_memory_encoder(config)
        self.sam_prompt_encoder = PromptEncoder(hidden, (self.embedding_size, self.embedding_size),
                                                (config.image_size, config.image_size), mask_in_chans=16)
        self.sam_mask_decoder = MaskDecoder(
            transformer_dim=hidden,
            transformer=TwoWayTransformer(depth=2, embedding_dim=hidden, num_heads=8, mlp_dim=2048),
            num_multimask_outputs=3, iou_head_depth=3, iou_head_hidden_dim=256,
            use_high_res_features=config.use_high_res_features_in_sam,
            iou_prediction_use_sigmoid=config.iou_prediction_use_sigmoid,
            dynamic_multimask_via_stability=config.dynamic_multimask_via_stability,
            dynamic_multimask_stability_delta=config.dynamic_multimask_stability_delta,
            dynamic_multimask_stability_thresh=config.dynamic_multimask_stability_thresh,
            pred_obj_scores=config.pred_obj_scores, pred_obj_scores_mlp=config.pred_obj_scores_mlp,
            use_multimask_token_for_obj_ptr=config.use_multimask_token_for_obj_ptr,
        )

        if config.use_obj_ptrs_in_encoder:
            # Turns a mask prompt (used as output directly) into a decoder mask input.
            self.mask_downsample = nn.Conv2d(1, 1, kernel_size=4, stride=4)
            self.obj_ptr_proj = MLP(hidden, hidden, hidden, 3) if config.use_mlp_for_obj_ptr_proj \
                else nn.Linear(hidden, hidden)
        else:
            self.obj_ptr_proj = nn.Identity()
        self.obj_ptr_tpos_proj = nn.Linear(hidden, mem_dim) if config.proj_tpos_enc_in_obj_ptrs else nn.Identity()

        self.maskmem_tpos_enc = nn.Parameter(torch.zeros(config.num_maskmem, 1, 1, mem_dim))
        self.no_mem_embed = nn.Parameter(torch.zeros(1, 1, hidden))
        self.no_mem_pos_enc = nn.Parameter(torch.zeros(1, 1, hidden))
        trainable = [self.maskmem_tpos_enc, self.no_mem_embed, self.no_mem_pos_enc]
        if config.pred_obj_scores and config.use_obj_ptrs_in_encoder:
            self.no_obj_ptr = nn.Parameter(torch.zeros(1, hidden))
            trainable.append(self.no_obj_ptr)
        else:
            self.no_obj_ptr = None
        if config.no_obj_embed_spatial:
            self.no_obj_embed_spatial = nn.Parameter(torch.zeros(1, mem_dim))
            trainable.append(self.no_obj_embed_spatial)
        else:
            self.no_obj_embed_spatial = None
        for parameter in trainable:
            nn.init.trunc_normal_(parameter, std=0.02)

    # ------------------------------------------------------------------ construction
    @staticmethod
    def _build_memory_attention(config: ModelConfig) -> MemoryAttention:
        settings = config.memory_attention

        def rope_attention(attention) -> RoPEAttention:
            return RoPEAttention(attention.embedding_dim, attention.num_heads,
                                 downsample_rate=attention.downsample_rate, dropout=attention.dropout,
                                 kv_in_dim=attention.kv_in_dim, rope_theta=attention.rope_theta,
                                 rope_k_repeat=attention.rope_k_repeat, feat_sizes=tuple(attention.feat_sizes))

        layers = nn.ModuleList(
            MemoryAttentionLayer(settings.d_model, settings.dim_feedforward, rope_attention(settings.self_attention),
                                 rope_attention(settings.cross_attention), activation=settings.activation,
                                 dropout=settings.dropout, pos_enc_at_attn=settings.pos_enc_at_attn,
                                 pos_enc_at_cross_attn_keys=settings.pos_enc_at_cross_attn_keys,
                                 pos_enc_at_cross_attn_queries=settings.pos_enc_at_cross_attn_queries)
            for _ in range(settings.num_layers))
        return MemoryAttention(settings.d_model, layers, pos_enc_at_input=settings.pos_enc_at_input)

    @staticmethod
    def _build_memory_encoder(config: ModelConfig) -> MemoryEncoder:
        s = config.memory_encoder
        downsampler = MaskDownSampler(s.downsampler_embed_dim, s.downsampler_kernel_size, s.downsampler_stride,
                                      s.downsampler_padding, s.downsampler_total_stride)
        fuser = Fuser(nn.ModuleList(
            CXBlock(s.fuser_dim, s.fuser_kernel_size, s.fuser_padding, s.fuser_layer_scale_init_value,
                    s.fuser_use_dwconv) for _ in range(s.fuser_num_layers)),
            input_projection_dim=s.fuser_dim if s.fuser_input_projection else None)
        position = SinePositionEncoding(s.position_num_feats, s.position_temperature, s.position_normalize,
                                        s.position_scale)
        return MemoryEncoder(s.out_dim, downsampler, fuser, position, in_dim=s.in_dim)

    # ------------------------------------------------------------------ image
    @property
    def device(self) -> torch.device:
        return self.no_mem_embed.device

    def encode_image(self, images: torch.Tensor) -> FrameFeatures:
        """``images`` ``[B, 3, S, S]``, already normalised (see ``transforms.preprocess``)."""
        features = self.image_encoder(images)
        maps = list(features.feature_maps)
        positions = list(features.positions)
        high_res: List[torch.Tensor] = []
        if self.config.use_high_res_features_in_sam:
            high_res = [self.sam_mask_decoder.conv_s0(maps[0]), self.sam_mask_decoder.conv_s1(maps[1])]
        return FrameFeatures(maps[-1], positions[-1].to(maps[-1].dtype), high_res)

    # ------------------------------------------------------------------ prompts -> masks
    def use_multimask(self, is_initial_conditioning_frame: bool, num_points: int) -> bool:
        """SAM 2's rule for asking the decoder for three candidate masks."""
        config = self.config
        return (config.multimask_output_in_sam
                and (is_initial_conditioning_frame or config.multimask_output_for_tracking)
                and config.multimask_min_pt_num <= num_points <= config.multimask_max_pt_num)

    def predict_masks(self, image_embed: torch.Tensor, high_res: List[torch.Tensor],
                      coords: Optional[torch.Tensor] = None, labels: Optional[torch.Tensor] = None,
                      mask_input: Optional[torch.Tensor] = None, multimask: bool = False,
                      choose: Optional[Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = None) -> MaskPrediction:
        """Decode masks for B objects. ``coords`` ``[B, N, 2]`` in model-input pixels, ``labels`` ``[B, N]``,
        ``mask_input`` ``[B, 1, H, W]`` logits (resized to the prompt encoder's size if needed).
        ``choose``: with ``multimask``, which candidate each object keeps, from the candidates' logits
        ``[B, M, h, w]`` (before an absent object is blanked) and predicted IoUs ``[B, M]`` (default:
        the highest predicted IoU, SAM 2's rule)."""
        batch = image_embed.shape[0]
        device = image_embed.device
        if coords is None:
            coords = torch.zeros(batch, 1, 2, device=device)
            labels = torch.full((batch, 1), LABEL_PADDING, dtype=torch.int32, device=device)
        mask_prompt = None
        if mask_input is not None:
            mask_prompt = mask_input.float()
            if tuple(mask_prompt.shape[-2:]) != self.sam_prompt_encoder.mask_input_size:
                mask_prompt = F.interpolate(mask_prompt, size=self.sam_prompt_encoder.mask_input_size,
                                            mode="bilinear", align_corners=False, antialias=True)
            mask_prompt = mask_prompt.to(image_embed.dtype)
        sparse, dense = self.sam_prompt_encoder(coords, labels, mask_prompt)
        decoded = self.sam_mask_decoder(image_embed, self.sam_prompt_encoder.dense_positional_encoding(),
                                        sparse.to(image_embed.dtype), dense.to(image_embed.dtype), multimask,
                                        high_res)
        object_scores = decoded.object_score_logits
        all_masks = decoded.mask_logits
        candidates = all_masks.float()
        if self.config.pred_obj_scores:
            all_masks = torch.where((object_scores > 0)[:, :, None, None], all_masks, NO_OBJECT_LOGIT)
        all_masks = all_masks.float()
        all_iou = decoded.iou_scores.float()
        token = decoded.mask_tokens[:, 0]
        if multimask:
            best = all_iou.argmax(dim=-1) if choose is None else choose(candidates, all_iou)
            rows = torch.arange(batch, device=device)
            low_res = all_masks[rows, best].unsqueeze(1)
            unblanked = candidates[rows, best].unsqueeze(1)
            iou = all_iou[rows, best]
            if decoded.mask_tokens.shape[1] > 1:
                token = decoded.mask_tokens[rows, best]
        else:
            low_res, unblanked, iou = all_masks, candidates, all_iou[:, 0]
        high_res_masks = F.interpolate(low_res, size=(self.image_size, self.image_size), mode="bilinear",
                                       align_corners=False)
        ungated_ptr = self.obj_ptr_proj(token)
        obj_ptr = self._gate_pointer(ungated_ptr, object_scores)
        return MaskPrediction(low_res, high_res_masks, iou, obj_ptr, object_scores, candidates, all_iou, unblanked,
                              ungated_ptr)

    def absent_pointer(self, obj_ptr: torch.Tensor) -> torch.Tensor:
        """The pointer an object judged absent gets, from the pointer ``predict_masks`` gave it as
        present (exact for the hard presence gate of every released config; with
        ``soft_no_obj_ptr`` the present pointer's own blend stays in)."""
        absent = torch.full((obj_ptr.shape[0], 1), -1.0, device=obj_ptr.device, dtype=obj_ptr.dtype)
        return self._gate_pointer(obj_ptr, absent)

    def _gate_pointer(self, obj_ptr: torch.Tensor, object_score_logits: torch.Tensor) -> torch.Tensor:
        """Blend absent objects' pointers towards the learned "no object" pointer."""
        if not self.config.pred_obj_scores or self.no_obj_ptr is None:
            return obj_ptr
        if self.config.soft_no_obj_ptr:
            presence = object_score_logits.sigmoid()
        else:
            presence = (object_score_logits > 0).to(obj_ptr.dtype)
        if self.config.fixed_no_obj_ptr:
            obj_ptr = presence * obj_ptr
        return obj_ptr + (1 - presence) * self.no_obj_ptr

    def mask_as_output(self, image_embed: torch.Tensor, high_res: List[torch.Tensor],
                       mask: torch.Tensor) -> MaskPrediction:
        """Take a mask prompt ``[B, 1, S, S]`` (0/1 at the model size) as the output itself.

        SAM 2 does this for mask prompts: the logits are the mask scaled to +/-10; the decoder
        only runs (on the raw image features, with the mask as its mask input) to give an
        object pointer.
        """
        mask = mask.float()
        high_res_masks = mask * MASK_AS_OUTPUT_SCALE + MASK_AS_OUTPUT_BIAS
        low_res = F.interpolate(high_res_masks, size=(mask.shape[-2] // 4, mask.shape[-1] // 4),
                                mode="bilinear", align_corners=False, antialias=True)
        batch = mask.shape[0]
        if self.config.use_obj_ptrs_in_encoder:
            obj_ptr = self.predict_masks(image_embed, high_res, mask_input=self.mask_downsample(mask)).obj_ptr
        else:
            obj_ptr = torch.zeros(batch, self.hidden_dim, device=mask.device)
        present = mask.flatten(1).gt(0).any(dim=1, keepdim=True).float()
        object_scores = MASK_AS_OUTPUT_SCALE * present + MASK_AS_OUTPUT_BIAS
        if self.config.pred_obj_scores and self.no_obj_ptr is not None:
            if self.config.fixed_no_obj_ptr:
                obj_ptr = present * obj_ptr
            obj_ptr = obj_ptr + (1 - present) * self.no_obj_ptr
        return MaskPrediction(low_res, high_res_masks, torch.ones(batch, device=mask.device), obj_ptr, object_scores)

    # ------------------------------------------------------------------ memory
    def features_without_memory(self, image_embed: torch.Tensor, image_pos: torch.Tensor) -> torch.Tensor:
        """Features of a frame where the object has no memory yet (its first prompt)."""
        if self.config.directly_add_no_mem_embed:
            return image_embed + self.no_mem_embed.reshape(1, -1, 1, 1).to(image_embed.dtype)
        batch = image_embed.shape[0]
        memory = self.no_mem_embed.expand(batch, 1, -1)
        positions = self.no_mem_pos_enc.expand(batch, 1, -1)
        return self.attend_to_memory(image_embed, image_pos, MemoryBatch(memory, positions, None, 0))

    def attend_to_memory(self, image_embed: torch.Tensor, image_pos: torch.Tensor,
                         memory: MemoryBatch, rows_per_frame: Optional[Sequence[int]] = None) -> torch.Tensor:
        """Memory attention for B objects: ``[B, C, h, w]`` in, conditioned ``[B, C, h, w]`` out.

        ``image_embed``/``image_pos`` may also be one frame ``[1, C, h, w]`` seen by all B objects of
        ``memory``: the work that depends on the frame alone (the first self-attention) is then done once.
        Or F frames ``[F, C, h, w]`` (several streams' frames), frame f seen by the next
        ``rows_per_frame[f]`` rows of ``memory``.
        """
        _, channels, height, width = image_embed.shape
        batch = memory.tokens.shape[0]
        current = image_embed.flatten(2).transpose(1, 2)
        current_pos = image_pos.flatten(2).transpose(1, 2).to(current.dtype)
        out = self.memory_attention(current, current_pos, memory.tokens.to(current.dtype),
                                    memory.positions.to(current.dtype), memory.num_pointer_tokens, memory.valid,
                                    rows_per_frame)
        return out.transpose(1, 2).reshape(batch, channels, height, width)

    def pointer_temporal_encoding(self, relative_positions: torch.Tensor, max_distance: int) -> torch.Tensor:
        """Temporal encoding of object pointers ``[P] -> [P, mem_dim]`` (zeros when disabled)."""
        if not self.config.add_tpos_enc_to_obj_ptrs:
            return torch.zeros(relative_positions.shape[0], self.mem_dim, device=relative_positions.device)
        dim = self.hidden_dim if self.config.proj_tpos_enc_in_obj_ptrs else self.mem_dim
        encoding = sine_encoding_1d(relative_positions.float() / max_distance, dim)
        return self.obj_ptr_tpos_proj(encoding)

    def split_pointer(self, pointers: torch.Tensor) -> torch.Tensor:
        """``[..., P, C]`` -> ``[..., P * C/mem_dim, mem_dim]``: a pointer becomes several memory tokens."""
        if self.mem_dim == self.hidden_dim:
            return pointers
        return pointers.reshape(*pointers.shape[:-2], -1, self.mem_dim)

    @property
    def tokens_per_pointer(self) -> int:
        return self.hidden_dim // self.mem_dim

    def memory_temporal_encoding(self, frames_back: int) -> torch.Tensor:
        """Learned encoding of a memory ``frames_back`` frames old (0 for conditioning frames)."""
        return self.maskmem_tpos_enc[frames_back].reshape(1, -1)

    def encode_memory(self, image_embed: torch.Tensor, high_res_mask_logits: torch.Tensor,
                      object_score_logits: torch.Tensor, binarize: torch.Tensor):
        """Memory features ``[B, mem_dim, h, w]`` and positions from raw frame features and masks.

        ``binarize`` ``[B]`` bool: masks that came from prompts are thresholded at 0 rather than
        passed through a sigmoid (official ``binarize_mask_from_pts_for_mem_enc``).
        """
        config = self.config
        mask = torch.sigmoid(high_res_mask_logits)
        if config.binarize_mask_from_pts_for_mem_enc:
            mask = torch.where(binarize[:, None, None, None], (high_res_mask_logits > 0).float(), mask)
        if config.sigmoid_scale_for_mem_enc != 1.0:
            mask = mask * config.sigmoid_scale_for_mem_enc
        if config.sigmoid_bias_for_mem_enc != 0.0:
            mask = mask + config.sigmoid_bias_for_mem_enc
        features, positions = self.memory_encoder(image_embed, mask.to(image_embed.dtype))
        if self.no_obj_embed_spatial is not None:
            absent = (object_score_logits <= 0).to(features.dtype)  # [B, 1]
            features = features + absent[:, :, None, None] * self.no_obj_embed_spatial[:, :, None, None].to(
                features.dtype).expand_as(features)
        return features, positions

    def encode_prompted_memory(self, image_embed: torch.Tensor, low_res_mask_logits: torch.Tensor,
                               object_score_logits: torch.Tensor):
        """``encode_memory`` for masks that came from prompts: as the official video predictor
        does on prompted frames, the low-resolution logits are upsampled to the model size and
        binarised (not the decoder's own high-resolution masks)."""
        high_res = F.interpolate(low_res_mask_logits.to(image_embed.dtype), size=(self.image_size,) * 2,
                                 mode="bilinear", align_corners=False)
        binarize = torch.ones(len(high_res), dtype=torch.bool, device=high_res.device)
        return self.encode_memory(image_embed, high_res, object_score_logits, binarize)

    @property
    def max_pointer_distance(self) -> int:
        """Object pointers come from at most this many frames back (15 for released models)."""
        return self.config.max_obj_ptrs_in_encoder - 1

    def extra_repr(self) -> str:
        return f"image_size={self.image_size}, hidden_dim={self.hidden_dim}, mem_dim={self.mem_dim}"

