"""Attention layers: SAM's two-way transformer and the RoPE attention of the memory attention."""

from __future__ import annotations

from typing import Optional, Tuple, Type

import torch
import torch.nn.functional as F
from torch import nn

from .common import MLP
from .position_encoding import apply_axial_rotary, axial_rotary_frequencies


class Attention(nn.Module):
    """Multi-head attention with an optional down-projected internal width.

    ``downsample_rate`` shrinks the q/k/v width (the decoder's cross attentions use 2), and
    ``kv_in_dim`` lets keys/values come from a narrower memory (64-d memory features).
    """

    def __init__(self, embedding_dim: int, num_heads: int, downsample_rate: int = 1,
                 dropout: float = 0.0, kv_in_dim: Optional[int] = None):
        super().__init__()
        self.internal_dim = embedding_dim // downsample_rate
        if self.internal_dim % num_heads:
            raise ValueError(f"{num_heads} heads do not divide the attention width {self.internal_dim}")
        kv_in_dim = embedding_dim if kv_in_dim is None else kv_in_dim
        self.num_heads = num_heads
        self.dropout_p = dropout
        self.q_proj = nn.Linear(embedding_dim, self.internal_dim)
        self.k_proj = nn.Linear(kv_in_dim, self.internal_dim)
        self.v_proj = nn.Linear(kv_in_dim, self.internal_dim)
        self.out_proj = nn.Linear(self.internal_dim, embedding_dim)

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, width = x.shape
        return x.reshape(batch, tokens, self.num_heads, width // self.num_heads).transpose(1, 2)

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                key_mask: Optional[torch.Tensor]) -> torch.Tensor:
        # key_mask [B, Lk] bool, True = attend. Padding keys let objects with memories of
        # different lengths share one batched pass.
        attn_mask = None if key_mask is None else key_mask[:, None, None, :]
        dropout = self.dropout_p if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout)
        batch, heads, tokens, width = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(batch, tokens, heads * width))

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                key_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        return self._attend(self._split_heads(self.q_proj(q)), self._split_heads(self.k_proj(k)),
                            self._split_heads(self.v_proj(v)), key_mask)


class RoPEAttention(Attention):
    """Attention with 2-D axial rotary embeddings on queries and (spatial) keys.

    Keys may hold several stacked copies of the query grid (one per memory frame) followed by
    ``num_k_exclude_rope`` object-pointer tokens, which have no spatial position and are not
    rotated.
    """

    def __init__(self, *args, rope_theta: float = 10000.0, rope_k_repeat: bool = False,
                 feat_sizes: Tuple[int, int] = (64, 64), **kwargs):
        super().__init__(*args, **kwargs)
        self.rope_theta = rope_theta
        self.rope_k_repeat = rope_k_repeat
        self.head_dim = self.internal_dim // self.num_heads
        # A constant, not a parameter: rebuilt for other grid sizes and moved lazily.
        self._rotations = axial_rotary_frequencies(self.head_dim, feat_sizes[0], feat_sizes[1], rope_theta)

    def _rotations_for(self, num_tokens: int, device: torch.device) -> torch.Tensor:
        # Read once and returned as built: several threads may run the model (the server's lanes).
        rotations = self._rotations
        if rotations.shape[0] != num_tokens:
            side = int(round(num_tokens ** 0.5))
            if side * side != num_tokens:
                raise ValueError(f"RoPE attention needs a square token grid, got {num_tokens} tokens")
            rotations = axial_rotary_frequencies(self.head_dim, side, side, self.rope_theta)
        if rotations.device != device:
            rotations = rotations.to(device)
        self._rotations = rotations
        return rotations

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                num_k_exclude_rope: int = 0, key_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        q = self._split_heads(self.q_proj(q))
        k = self._split_heads(self.k_proj(k))
        v = self._split_heads(self.v_proj(v))
        rotations = self._rotations_for(q.shape[-2], q.device)
        q = apply_axial_rotary(q, rotations)
        num_rotated = k.shape[-2] - num_k_exclude_rope
        if num_rotated % q.shape[-2]:
            raise ValueError("spatial memory keys must be whole copies of the query grid")
        repeats = num_rotated // q.shape[-2]
        if repeats > 1 and not self.rope_k_repeat:
            raise ValueError("keys longer than queries need rope_k_repeat=True")
        k = torch.cat((apply_axial_rotary(k[:, :, :num_rotated], rotations, repeats), k[:, :, num_rotated:]), dim=2)
        return self._attend(q, k, v, key_mask)


