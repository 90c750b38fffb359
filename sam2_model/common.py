"""Small building blocks shared by several SAM 2 modules."""

from __future__ import annotations

from typing import Callable, Type

import torch
from torch import nn


class MLP(nn.Module):
    """A stack of ``num_layers`` linear layers with an activation between them.

    The layers live in ``self.layers`` so official checkpoint keys (``...layers.0.weight``)
    load unchanged.
    """

    def __init__(self, input_dim: int, hidden_dim: int, output_dim: int, num_layers: int,
                 activation: Type[nn.Module] = nn.ReLU, sigmoid_output: bool = False):
        super().__init__()
        widths = [input_dim] + [hidden_dim] * (num_layers - 1) + [output_dim]
        self.layers = nn.ModuleList(nn.Linear(w_in, w_out) for w_in, w_out in zip(widths[:-1], widths[1:]))
        self.act = activation()
        self.sigmoid_output = sigmoid_output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        last = len(self.layers) - 1
        for index, layer in enumerate(self.layers):
            x = layer(x)
            if index < last:
                x = self.act(x)
        return torch.sigmoid(x) if self.sigmoid_output else x


class LayerNorm2d(nn.Module):
    """Layer normalisation over the channel dimension of a ``[B, C, H, W]`` tensor."""

    def __init__(self, num_channels: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(1, keepdim=True)
        variance = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) / torch.sqrt(variance + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


def activation_by_name(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The functional activation named in official configs (``relu`` / ``gelu``)."""
    table = {"relu": nn.functional.relu, "gelu": nn.functional.gelu}
    if name not in table:
        raise ValueError(f"unsupported activation {name!r}; expected one of {sorted(table)}")
    return table[name]
