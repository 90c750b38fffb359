"""Pillow's uint8 bicubic resize, ported to torch so that it runs on the model's device.

The official SAM 2 video predictor squashes every frame to the model size with Pillow
(``Image.resize((S, S))``: the default BICUBIC filter on a uint8 RGB image).
``transforms.resize_frame`` uses Pillow itself by default, and this port with
``FrameResize.PILLOW_PORT``, for frames already on a GPU. It is a line-by-line copy of Pillow's
``libImaging/Resample.c`` 8-bit path and gives the same bytes:

- the bicubic kernel (``a = -0.5``, support 2) is widened by the downscale factor
  (``precompute_coeffs``), so downscaling is antialiased;
- each output's taps are normalised to sum 1 in float64, then rounded half away from zero to
  22-bit fixed point (``normalize_coeffs_8bpc``);
- two passes, each accumulating ``pixel * coefficient`` in int32 from
  ``1 << 21`` (so that the shift rounds) and clipping ``sum >> 22`` to 0..255: the vertical pass
  reads the already rounded bytes of the first. The horizontal pass comes first unless the height
  shrinks by more than twice as many pixels as the width (``ImagingResampleInner`` of Pillow 13;
  older Pillow always went horizontal first, which changes some bytes of tall frames).

The coefficients are computed on the CPU with numpy in the order Pillow's C code uses (IEEE
float64; the sums sequential), and the passes are integer arithmetic, so the result does not
depend on the device. ``tests/test_frame_resize.py`` compares it with Pillow byte for byte.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Tuple

import numpy as np
import torch

PRECISION_BITS = 32 - 8 - 2  # Resample.c: 8-bit samples, 2 bits of headroom in an int32 accumulator
BICUBIC_SUPPORT = 2.0
BICUBIC_A = -0.5


@dataclass(frozen=True)
class AxisTaps:
    """One axis' resampling taps: output ``i`` is ``sum_t weights[i, t] * input[index[i, t]]``.

    ``weights`` are Pillow's 22-bit fixed-point coefficients (int32, 0 past each output's own
    tap count); ``index`` is clamped into the input so unused taps read a valid pixel.
    """

    index: np.ndarray  # int64 [out, ksize]
    weights: np.ndarray  # int32 [out, ksize]


def _bicubic(x: np.ndarray) -> np.ndarray:
    """Resample.c ``bicubic_filter``, same operation order."""
    x = np.abs(x)
    near = ((BICUBIC_A + 2.0) * x - (BICUBIC_A + 3.0)) * x * x + 1
    far = (((x - 5) * x + 8) * x - 4) * BICUBIC_A
    return np.where(x < 1.0, near, np.where(x < 2.0, far, 0.0))


@lru_cache(maxsize=32)
def bicubic_taps(in_size: int, out_size: int) -> AxisTaps:
    """Resample.c ``precompute_coeffs`` + ``normalize_coeffs_8bpc`` for BICUBIC on one axis."""
    if in_size < 1 or out_size < 1:
        raise ValueError(f"sizes must be >= 1, got {in_size} -> {out_size}")
    scale = float(in_size) / out_size
    filterscale = max(scale, 1.0)
    support = BICUBIC_SUPPORT * filterscale
    ksize = int(np.ceil(support)) * 2 + 1
    center = (np.arange(out_size, dtype=np.float64) + 0.5) * scale
    inverse = 1.0 / filterscale
    # C's (int) cast truncates toward zero; then the bounds are clamped into the input.
    xmin = np.maximum(np.trunc(center - support + 0.5), 0).astype(np.int64)
    xmax = np.minimum(np.trunc(center + support + 0.5), in_size).astype(np.int64) - xmin
    taps = np.arange(ksize, dtype=np.int64)
    used = taps[None, :] < xmax[:, None]
    raw = np.where(used, _bicubic(((taps[None, :] + xmin[:, None]).astype(np.float64) - center[:, None] + 0.5)
                                  * inverse), 0.0)
    total = np.zeros(out_size, dtype=np.float64)
    for t in range(ksize):  # Pillow sums tap by tap; numpy's pairwise np.sum could round differently
        total += raw[:, t]
    normalised = np.where(total[:, None] != 0.0, raw / np.where(total == 0.0, 1.0, total)[:, None], raw)
    fixed = normalised * (1 << PRECISION_BITS)
    weights = np.trunc(np.where(normalised < 0, fixed - 0.5, fixed + 0.5)).astype(np.int32)
    index = np.minimum(xmin[:, None] + taps[None, :], in_size - 1)
    return AxisTaps(index=index, weights=weights)


def _resample(pixels: torch.Tensor, taps: AxisTaps, dim: int) -> torch.Tensor:
    """One Pillow pass along ``dim`` of a ``[C, H, W]`` int32 image in 0..255 -> int32 in 0..255."""
    index = torch.from_numpy(taps.index).to(pixels.device)
    shape = [1, 1, 1]
    shape[dim] = index.shape[0]
    weights = torch.from_numpy(taps.weights).to(pixels.device).T.reshape(-1, *shape)  # [ksize, ...]
    out_shape = list(pixels.shape)
    out_shape[dim] = index.shape[0]
    total = torch.full(out_shape, 1 << (PRECISION_BITS - 1), dtype=torch.int32, device=pixels.device)
    for t in range(index.shape[1]):
        total.add_(pixels.index_select(dim, index[:, t]).mul_(weights[t]))
    return total.bitwise_right_shift_(PRECISION_BITS).clamp_(0, 255)


def pillow_bicubic_resize(image: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    """``[C, H, W]`` uint8 -> ``[C, h, w]`` uint8 for ``size = (h, w)``, as Pillow's BICUBIC resize.

    Runs on ``image``'s device. Like Pillow, an axis whose size does not change is not resampled.
    """
    if image.dtype != torch.uint8 or image.dim() != 3:
        raise ValueError(f"expected a [C, H, W] uint8 tensor, got {image.dtype} {tuple(image.shape)}")
    out_h, out_w = size
    in_h, in_w = int(image.shape[1]), int(image.shape[2])
    pixels = image.to(torch.int32)
    if horizontal_first(in_h, in_w, out_h, out_w):
        pixels = _vertical_pass(_horizontal_pass(pixels, out_w), out_h)
    else:
        pixels = _horizontal_pass(_vertical_pass(pixels, out_h), out_w)
    return pixels.to(torch.uint8)


def horizontal_first(in_h: int, in_w: int, out_h: int, out_w: int) -> bool:
    """Pillow 13's pass order: vertical first only when the height shrinks by more than twice as
    many pixels as the width (so that the horizontal pass has fewer rows to do)."""
    return not (in_h - out_h > 0 and in_h - out_h > (in_w - out_w) * 2)


def _horizontal_pass(pixels: torch.Tensor, out_w: int) -> torch.Tensor:
    in_w = int(pixels.shape[2])
    return pixels if out_w == in_w else _resample(pixels, bicubic_taps(in_w, out_w), dim=2)


def _vertical_pass(pixels: torch.Tensor, out_h: int) -> torch.Tensor:
    in_h = int(pixels.shape[1])
    return pixels if out_h == in_h else _resample(pixels, bicubic_taps(in_h, out_h), dim=1)
