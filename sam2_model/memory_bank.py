"""Per-object tracking state with a fixed bound: exactly what SAM 2 attends to next, no more.

For the next frame (or a correction on the current one), SAM 2 attends to (per object):

* the spatial memories of its conditioning frames (prompted frames) with their object pointers,
* the spatial memories of the ``num_maskmem - 1`` most recent frames,
* the object pointers of the ``max_obj_ptrs_in_encoder - 1`` most recent frames.

``ObjectMemory`` keeps exactly those: a recent frame's spatial features are dropped once it is
older than the spatial window, its pointer once it is older than the pointer window (counted
from the current frame, which prompts can still correct), and
conditioning frames are capped (the first prompt is always kept, then the most recent ones).

The robust policy's appearance memory (``appearance_memory``) may hand ``select_memories`` a few
older memories of the object to take the oldest places of the spatial window (a hidden object).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence, Tuple

import torch

from .sam2 import MemoryBatch

if TYPE_CHECKING:
    from .robust_memory import RobustObjectState
    from .sam2 import SAM2Model


@dataclass
class FrameMemory:
    """What one object keeps of one past frame."""

    frame_index: int
    obj_ptr: torch.Tensor                    # [C]
    features: Optional[torch.Tensor] = None  # [mem_dim, h, w] bfloat16; None once outside the window


@dataclass
class FrameOutput:
    """An object's output on the current frame, kept until the next frame arrives."""

    frame_index: int
    low_res_logits: torch.Tensor        # [1, S/4, S/4] after hole filling
    object_score_logit: torch.Tensor    # [1]
    iou_score: torch.Tensor             # []
    obj_ptr: torch.Tensor               # [C]
    # Prompted outputs have no memory yet: it is encoded (from the binarised mask) just before
    # the next frame is tracked, as the official predictor does.
    memory_pending: bool = False
    is_conditioning: bool = False


@dataclass
class PointPrompt:
    """Clicks (and box corners) given for an object on the current frame, in model pixels."""

    frame_index: int
    coords: torch.Tensor   # [N, 2]
    labels: torch.Tensor   # [N] int32


@dataclass
class ObjectMemory:
    obj_id: int
    conditioning: "OrderedDict[int, FrameMemory]" = field(default_factory=OrderedDict)
    recent: "OrderedDict[int, FrameMemory]" = field(default_factory=OrderedDict)
    output: Optional[FrameOutput] = None
    points: Optional[PointPrompt] = None
    # The robust memory policy's state of this object (motion filter, hidden count); None under
    # the official policy. Kept here so that it goes with the object and with a reset.
    robust: Optional["RobustObjectState"] = None

    def has_memory(self) -> bool:
        return bool(self.conditioning) or bool(self.recent)

    def commit(self, frame_index: int, memory: FrameMemory, as_conditioning: bool, max_conditioning: int) -> None:
        """Store a frame's memory; a conditioning frame replaces any recent entry of that frame."""
        if as_conditioning:
            self.recent.pop(frame_index, None)
            self.conditioning[frame_index] = memory
            self._cap_conditioning(max_conditioning)
        else:
            self.recent[frame_index] = memory
            self.recent.move_to_end(frame_index)

    def _cap_conditioning(self, max_conditioning: int) -> None:
        # Keep the object's first prompt (it defines the object) and the most recent ones.
        while max_conditioning > 0 and len(self.conditioning) > max_conditioning:
            frames = list(self.conditioning)
            del self.conditioning[frames[1]]

    def forget_old(self, current_frame: int, spatial_window: int, pointer_window: int) -> None:
        """Drop what neither a prompt on ``current_frame`` nor the next frame can attend to.

        A correction on the current frame attends to frames ``current - window`` .. ``current - 1``,
        the next frame to ``current - window + 1`` .. ``current``: so ``window + 1`` entries stay.
        An entry goes only once it is outside both windows: a model without pointers (pointer
        window 0) still attends ``num_maskmem - 1`` recent frames' features, as the official one does.
        """
        for frame_index in list(self.recent):
            age = current_frame - frame_index
            if age > max(pointer_window, spatial_window):
                del self.recent[frame_index]
            elif age > spatial_window:
                self.recent[frame_index].features = None

    def forget_recent_around(self, frame_index: int, radius: int) -> None:
        """Drop the non-conditioning memories (features and pointers) of frames within ``radius``
        of ``frame_index``, that frame included."""
        for index in list(self.recent):
            if abs(index - frame_index) <= radius:
                del self.recent[index]

    def tensors(self) -> List[torch.Tensor]:
        out: List[torch.Tensor] = []
        for memory in list(self.conditioning.values()) + list(self.recent.values()):
            out.append(memory.obj_ptr)
            if memory.features is not None:
                out.append(memory.features)
        if self.output is not None:
            out += [self.output.low_res_logits, self.output.object_score_logit, self.output.iou_score,
                    self.output.obj_ptr]
        if self.points is not None:
            out += [self.points.coords, self.points.labels]
        if self.robust is not None and self.robust.appearance is not None:
            # Its entries share the tensors of recent memories still kept: count each tensor once.
            held = {id(t) for t in out}
            out += [t for t in self.robust.appearance.tensors() if id(t) not in held]
        return out


