"""Positional encodings used by SAM 2.

Three kinds appear in the model:

* ``SinePositionEncoding``: the fixed 2-D sine/cosine grid encoding (DETR style) that the
  FPN neck and the memory encoder attach to their feature maps.
* ``RandomFourierPositionEncoding``: SAM's encoding of prompt coordinates with a (learned,
  saved in the checkpoint) Gaussian frequency matrix; the prompt encoder uses it for both
  the dense image grid and the sparse points.
* 2-D axial rotary embedding (``axial_rotary_frequencies`` / ``apply_axial_rotary``) used by the
  memory attention's RoPE attention.
"""

from __future__ import annotations

import math
from typing import Dict, Tuple

import torch
from torch import nn


class SinePositionEncoding(nn.Module):
    """Fixed sine/cosine encoding of an ``H x W`` grid, ``num_channels`` channels out.

    Half of the channels encode y and half encode x; within each half, even channels take
    ``sin`` and odd ones ``cos`` of the normalised coordinate divided by a geometric
    frequency ladder. Coordinates run 1..H (1..W), normalised to (0, 2*pi].
    """

    def __init__(self, num_channels: int, temperature: float = 10000.0, normalize: bool = True,
                 scale: float | None = None):
        super().__init__()
        if num_channels % 2:
            raise ValueError(f"SinePositionEncoding needs an even channel count, got {num_channels}")
        if scale is not None and not normalize:
            raise ValueError("a position-encoding scale only makes sense with normalize=True")
        self.channels_per_axis = num_channels // 2
        self.temperature = temperature
        self.normalize = normalize
        self.scale = 2 * math.pi if scale is None else scale
        # Encodings depend only on the grid size: cache them (they are constants, not state).
        self._cache: Dict[Tuple[int, int, str], torch.Tensor] = {}

    def _frequencies(self, device: torch.device) -> torch.Tensor:
        index = torch.arange(self.channels_per_axis, dtype=torch.float32, device=device)
        return self.temperature ** (2 * torch.div(index, 2, rounding_mode="floor") / self.channels_per_axis)

    def _interleave_sin_cos(self, angles: torch.Tensor) -> torch.Tensor:
        # angles [..., C]: even channels -> sin, odd channels -> cos, interleaved back in order.
        return torch.stack((angles[..., 0::2].sin(), angles[..., 1::2].cos()), dim=-1).flatten(-2)

    def grid(self, height: int, width: int, device: torch.device) -> torch.Tensor:
        """The encoding of an ``height x width`` grid, shape ``[C, H, W]`` (float32)."""
        key = (height, width, str(device))
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        y = torch.arange(1, height + 1, dtype=torch.float32, device=device)
        x = torch.arange(1, width + 1, dtype=torch.float32, device=device)
        if self.normalize:
            eps = 1e-6
            y = y / (y[-1] + eps) * self.scale
            x = x / (x[-1] + eps) * self.scale
        freqs = self._frequencies(device)
        enc_y = self._interleave_sin_cos(y[:, None] / freqs)  # [H, C/2]
        enc_x = self._interleave_sin_cos(x[:, None] / freqs)  # [W, C/2]
        encoding = torch.cat(
            (enc_y[:, None, :].expand(height, width, -1), enc_x[None, :, :].expand(height, width, -1)),
            dim=-1,
        ).permute(2, 0, 1).contiguous()
        self._cache[key] = encoding
        return encoding

    @torch.no_grad()
    def forward(self, feature_map: torch.Tensor) -> torch.Tensor:
        """Encoding for a ``[B, C, H, W]`` feature map, shape ``[B, channels, H, W]``, float32."""
        batch, _, height, width = feature_map.shape
        return self.grid(height, width, feature_map.device).unsqueeze(0).expand(batch, -1, -1, -1)


class RandomFourierPositionEncoding(nn.Module):
    """SAM's prompt-coordinate encoding with a Gaussian frequency matrix.

    The matrix is a buffer named ``positional_encoding_gaussian_matrix`` (shape ``[2, C/2]``)
    so official checkpoints load into it.
    """

    def __init__(self, num_frequencies: int = 64, scale: float | None = None):
        super().__init__()
        scale = 1.0 if scale is None or scale <= 0.0 else scale
        self.register_buffer("positional_encoding_gaussian_matrix", scale * torch.randn(2, num_frequencies))

    def _encode_unit_coords(self, coords: torch.Tensor) -> torch.Tensor:
        """``coords`` in [0, 1] (last dim = (x, y)) -> ``[..., 2 * num_frequencies]``."""
        projected = (2 * coords - 1) @ self.positional_encoding_gaussian_matrix
        projected = 2 * math.pi * projected
        return torch.cat((projected.sin(), projected.cos()), dim=-1)

    def grid(self, height: int, width: int) -> torch.Tensor:
        """Encoding of the centres of an ``height x width`` grid, ``[C, H, W]``."""
        device = self.positional_encoding_gaussian_matrix.device
        ys = (torch.arange(height, dtype=torch.float32, device=device) + 0.5) / height
        xs = (torch.arange(width, dtype=torch.float32, device=device) + 0.5) / width
        coords = torch.stack(
            (xs[None, :].expand(height, width), ys[:, None].expand(height, width)), dim=-1
        )
        return self._encode_unit_coords(coords).permute(2, 0, 1)

    def encode_points(self, coords: torch.Tensor, image_size: Tuple[int, int]) -> torch.Tensor:
        """Encode pixel coordinates ``[B, N, 2]`` (x, y) of an image of ``(height, width)``."""
        height, width = image_size
        scale = torch.tensor([width, height], dtype=torch.float32, device=coords.device)
        return self._encode_unit_coords(coords.to(torch.float32) / scale)


# ---------------------------------------------------------------------------------------------
# 2-D axial rotary position embedding (RoPE) for the memory attention.
#
# The channel dimension of each head is viewed as complex pairs. The first half of the pairs
# rotate with the token's x position, the second half with its y position, each with a
# frequency ladder theta ** (-4k / dim). Tokens are laid out row-major on an end_x * end_y grid.
# ---------------------------------------------------------------------------------------------


def axial_rotary_frequencies(head_dim: int, end_x: int, end_y: int, theta: float = 10000.0) -> torch.Tensor:
    """Unit complex rotations, shape ``[end_x * end_y, head_dim // 2]`` (complex64)."""
    ladder = 1.0 / (theta ** (torch.arange(0, head_dim, 4)[: head_dim // 4].float() / head_dim))
    token = torch.arange(end_x * end_y, dtype=torch.float32)
    pos_x = token % end_x
    pos_y = torch.div(token, end_x, rounding_mode="floor")
    angles = torch.cat((torch.outer(pos_x, ladder), torch.outer(pos_y, ladder)), dim=-1)
    return torch.polar(torch.ones_like(angles), angles)


def apply_axial_rotary(x: torch.Tensor, rotations: torch.Tensor, repeats: int = 1) -> torch.Tensor:
    """Rotate ``x`` ``[B, heads, L, head_dim]`` by ``rotations`` ``[L / repeats, head_dim / 2]``.

    ``repeats > 1`` means ``x`` holds several stacked copies of the same grid (the memory
    keys of several past frames) that all take the grid's rotations.
    """
    if x.shape[-2] == 0:
        return x
    pairs = torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2))
    if repeats > 1:
        rotations = rotations.repeat(repeats, 1)
    rotated = torch.view_as_real(pairs * rotations).flatten(-2)
    return rotated.type_as(x)
