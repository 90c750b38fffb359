"""``build_model``: a SAM 2 model from a released name or official YAML, with official weights."""

from __future__ import annotations

import os
from typing import Any, Mapping, Union

import torch

from .checkpoint import load_state_dict_strict, read_checkpoint
from .config import DEFAULT_CHECKPOINT_PATH, DEFAULT_MODEL, ModelConfig, resolve_config
from .sam2 import SAM2Model

ConfigLike = Union[str, "os.PathLike[str]", ModelConfig, Mapping[str, Any]]
CheckpointLike = Union[str, "os.PathLike[str]", Mapping[str, Any], None]


class DeviceError(ValueError):
    """A device that is not there (a CUDA device PyTorch does not see)."""


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when PyTorch sees a GPU, else ``cpu``; ``DeviceError`` for a CUDA
    device PyTorch does not see. The node's ``device`` parameter and ``sam2-server --device``."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError(f"device {device!r}: PyTorch sees no CUDA GPU (use cpu or auto)")
        index = int(device.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise DeviceError(f"device {device!r}: only {torch.cuda.device_count()} CUDA device(s)")
    return device


def build_model(config: ConfigLike, checkpoint: CheckpointLike = None, device: Union[str, torch.device] = "cpu",
                dtype: torch.dtype = torch.float32) -> SAM2Model:
    """Build a SAM 2 / 2.1 model in eval mode.

    ``config``: one of the eight released names (``sam2_hiera_tiny`` ... ``sam2.1_hiera_large``),
    ``"default"`` (the small model trained here and shipped with the package), the path of an
    official-format YAML config, or a ``ModelConfig``. ``checkpoint``: the path of an official
    checkpoint or a ``{"model": state_dict}`` dict; keys must match exactly. Without a
    checkpoint the weights are random (useful only for tests and benchmarks), except for
    ``"default"``, which then loads its bundled weights.
    """
    model_config = resolve_config(config)
    if checkpoint is None and isinstance(config, str) and config == DEFAULT_MODEL:
        checkpoint = DEFAULT_CHECKPOINT_PATH
    state_dict = read_checkpoint(checkpoint) if checkpoint is not None else None
    model = SAM2Model(model_config)
    if state_dict is not None:
        load_state_dict_strict(model, state_dict)
    return model.to(device=torch.device(device), dtype=dtype).eval()
