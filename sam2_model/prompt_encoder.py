"""SAM's prompt encoder: clicks and box corners become sparse tokens, a mask becomes a dense map."""

from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import nn

from .common import LayerNorm2d
from .position_encoding import RandomFourierPositionEncoding

# Point labels understood by the prompt encoder. SAM 2 sends box corners as two labelled points.
LABEL_PADDING = -1
LABEL_BACKGROUND = 0
LABEL_FOREGROUND = 1
LABEL_BOX_TOP_LEFT = 2
LABEL_BOX_BOTTOM_RIGHT = 3


class PromptEncoder(nn.Module):
    def __init__(self, embed_dim: int, image_embedding_size: Tuple[int, int],
                 input_image_size: Tuple[int, int], mask_in_chans: int = 16):
        super().__init__()
        self.embed_dim = embed_dim
        self.input_image_size = input_image_size
        self.image_embedding_size = image_embedding_size
        self.pe_layer = RandomFourierPositionEncoding(embed_dim // 2)
        # One learned embedding per label 0..3 (background, foreground, box corners).
        self.point_embeddings = nn.ModuleList(nn.Embedding(1, embed_dim) for _ in range(4))
        self.not_a_point_embed = nn.Embedding(1, embed_dim)
        self.mask_input_size = (4 * image_embedding_size[0], 4 * image_embedding_size[1])
        self.mask_downscaling = nn.Sequential(
            nn.Conv2d(1, mask_in_chans // 4, kernel_size=2, stride=2),
            LayerNorm2d(mask_in_chans // 4),
            nn.GELU(),
            nn.Conv2d(mask_in_chans // 4, mask_in_chans, kernel_size=2, stride=2),
            LayerNorm2d(mask_in_chans),
            nn.GELU(),
            nn.Conv2d(mask_in_chans, embed_dim, kernel_size=1),
        )
        self.no_mask_embed = nn.Embedding(1, embed_dim)

    def dense_positional_encoding(self) -> torch.Tensor:
        """Positional encoding of the image-embedding grid, ``[1, C, h, w]``."""
        return self.pe_layer.grid(*self.image_embedding_size).unsqueeze(0)

    def embed_points(self, coords: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """``coords`` ``[B, N, 2]`` in model-input pixels, ``labels`` ``[B, N]`` -> ``[B, N+1, C]``.

        A padding token (label -1) is always appended, as SAM 2 always sends boxes as points.
        """
        batch = coords.shape[0]
        coords = torch.cat((coords + 0.5, coords.new_zeros(batch, 1, 2)), dim=1)  # +0.5: pixel centres
        labels = torch.cat((labels, labels.new_full((batch, 1), LABEL_PADDING)), dim=1)
        embedding = self.pe_layer.encode_points(coords, self.input_image_size)
        label_table = torch.cat([e.weight for e in self.point_embeddings], dim=0)  # [4, C]
        is_padding = (labels == LABEL_PADDING).unsqueeze(-1)
        learned = label_table[labels.clamp(min=0).long()]
        return torch.where(is_padding, self.not_a_point_embed.weight.expand_as(embedding), embedding + learned)

    def forward(self, coords: Optional[torch.Tensor], labels: Optional[torch.Tensor],
                mask: Optional[torch.Tensor], batch_size: int = 1) -> Tuple[torch.Tensor, torch.Tensor]:
        """Sparse tokens ``[B, N+1, C]`` and dense embedding ``[B, C, h, w]``.

        With no points at all (the image predictor given only a mask) there are no sparse tokens.
        """
        if coords is not None:
            batch_size = coords.shape[0]
            sparse = self.embed_points(coords, labels)
        else:
            if mask is not None:
                batch_size = mask.shape[0]
            sparse = self.not_a_point_embed.weight.new_zeros(batch_size, 0, self.embed_dim)
        if mask is not None:
            dense = self.mask_downscaling(mask)
        else:
            height, width = self.image_embedding_size
            dense = self.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(batch_size, -1, height, width)
        return sparse, dense