class TwoWayAttentionBlock(nn.Module):
    """One block of SAM's decoder: tokens attend to themselves, tokens attend to the image,
    an MLP on the tokens, then the image attends back to the tokens."""

    def __init__(self, embedding_dim: int, num_heads: int, mlp_dim: int, activation: Type[nn.Module],
                 attention_downsample_rate: int, skip_first_layer_pe: bool):
        super().__init__()
        self.self_attn = Attention(embedding_dim, num_heads)
        self.norm1 = nn.LayerNorm(embedding_dim)
        self.cross_attn_token_to_image = Attention(embedding_dim, num_heads, attention_downsample_rate)
        self.norm2 = nn.LayerNorm(embedding_dim)
        self.mlp = MLP(embedding_dim, mlp_dim, embedding_dim, num_layers=2, activation=activation)
        self.norm3 = nn.LayerNorm(embedding_dim)
        self.norm4 = nn.LayerNorm(embedding_dim)
        self.cross_attn_image_to_token = Attention(embedding_dim, num_heads, attention_downsample_rate)
        # The first block sees raw prompt embeddings that already carry their positions.
        self.skip_first_layer_pe = skip_first_layer_pe

    def forward(self, queries: torch.Tensor, keys: torch.Tensor, query_pe: torch.Tensor,
                key_pe: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        if self.skip_first_layer_pe:
            queries = self.self_attn(queries, queries, queries)
        else:
            q = queries + query_pe
            queries = queries + self.self_attn(q, q, queries)
        queries = self.norm1(queries)

        keys_with_pe = keys + key_pe
        queries = self.norm2(queries + self.cross_attn_token_to_image(queries + query_pe, keys_with_pe, keys))
        queries = self.norm3(queries + self.mlp(queries))
        keys = self.norm4(keys + self.cross_attn_image_to_token(keys_with_pe, queries + query_pe, queries))
        return queries, keys


class TwoWayTransformer(nn.Module):
    """SAM's decoder transformer between prompt tokens and the image embedding."""

    def __init__(self, depth: int, embedding_dim: int, num_heads: int, mlp_dim: int,
                 activation: Type[nn.Module] = nn.ReLU, attention_downsample_rate: int = 2):
        super().__init__()
        self.layers = nn.ModuleList(
            TwoWayAttentionBlock(embedding_dim, num_heads, mlp_dim, activation, attention_downsample_rate,
                                 skip_first_layer_pe=(index == 0))
            for index in range(depth)
        )
        self.final_attn_token_to_image = Attention(embedding_dim, num_heads, attention_downsample_rate)
        self.norm_final_attn = nn.LayerNorm(embedding_dim)

    def forward(self, image_embedding: torch.Tensor, image_pe: torch.Tensor,
                point_embedding: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``image_embedding``/``image_pe`` ``[B, C, H, W]``, tokens ``[B, N, C]``.

        Returns the updated tokens ``[B, N, C]`` and image tokens ``[B, H*W, C]``.
        """
        keys = image_embedding.flatten(2).transpose(1, 2)
        key_pe = image_pe.flatten(2).transpose(1, 2)
        queries = point_embedding
        for layer in self.layers:
            queries, keys = layer(queries, keys, point_embedding, key_pe)
        attended = self.final_attn_token_to_image(queries + point_embedding, keys + key_pe, keys)
        return self.norm_final_attn(queries + attended), keys
