"""Memory attention: the current frame's features attend to past frames' memories.

Queries are the current frame's lowest-resolution image tokens; keys/values are the
stacked spatial memories of selected past frames followed by object-pointer tokens.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import nn

from .common import activation_by_name
from .transformer import RoPEAttention


class MemoryAttentionLayer(nn.Module):
    """Pre-norm layer: RoPE self-attention, RoPE cross-attention to memory, feed-forward."""

    def __init__(self, d_model: int, dim_feedforward: int, self_attention: RoPEAttention,
                 cross_attention: RoPEAttention, activation: str = "relu", dropout: float = 0.1,
                 pos_enc_at_attn: bool = False, pos_enc_at_cross_attn_keys: bool = True,
                 pos_enc_at_cross_attn_queries: bool = False):
        super().__init__()
        self.self_attn = self_attention
        self.cross_attn_image = cross_attention
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm3 = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)
        self.activation = activation_by_name(activation)
        self.pos_enc_at_attn = pos_enc_at_attn
        self.pos_enc_at_cross_attn_keys = pos_enc_at_cross_attn_keys
        self.pos_enc_at_cross_attn_queries = pos_enc_at_cross_attn_queries

    def forward(self, tgt: torch.Tensor, memory: torch.Tensor, memory_pos: torch.Tensor, query_pos: torch.Tensor,
                num_k_exclude_rope: int, memory_mask: Optional[torch.Tensor]) -> torch.Tensor:
        tgt = self.attend_self(tgt, query_pos)
        tgt = self.attend_memory(tgt, memory, memory_pos, query_pos, num_k_exclude_rope, memory_mask)
        return self.feed_forward(tgt)

    def attend_self(self, tgt: torch.Tensor, query_pos: torch.Tensor) -> torch.Tensor:
        """Self-attention among the current frame's tokens (with the residual)."""
        normed = self.norm1(tgt)
        q = normed + query_pos if self.pos_enc_at_attn else normed
        return tgt + self.dropout1(self.self_attn(q, q, normed))

    def attend_memory(self, tgt: torch.Tensor, memory: torch.Tensor, memory_pos: torch.Tensor,
                      query_pos: torch.Tensor, num_k_exclude_rope: int,
                      memory_mask: Optional[torch.Tensor]) -> torch.Tensor:
        """Cross-attention from the current frame's tokens to the memory tokens (with the residual)."""
        normed = self.norm2(tgt)
        q = normed + query_pos if self.pos_enc_at_cross_attn_queries else normed
        k = memory + memory_pos if self.pos_enc_at_cross_attn_keys else memory
        return tgt + self.dropout2(self.cross_attn_image(q, k, memory, num_k_exclude_rope=num_k_exclude_rope,
                                                         key_mask=memory_mask))

    def feed_forward(self, tgt: torch.Tensor) -> torch.Tensor:
        normed = self.norm3(tgt)
        return tgt + self.dropout3(self.linear2(self.dropout(self.activation(self.linear1(normed)))))


class MemoryAttention(nn.Module):
    def __init__(self, d_model: int, layers: nn.ModuleList, pos_enc_at_input: bool = True):
        super().__init__()
        self.layers = layers
        self.norm = nn.LayerNorm(d_model)
        self.pos_enc_at_input = pos_enc_at_input

    def forward(self, current: torch.Tensor, current_pos: torch.Tensor, memory: torch.Tensor,
                memory_pos: torch.Tensor, num_obj_ptr_tokens: int = 0,
                memory_mask: Optional[torch.Tensor] = None,
                rows_per_frame: Optional[Sequence[int]] = None) -> torch.Tensor:
        """Batch-first tensors: ``memory``/``memory_pos`` ``[B, L, mem_dim]``, ``memory_mask`` ``[B, L]``
        (True = real), ``current``/``current_pos`` ``[B, HW, C]``, or ``[1, HW, C]`` when all B objects
        see the same frame: the first layer's self-attention, which sees only the current frame's
        tokens, is then computed once and shared (the same numbers as computing it B times).
        ``rows_per_frame``: ``current`` holds F frames ``[F, HW, C]`` (several streams' frames), frame
        f seen by the next ``rows_per_frame[f]`` memory rows; each frame's self-attention once.
        Returns ``[B, HW, C]``."""
        batch = memory.shape[0]
        if current_pos.shape[0] != current.shape[0]:
            raise ValueError(f"current tokens of batch {current.shape[0]} with positions of batch "
                             f"{current_pos.shape[0]}")
        if rows_per_frame is None:
            if current.shape[0] not in (1, batch):
                raise ValueError(f"current tokens of batch {current.shape[0]} for memories of batch {batch}: "
                                 "give one row per object, or one shared row")
            spread = lambda rows: rows.expand(batch, -1, -1)  # noqa: E731
        else:
            if len(rows_per_frame) != current.shape[0] or sum(rows_per_frame) != batch:
                raise ValueError(f"rows_per_frame {list(rows_per_frame)} must give each of the "
                                 f"{current.shape[0]} frames its rows of the {batch} memories")
            counts = torch.tensor(list(rows_per_frame), device=current.device)
            spread = lambda rows: rows.repeat_interleave(counts, dim=0, output_size=batch)  # noqa: E731
        output = current + 0.1 * current_pos if self.pos_enc_at_input else current
        for index, layer in enumerate(self.layers):
            if index == 0:
                # Until the first cross-attention every object holds its frame's tokens. The copy
                # (not a stride-0 view) keeps the next projections' kernels, hence results, bit-identical
                # to the per-object computation.
                output = spread(layer.attend_self(output, current_pos)).contiguous()
                current_pos = spread(current_pos)
            else:
                output = layer.attend_self(output, current_pos)
            output = layer.attend_memory(output, memory, memory_pos, current_pos, num_obj_ptr_tokens, memory_mask)
            output = layer.feed_forward(output)
        return self.norm(output)