@dataclass
class MemorySelection:
    """The memories one object attends to on one frame, in the official order."""

    spatial: List[Tuple[torch.Tensor, int]]   # (features [mem_dim, h, w], temporal index)
    pointers: List[Tuple[torch.Tensor, int]]  # (obj_ptr [C], signed/unsigned frame distance)


def select_memories(state: ObjectMemory, frame_index: int, num_maskmem: int, max_pointers: int,
                    max_cond_in_attn: int, only_past_pointers: bool, signed_pointer_positions: bool,
                    appearance: Sequence[FrameMemory] = ()) -> MemorySelection:
    """SAM 2's choice of memories for ``frame_index`` (memories of that frame itself excluded).

    ``appearance`` (robust policy, a hidden object; newest first, at most the window less one):
    older memories that take the oldest ``len(appearance)`` places of the recent window. The
    newest frames stay; an appearance memory already among them is not repeated, and a place it
    leaves free goes back to the recent frame the official choice had there. Appearance memories
    sit at the temporal position of their age, capped at the oldest; their pointers join where
    they lie outside the pointer window (the window's own are there already)."""
    conditioning: Dict[int, FrameMemory] = {t: m for t, m in state.conditioning.items() if t < frame_index}
    unselected: Dict[int, FrameMemory] = {}
    if 0 < max_cond_in_attn < len(conditioning):
        # All conditioning frames are in the past here, so "closest" means most recent.
        keep = sorted(conditioning, key=lambda t: frame_index - t)[:max_cond_in_attn]
        unselected = {t: m for t, m in conditioning.items() if t not in keep}
        conditioning = {t: m for t, m in conditioning.items() if t in keep}

    def recent_or_unselected(t: int) -> Optional[FrameMemory]:
        return state.recent.get(t) if t in state.recent else unselected.get(t)

    spatial: List[Tuple[torch.Tensor, int]] = [(m.features, num_maskmem - 1) for m in conditioning.values()]
    window = num_maskmem - 1
    # Appearance memories older than the recent frames that stay (those are attended anyway).
    kept = window - len(appearance)
    older = [m for m in appearance if kept < frame_index - m.frame_index and m.features is not None]
    for memory in older:
        spatial.append((memory.features, min(frame_index - memory.frame_index, window) - 1))
    for frames_back in range(window, 0, -1):
        if frames_back > kept + len(appearance) - len(older):
            continue  # a place an appearance memory took
        memory = recent_or_unselected(frame_index - frames_back)
        if memory is not None and memory.features is not None:
            spatial.append((memory.features, frames_back - 1))

    pointers: List[Tuple[torch.Tensor, int]] = []
    for t, memory in conditioning.items():
        if only_past_pointers and t > frame_index:
            continue
        distance = frame_index - t
        pointers.append((memory.obj_ptr, distance if signed_pointer_positions else abs(distance)))
    for frames_back in range(1, max_pointers):
        t = frame_index - frames_back
        if t < 0:
            break
        memory = recent_or_unselected(t)
        if memory is not None:
            pointers.append((memory.obj_ptr, frames_back))
    for memory in appearance:
        if max_pointers <= frame_index - memory.frame_index and memory.frame_index not in conditioning:
            pointers.append((memory.obj_ptr, frame_index - memory.frame_index))
    return MemorySelection(spatial, pointers)


