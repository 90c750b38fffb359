"""Loading official SAM 2 checkpoints (``torch.save({"model": state_dict})``) strictly."""

from __future__ import annotations

import os
import pickle
import re
import zipfile
from typing import Any, Dict, Iterable, List, Mapping

import torch
from torch import nn


class CheckpointError(ValueError):
    """A checkpoint that is unreadable, not a SAM 2 checkpoint, or does not fit the model."""


def read_checkpoint(source: "str | os.PathLike | Mapping[str, Any]") -> Dict[str, torch.Tensor]:
    """The state dict inside an official checkpoint file or ``{"model": state_dict}`` mapping."""
    if isinstance(source, Mapping):
        payload: Any = source
        where = "the given checkpoint dict"
    else:
        where = os.fspath(source)
        payload = load_checkpoint_file(where)
    if not isinstance(payload, Mapping) or "model" not in payload:
        keys = list(payload)[:5] if isinstance(payload, Mapping) else type(payload).__name__
        raise CheckpointError(
            f"{where} is not an official SAM 2 checkpoint: expected a dict with a 'model' state dict, found {keys}")
    state_dict = payload["model"]
    if not isinstance(state_dict, Mapping) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise CheckpointError(f"{where}: 'model' is not a state dict of tensors")
    return dict(state_dict)


def load_checkpoint_file(source: "str | os.PathLike", map_location: Any = "cpu") -> Any:
    """What ``torch.save`` wrote to a file (tensors and plain containers only), or CheckpointError
    naming the file and the problem."""
    path = os.fspath(source)
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint {path} does not exist")
    if os.path.getsize(path) == 0:
        raise CheckpointError(f"checkpoint {path} is empty")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        # torch's message advises weights_only=False, which runs whatever code the file holds:
        # not advice to pass on for a file that is junk or holds more than tensors.
        foreign = _UNSUPPORTED_GLOBAL.search(str(error))
        if foreign:
            raise CheckpointError(f"{path} holds Python objects ({foreign.group(1)}), not only tensors: not a "
                                  f"SAM 2 checkpoint, and not loaded (unpickling them could run code)") from None
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint (truncated or another kind of "
                              f"file?)") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as error:
        raise CheckpointError(
            f"{path} is not a readable PyTorch checkpoint (truncated or another kind of file?): "
            f"{_first_line(error)}") from error
    except Exception as error:  # noqa: BLE001 - anything else torch's unpickler raises on a bad file
        raise CheckpointError(f"{path} could not be loaded as a SAM 2 checkpoint: {_first_line(error)}"
                              ) from error


_UNSUPPORTED_GLOBAL = re.compile(r"Unsupported global: GLOBAL (\S+)")


def _first_line(error: BaseException) -> str:
    # torch's unpickling errors run over many lines of advice; tools print errors on one line.
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def _likely_cause(missing: Iterable[str], unexpected: Iterable[str]) -> str:
    missing, unexpected = set(missing), set(unexpected)
    version_keys = {"no_obj_embed_spatial", "obj_ptr_tpos_proj.weight", "obj_ptr_tpos_proj.bias"}
    if unexpected & version_keys and not missing:
        return ("the checkpoint is SAM 2.1 but the config is SAM 2 (July 2024): use the matching "
                "sam2.1_hiera_* config")
    if missing & version_keys and not unexpected:
        return ("the checkpoint is SAM 2 (July 2024) but the config is SAM 2.1: use the matching "
                "sam2_hiera_* config")
    if any(k.startswith("image_encoder.trunk.") for k in missing | unexpected):
        return "the checkpoint's backbone size (tiny/small/base_plus/large) differs from the config's"
    return "the checkpoint and the config describe different models"


def _preview(keys: List[str], limit: int = 8) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")


def load_state_dict_strict(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> None:
    """Load with exact key and shape matching; errors name the keys and the likely cause."""
    check_state_dict(model, state_dict)
    model.load_state_dict(state_dict, strict=True)


def check_state_dict(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> None:
    """CheckpointError unless ``state_dict`` has exactly the model's keys and shapes; changes nothing."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys: {_preview(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {_preview(unexpected)}")
        raise CheckpointError(f"checkpoint does not match the model ({'; '.join(parts)}); likely cause: "
                              f"{_likely_cause(missing, unexpected)}")
    wrong_shapes = [f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(v.shape)}"
                    for k, v in expected.items() if tuple(state_dict[k].shape) != tuple(v.shape)]
    if wrong_shapes:
        raise CheckpointError(f"checkpoint tensor shapes do not match the model ({_preview(wrong_shapes, 4)}); "
                              f"likely cause: {_likely_cause([], [k.split(':')[0] for k in wrong_shapes])}")


def save_checkpoint(model: nn.Module, path: "str | os.PathLike") -> None:
    """Save in the official format so official code can load it too."""
    torch.save({"model": model.state_dict()}, os.fspath(path))
