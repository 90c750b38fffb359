"""Memory encoder: fuses a frame's image features with its predicted mask into a memory."""

from __future__ import annotations

import math
from typing import Tuple

import torch
from torch import nn

from .common import LayerNorm2d
from .position_encoding import SinePositionEncoding


class MaskDownSampler(nn.Module):
    """Strided convolutions taking a full-resolution mask down to the feature grid."""

    def __init__(self, embed_dim: int = 256, kernel_size: int = 4, stride: int = 4, padding: int = 0,
                 total_stride: int = 16):
        super().__init__()
        num_layers = int(math.log2(total_stride) // math.log2(stride))
        if stride ** num_layers != total_stride:
            raise ValueError(f"mask down-sampler stride {stride} does not reach total stride {total_stride}")
        self.encoder = nn.Sequential()
        channels = 1
        for _ in range(num_layers):
            out_channels = channels * stride ** 2
            self.encoder.append(nn.Conv2d(channels, out_channels, kernel_size, stride, padding))
            self.encoder.append(LayerNorm2d(out_channels))
            self.encoder.append(nn.GELU())
            channels = out_channels
        self.encoder.append(nn.Conv2d(channels, embed_dim, kernel_size=1))

    def forward(self, mask: torch.Tensor) -> torch.Tensor:
        return self.encoder(mask)


class CXBlock(nn.Module):
    """ConvNeXt block: depth-wise conv, layer norm, pointwise MLP with layer scale, residual."""

    def __init__(self, dim: int, kernel_size: int = 7, padding: int = 3, layer_scale_init_value: float = 1e-6,
                 use_dwconv: bool = True):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size, padding=padding, groups=dim if use_dwconv else 1)
        self.norm = LayerNorm2d(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(layer_scale_init_value * torch.ones(dim)) if layer_scale_init_value > 0 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm(self.dwconv(x)).permute(0, 2, 3, 1)
        y = self.pwconv2(self.act(self.pwconv1(y)))
        if self.gamma is not None:
            y = self.gamma * y
        return x + y.permute(0, 3, 1, 2)


class Fuser(nn.Module):
    def __init__(self, layers: nn.ModuleList, input_projection_dim: int | None = None):
        super().__init__()
        self.proj = nn.Conv2d(input_projection_dim, input_projection_dim, 1) if input_projection_dim else nn.Identity()
        self.layers = layers

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(x)
        for layer in self.layers:
            x = layer(x)
        return x


class MemoryEncoder(nn.Module):
    def __init__(self, out_dim: int, mask_downsampler: MaskDownSampler, fuser: Fuser,
                 position_encoding: SinePositionEncoding, in_dim: int = 256):
        super().__init__()
        self.mask_downsampler = mask_downsampler
        self.pix_feat_proj = nn.Conv2d(in_dim, in_dim, kernel_size=1)
        self.fuser = fuser
        self.position_encoding = position_encoding
        self.out_proj = nn.Conv2d(in_dim, out_dim, kernel_size=1) if out_dim != in_dim else nn.Identity()

    def forward(self, pix_feat: torch.Tensor, mask_for_memory: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``pix_feat`` ``[B, C, h, w]``; ``mask_for_memory`` ``[B, 1, S, S]``, already scaled.

        Returns memory features ``[B, mem_dim, h, w]`` and their position encoding.
        """
        x = self.pix_feat_proj(pix_feat) + self.mask_downsampler(mask_for_memory)
        x = self.out_proj(self.fuser(x))
        return x, self.position_encoding(x).to(x.dtype)