def pointer_window(model: "SAM2Model") -> int:
    """How many frames back object pointers reach (0 when the model uses none)."""
    config = model.config
    return config.max_obj_ptrs_in_encoder - 1 if config.use_obj_ptrs_in_encoder else 0


def gather_memories(model: "SAM2Model", states: List[ObjectMemory], frame_index: int,
                    memory_pos: Optional[torch.Tensor],
                    appearance: Optional[List[Sequence[FrameMemory]]] = None) -> MemoryBatch:
    """Each object's memories for ``frame_index`` as one padded batch of tokens.

    Shared by the streaming tracker and training, so that a model is trained on exactly the
    memories it will attend to when tracking. ``memory_pos`` ``[h*w, mem_dim]`` is the memory
    encoder's (constant) position encoding, None before the first memory was encoded.
    ``appearance``: per object, the robust policy's appearance memories to attend to
    (``select_memories``); None: none (the official choice).
    """
    config = model.config
    device = model.device
    window = pointer_window(model)
    selections = [select_memories(s, frame_index, config.num_maskmem, window + 1, config.max_cond_frames_in_attn,
                                  config.only_obj_ptrs_in_the_past_for_eval, config.use_signed_tpos_enc_to_obj_ptrs,
                                  appearance=appearance[row] if appearance is not None else ())
                  for row, s in enumerate(states)]
    if not config.use_obj_ptrs_in_encoder:
        for selection in selections:
            selection.pointers.clear()
    mem_dim = model.mem_dim
    grid = model.embedding_size ** 2
    max_frames = max(len(s.spatial) for s in selections)
    max_pointers = max(len(s.pointers) for s in selections)
    per_pointer = model.tokens_per_pointer
    spatial_len = max_frames * grid
    total = spatial_len + max_pointers * per_pointer
    dtype = torch.float32
    if memory_pos is None:
        memory_pos = torch.zeros(grid, mem_dim, device=device)
    # Rows are assembled with torch.cat (not in-place writes) so that training can
    # backpropagate through the memories.
    rows_tokens, rows_positions, rows_valid = [], [], []
    empty = torch.zeros(0, mem_dim, device=device, dtype=dtype)
    for selection in selections:
        tokens: List[torch.Tensor] = [empty]
        positions: List[torch.Tensor] = [empty]
        for features, temporal_index in selection.spatial:
            tokens.append(features.to(dtype).flatten(1).transpose(0, 1))
            positions.append(memory_pos + model.memory_temporal_encoding(temporal_index).to(dtype))
        used_spatial = len(selection.spatial) * grid
        if used_spatial < spatial_len:
            pad = torch.zeros(spatial_len - used_spatial, mem_dim, device=device, dtype=dtype)
            tokens.append(pad)
            positions.append(pad)
        used_pointers = len(selection.pointers) * per_pointer
        if selection.pointers:
            pointers = torch.stack([p for p, _ in selection.pointers]).to(dtype)          # [P, C]
            distances = torch.tensor([d for _, d in selection.pointers], device=device)
            pointer_pos = model.pointer_temporal_encoding(distances, window).to(dtype)
            tokens.append(model.split_pointer(pointers))
            positions.append(pointer_pos.repeat_interleave(per_pointer, dim=0))
        if used_pointers < max_pointers * per_pointer:
            pad = torch.zeros(max_pointers * per_pointer - used_pointers, mem_dim, device=device, dtype=dtype)
            tokens.append(pad)
            positions.append(pad)
        valid = torch.zeros(total, dtype=torch.bool, device=device)
        valid[:used_spatial] = True
        valid[spatial_len:spatial_len + used_pointers] = True
        rows_tokens.append(torch.cat(tokens))
        rows_positions.append(torch.cat(positions))
        rows_valid.append(valid)
    valid = torch.stack(rows_valid)
    all_valid = bool(valid.all())
    return MemoryBatch(torch.stack(rows_tokens), torch.stack(rows_positions), None if all_valid else valid,
                       max_pointers * per_pointer)
