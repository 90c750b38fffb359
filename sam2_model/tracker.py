"""StreamingTracker: SAM 2 video tracking one frame at a time, with bounded memory.

The algorithm is the official ``SAM2VideoPredictor``'s (SAM 2.1 defaults and post-processing),
rearranged for a live stream:

* frames arrive one by one and are never kept after their step (only their features until
  the next frame, because prompts apply to the most recent frame);
* every object is tracked in one batched pass per frame (memory attention, mask decoder and
  memory encoder), objects with memories of different lengths padded and masked;
* per object, only what the next frame attends to is stored (see ``memory_bank``).

A frame of a new size mid-stream is simply resized to the model input like every frame:
memories live at the model's resolution, so tracking continues and outputs come at the new size.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
from dataclasses import dataclass
from functools import cached_property
from typing import Dict, List, Optional, Sequence, Tuple

import torch

# Defined torch-free (sam2_model.errors) so a node talking to sam2_server can catch them; re-exported.
from .appearance_memory import attended_places
from .colour_check import ExposureReference, frame_colour_grid
from .errors import TrackingError, UnknownObjectError  # noqa: F401
from .holes import fill_holes
from .memory_bank import FrameMemory, FrameOutput, ObjectMemory, PointPrompt, gather_memories, pointer_window
from .prompt_encoder import LABEL_BOX_BOTTOM_RIGHT, LABEL_BOX_TOP_LEFT
from .prompts import PromptError, validate_box, validate_mask, validate_points
from .robust_memory import Decision, RobustObjectState
from .robust_options import RobustMemoryOptions, parse_memory_policy
from .robust_step import apply_robust_policy, shown_output
from .sam2 import FrameFeatures, MaskPrediction, MemoryBatch, SAM2Model
from .tracker_options import TrackerOptions, TrackerOptionsError
from .transforms import (FrameLike, FrameResize, mask_to_model_input, preprocess_video_frame, resize_logits,
                         scale_points_to_model)

# Prompted masks re-entering the decoder as mask input are clamped like upstream.
PREVIOUS_LOGITS_CLAMP = 32.0


@dataclass
class TrackingResult:
    """All objects on one frame. Full-resolution logits are computed on first access."""

    frame_index: int
    obj_ids: List[int]
    low_res_logits: torch.Tensor        # [N, 1, S/4, S/4]
    object_score_logits: torch.Tensor   # [N]
    iou_scores: torch.Tensor            # [N]
    frame_hw: tuple
    non_overlap: bool = False
    # Robust memory policy only: per object, while it is not visible, the box its motion filter
    # predicts (x0, y0, x1, y1 in the frame's pixels); None where visible or nothing is predicted.
    predicted_boxes: Optional[List[Optional[tuple]]] = None

    @property
    def visible(self) -> torch.Tensor:
        return self.object_score_logits > 0

    @cached_property
    def mask_logits(self) -> torch.Tensor:
        """``[N, H, W]`` logits at the frame's resolution."""
        logits = resize_logits(self.low_res_logits, tuple(self.frame_hw))
        if self.non_overlap and logits.shape[0] > 1:
            # Upstream's non_overlap_masks: only the best-scoring object keeps a pixel.
            winner = logits.argmax(dim=0, keepdim=True)
            keep = winner == torch.arange(logits.shape[0], device=logits.device)[:, None, None, None]
            logits = torch.where(keep, logits, logits.clamp(max=-10.0))
        return logits[:, 0]

    def frame_logits(self, rows: Sequence[int]) -> torch.Tensor:
        """``mask_logits[rows]``, upsampling only those objects: each object is resized on its own,
        so the values are identical. Non-overlapping masks need every object (the full property)."""
        if "mask_logits" in self.__dict__ or (self.non_overlap and self.low_res_logits.shape[0] > 1):
            return self.mask_logits[list(rows)]
        return resize_logits(self.low_res_logits[list(rows)], tuple(self.frame_hw))[:, 0]

    @cached_property
    def masks(self) -> torch.Tensor:
        """``[N, H, W]`` bool masks at the frame's resolution."""
        return self.mask_logits > 0


@dataclass
class PreparedFrame:
    """A frame ready for the image encoder (``StreamingTracker.prepare_frame``)."""

    pixels: torch.Tensor  # [1, 3, S, S] normalised model input, on the model's device
    frame_hw: tuple       # the frame's (height, width)


@dataclass
class _Attending:
    """One tracker's frame before memory attention: its objects' memories gathered. Several
    trackers' frames whose memories share a layout attend in one pass (``_attend_together``)."""

    tracker: "StreamingTracker"
    index: int
    states: list                  # the ObjectMemory of each row
    memory: MemoryBatch
    features: FrameFeatures       # the frame's features, unexpanded


@dataclass
class _Decoding:
    """One tracker's frame between memory attention and the mask decoder; several trackers' frames
    go through the decoder and the memory encoder together (``track_encoded_together``)."""

    tracker: "StreamingTracker"
    index: int
    states: list                  # the ObjectMemory of each row
    conditioned: torch.Tensor     # [N, C, h, w] memory-conditioned features
    high_res: List[torch.Tensor]  # the frame's high-resolution features, one row per object
    image_embed: torch.Tensor     # the frame's features, one row per object


@dataclass
class _CurrentFrame:
    index: int
    frame_hw: tuple
    features: FrameFeatures  # raw image features (batch 1)
    colours: Optional[torch.Tensor] = None  # colour_check: [3, h, w] RGB on the mask grid
    colour_ceiling: Optional[torch.Tensor] = None  # exposure: the grid's brightest value (0-dim)


class StreamingTracker:
    """Track prompted objects through a stream of RGB frames.

    Args:
        model: the SAM 2 model (``build_model``); it is put in eval mode.
        options: how to track (``TrackerOptions``); ``None``: the defaults. Options left unset
            take the model config's value (official video-predictor keys, e.g. ``fill_hole_area``).
        **explicit: single options by name (``fill_hole_area=0``, ``max_objects=4``,
            ``autocast="bfloat16"`` or a torch dtype), put on top of ``options``; ``None`` keeps
            the value below. ``autocast_dtype`` is accepted as another name of ``autocast``.
            ``robust_options`` (a ``RobustMemoryOptions``) sets the robust policy's components
            and thresholds directly (ablations); it needs ``memory_policy`` robust.

    Raises ``TrackerOptionsError`` (a ``ValueError``) naming every bad option.

    ``max_cond_frames`` caps the conditioning (prompted) frames kept per object: the first
    prompt is always kept, then the most recent ones. With the default settings an object has
    exactly one conditioning frame (its first prompt); more appear only with
    ``corrections_as_cond=True``.
    """

    def __init__(self, model: SAM2Model, options: Optional[TrackerOptions] = None, **explicit):
        if "autocast_dtype" in explicit:
            explicit.setdefault("autocast", explicit.pop("autocast_dtype"))
        if isinstance(explicit.get("autocast"), torch.dtype):
            explicit["autocast"] = str(explicit["autocast"]).replace("torch.", "")
        robust_options = explicit.pop("robust_options", None)
        self.model = model.eval()
        self.options = (options or TrackerOptions()).overridden_by(**explicit).for_model(model.config)
        # None: the official policy (nothing below runs and nothing changes numerically).
        self._robust: Optional[RobustMemoryOptions] = parse_memory_policy(self.options.memory_policy)
        if robust_options is not None:
            if self._robust is None:
                raise TrackerOptionsError("robust_options given but memory_policy is official")
            if not isinstance(robust_options, RobustMemoryOptions):
                # A dict (from JSON, a YAML file) would otherwise fail later on a missing method.
                raise TrackerOptionsError(f"robust_options must be a RobustMemoryOptions, got "
                                          f"{type(robust_options).__name__} (the memory_policy text names "
                                          f"components and thresholds too: 'robust+colour_trim,trim_max_distance=90')")
            problems = robust_options.problems()
            if problems:
                raise TrackerOptionsError("invalid robust_options: " + "; ".join(problems))
            self._robust = robust_options
        config = model.config
        self._spatial_window = config.num_maskmem - 1
        self._pointer_window = pointer_window(model)
        self._objects: Dict[int, ObjectMemory] = {}
        self._frame: Optional[_CurrentFrame] = None
        self._next_index = 0
        self._exposure = ExposureReference()  # robust's exposure component: the stream's first brightness
        self._memory_pos: Optional[torch.Tensor] = None  # [h*w, mem_dim], a constant of the model

    # ------------------------------------------------------------------ public API
    @property
    def obj_ids(self) -> List[int]:
        return list(self._objects)

    @property
    def frame_device(self) -> torch.device:
        """Where ``track`` wants its frames: the CPU when Pillow resizes them, else the model's device
        (callers put a frame there once instead of moving it to the GPU and back)."""
        return torch.device("cpu") if self.options.frame_resize == "pillow" else self.model.device

    @property
    def frame_index(self) -> int:
        """Index of the most recent frame (-1 before the first)."""
        return -1 if self._frame is None else self._frame.index

    def reset(self) -> None:
        """Forget every object and frame."""
        self._objects.clear()
        self._frame = None
        self._next_index = 0
        self._exposure = ExposureReference()

    def current_result(self) -> TrackingResult:
        """Every object's output on the most recent frame (e.g. after a removal)."""
        if self._frame is None:
            raise TrackingError("no frame yet: call track(frame) first")
        return self._result()

    def remove_object(self, obj_id: int) -> None:
        # True and 1.0 equal 1 as dict keys: only an int (add_prompt's ids) names an object.
        if isinstance(obj_id, bool) or not isinstance(obj_id, int) or obj_id not in self._objects:
            raise UnknownObjectError(f"unknown object id {obj_id}; tracked ids are {self.obj_ids}")
        del self._objects[obj_id]

    @torch.inference_mode()
    def track(self, frame: FrameLike) -> TrackingResult:
        """Take the next frame (``H x W x 3`` uint8 RGB) and track every object on it.

        The same as ``track_encoded(prepared, encode([prepared])[0])`` with
        ``prepared = prepare_frame(frame)``, the split a server uses to encode the frames of
        several trackers in one pass."""
        prepared = self.prepare_frame(frame)
        return self.track_encoded(prepared, self.encode([prepared])[0])

    def prepare_frame(self, frame: FrameLike) -> PreparedFrame:
        """A frame resized and normalised for the image encoder (raises ``FrameError``)."""
        pixels, frame_hw = preprocess_video_frame(frame, self.model.image_size, self.model.device,
                                                  self._model_dtype, FrameResize(self.options.frame_resize))
        return PreparedFrame(pixels, frame_hw)

    @property
    def encode_key(self) -> tuple:
        """Trackers with equal keys may share one ``encode`` pass (same model, same autocast)."""
        return id(self.model), self.options.autocast

    @torch.inference_mode()
    def encode(self, frames: Sequence[PreparedFrame]) -> List[FrameFeatures]:
        """The image encoder on several prepared frames in one batch (frames of any trackers with
        this tracker's ``encode_key``); one ``FrameFeatures`` of batch 1 per frame, in order."""
        if not frames:
            return []
        with self._autocast():
            pixels = frames[0].pixels if len(frames) == 1 else torch.cat([f.pixels for f in frames])
            features = self.model.encode_image(pixels)
        if len(frames) == 1:
            return [features]
        # Copies, so that no tracker keeps the whole batch's storage alive after its next frame.
        row = lambda t, i: t[i:i + 1].clone()  # noqa: E731
        return [FrameFeatures(row(features.image_embed, i), row(features.image_pos, i),
                              [row(t, i) for t in features.high_res]) for i in range(len(frames))]

    def track_encoded(self, prepared: PreparedFrame, features: FrameFeatures) -> TrackingResult:
        """Track every object on a frame whose features ``encode`` computed."""
        return track_encoded_together([(self, prepared, features)])[0]

    @torch.inference_mode()
    def add_prompt(self, obj_id: int, points: Optional[Sequence[Sequence[float]]] = None,
                   labels: Optional[Sequence[int]] = None, box: Optional[Sequence[float]] = None, mask=None,
                   clear_old_points: bool = True) -> TrackingResult:
        """Prompt ``obj_id`` on the most recent frame: a new object or a correction."""
        frame = self._frame
        if frame is None:
            raise TrackingError("no frame yet: call track(frame) before add_prompt()")
        if isinstance(obj_id, bool) or not isinstance(obj_id, int):
            raise PromptError(f"obj_id must be an int, got {obj_id!r}")
        if not isinstance(clear_old_points, bool):  # "no" would be taken as true
            raise PromptError(f"clear_old_points must be true or false, got {clear_old_points!r}")
        if points is None and labels is None and box is None and mask is None:
            raise PromptError("empty prompt: give points with labels, a box, or a mask")
        if mask is not None and (points is not None or labels is not None or box is not None):
            raise PromptError("a mask prompt cannot be combined with points or a box; send them separately")
        if box is not None and not clear_old_points and self._has_clicks_on(obj_id, frame.index):
            # Official rule: a box is the first prompt of a frame. Without clicks of this object
            # on this frame there is nothing to clear, so the box is taken either way.
            raise PromptError(f"object {obj_id} already has clicks on this frame and a box must come first: "
                              "send the box with clear_old_points=True (it replaces those clicks)")
        # Validate everything before touching state, so a bad prompt changes nothing; the prompt
        # first, so that its own fault is named even when the tracker is also full.
        mask_tensor = validate_mask(mask, frame.frame_hw) if mask is not None else None
        new_coords = new_labels = None
        if mask is None:
            new_coords, new_labels = self._prompt_points(points, labels, box, frame.frame_hw)
        if obj_id not in self._objects and len(self._objects) >= self.options.max_objects:
            raise TrackingError(f"cannot add object {obj_id}: already tracking the maximum of "
                                f"{self.options.max_objects} objects")

        state = self._objects.get(obj_id)
        if state is None:
            state = ObjectMemory(obj_id=obj_id)
        if self._robust is not None:
            state.robust = state.robust or RobustObjectState()
            state.robust.restart_from_prompt()
        # An object without memory was first prompted on this frame: its prompted memory is
        # committed when the next frame arrives. Such a frame is its initial conditioning frame.
        is_initial = not state.has_memory()
        with self._autocast():
            if mask_tensor is not None:
                prediction = self._predict_from_mask(state, frame, mask_tensor, is_initial)
                state.points = None
            else:
                prompt = self._accumulate_points(state, frame.index, new_coords, new_labels, clear_old_points)
                prediction = self._predict_from_points(state, frame, prompt, is_initial)
                state.points = prompt
        low_res = self._fill_holes(prediction.low_res_masks)
        state.output = FrameOutput(frame.index, low_res[0], prediction.object_score_logits[0],
                                   prediction.iou_scores[0], prediction.obj_ptr[0], memory_pending=True,
                                   is_conditioning=is_initial or self.options.corrections_as_cond)
        self._objects[obj_id] = state
        return self._result()

    def memory_bytes(self) -> int:
        """Total bytes of every tensor the tracker holds between frames (the memory bank,
        current outputs, the current frame's features and, under the robust policy, its colour
        grid, the exposure's ceiling and the stream's first brightness)."""
        tensors: List[torch.Tensor] = []
        for state in self._objects.values():
            tensors += state.tensors()
        if self._frame is not None:
            f = self._frame.features
            tensors += [f.image_embed, f.image_pos] + list(f.high_res)
            tensors += [t for t in (self._frame.colours, self._frame.colour_ceiling) if t is not None]
        if self._exposure.level is not None:
            tensors.append(self._exposure.level)
        if self._memory_pos is not None:
            tensors.append(self._memory_pos)
        return sum(t.numel() * t.element_size() for t in tensors)

    # ------------------------------------------------------------------ prompts
    def _has_clicks_on(self, obj_id: int, frame_index: int) -> bool:
        state = self._objects.get(obj_id)
        return state is not None and state.points is not None and state.points.frame_index == frame_index

    def _prompt_points(self, points, labels, box, frame_hw):
        coords, point_labels = [], []
        if box is not None:
            coords.append(validate_box(box, frame_hw).reshape(2, 2))
            point_labels.append(torch.tensor([LABEL_BOX_TOP_LEFT, LABEL_BOX_BOTTOM_RIGHT], dtype=torch.int32))
        if points is not None or labels is not None:
            point_tensor, label_tensor = validate_points(points, labels, frame_hw)
            coords.append(point_tensor)
            point_labels.append(label_tensor)
        device = self.model.device
        model_coords = scale_points_to_model(torch.cat(coords).to(device), frame_hw, self.model.image_size)
        return model_coords, torch.cat(point_labels).to(device)

    @staticmethod
    def _accumulate_points(state: ObjectMemory, frame_index: int, coords, labels, clear_old_points: bool
                           ) -> PointPrompt:
        old = state.points
        if not clear_old_points and old is not None and old.frame_index == frame_index:
            coords = torch.cat((old.coords, coords))
            labels = torch.cat((old.labels, labels))
        return PointPrompt(frame_index, coords, labels)

    def _previous_logits(self, state: ObjectMemory, frame_index: int) -> Optional[torch.Tensor]:
        output = state.output
        if output is None or output.frame_index != frame_index:
            return None
        return output.low_res_logits.unsqueeze(0).clamp(-PREVIOUS_LOGITS_CLAMP, PREVIOUS_LOGITS_CLAMP)

    def _conditioned_features(self, state: ObjectMemory, frame: _CurrentFrame, is_initial: bool) -> torch.Tensor:
        embed = frame.features.image_embed
        if is_initial:
            return self.model.features_without_memory(embed, frame.features.image_pos)
        memory = self._memory_batch([state], frame.index)
        return self.model.attend_to_memory(embed, frame.features.image_pos, memory)

    def _predict_from_points(self, state: ObjectMemory, frame: _CurrentFrame, prompt: PointPrompt,
                             is_initial: bool) -> MaskPrediction:
        model = self.model
        features = self._conditioned_features(state, frame, is_initial)
        multimask = model.use_multimask(is_initial, int(prompt.labels.shape[0]))
        return model.predict_masks(features, frame.features.high_res, prompt.coords[None], prompt.labels[None],
                                   mask_input=self._previous_logits(state, frame.index), multimask=multimask)

    def _predict_from_mask(self, state: ObjectMemory, frame: _CurrentFrame, mask: torch.Tensor,
                           is_initial: bool) -> MaskPrediction:
        model = self.model
        model_mask = mask_to_model_input(mask.to(model.device), model.image_size)
        if model.config.use_mask_input_as_output_without_sam:
            return model.mask_as_output(frame.features.image_embed, frame.features.high_res, model_mask)
        features = self._conditioned_features(state, frame, is_initial)
        return model.predict_masks(features, frame.features.high_res, mask_input=model_mask,
                                   multimask=model.use_multimask(is_initial, 0))

    # ------------------------------------------------------------------ tracking
    def _commit_prompted_memories(self) -> None:
        """Encode the memories of objects prompted on the previous frame (batched)."""
        frame = self._frame
        pending = [s for s in self._objects.values() if s.output is not None and s.output.memory_pending]
        if frame is None or not pending:
            return
        model = self.model
        low_res = torch.stack([s.output.low_res_logits for s in pending])
        scores = torch.stack([s.output.object_score_logit for s in pending])
        embed = frame.features.expand(len(pending)).image_embed
        features, positions = model.encode_prompted_memory(embed, low_res, scores)
        self._remember_memory_positions(positions)
        for row, state in enumerate(pending):
            output = state.output
            memory = FrameMemory(frame.index, output.obj_ptr, features[row].to(torch.bfloat16, copy=True))
            state.commit(frame.index, memory, output.is_conditioning, self.options.max_cond_frames)
            output.memory_pending = False
            if self.options.clear_non_cond_mem_around_input:
                # Official: once a prompt's memory is stored, the object's non-conditioning memories
                # around it (a non-conditioning correction's own included) go, so that the old
                # appearance does not compete with the correction.
                state.forget_recent_around(frame.index, self.model.config.num_maskmem)

    def _open_frame(self, prepared: PreparedFrame, features: FrameFeatures) -> Optional[_Attending]:
        """A new frame up to memory attention: prompted memories committed, memories gathered.
        None when no object is tracked."""
        self._commit_prompted_memories()
        index = self._next_index
        self._next_index += 1
        colours = ceiling = None
        if self._robust is not None and self._robust.measures_colour:  # once per frame, for all objects
            colours = frame_colour_grid(prepared.pixels, self.model.image_size // 4)
            if self._robust.exposure:
                colours, ceiling = self._exposure.normalise(colours)
        self._frame = _CurrentFrame(index, prepared.frame_hw, features, colours, ceiling)
        if not self._objects:
            return None
        states = list(self._objects.values())
        return _Attending(self, index, states, self._memory_batch(states, index), features)

    def _decoding(self, opened: _Attending, conditioned: torch.Tensor) -> "_Decoding":
        expanded = opened.features.expand(len(opened.states))
        return _Decoding(self, opened.index, opened.states, conditioned, expanded.high_res, expanded.image_embed)

    def _finish_frame(self, step: "_Decoding", prediction: MaskPrediction, memory_features: torch.Tensor,
                      positions: torch.Tensor, decisions: Optional[List[Decision]] = None) -> None:
        """Store each object's output and memory of the frame (``prediction`` rows: ``step.states``);
        ``decisions``: per object, the robust policy's (None: the official policy, every frame
        enters memory)."""
        index, states = step.index, step.states
        self._remember_memory_positions(positions)
        # The memory is already encoded: with reacquire_shown the output may show masks it did not see.
        output = prediction if decisions is None else shown_output(prediction, decisions)
        low_res = self._fill_holes(output.low_res_masks)
        for row, state in enumerate(states):
            # Copies, so that no stored row keeps the whole batch's storage alive.
            obj_ptr = prediction.obj_ptr[row].clone()
            features_row = memory_features[row].to(torch.bfloat16, copy=True)
            if decisions is None or decisions[row].admitted:
                state.commit(index, FrameMemory(index, obj_ptr, features_row), as_conditioning=False,
                             max_conditioning=self.options.max_cond_frames)
            if decisions is not None and state.robust.appearance is not None:
                # Its own FrameMemory: forget_old drops the recent entry's features, not these.
                state.robust.appearance.offer(FrameMemory(index, obj_ptr, features_row), decisions[row].confident)
            state.output = FrameOutput(index, low_res[row].clone(), output.object_score_logits[row].clone(),
                                       prediction.iou_scores[row].clone(), obj_ptr)
            state.points = None
            state.forget_old(index, self._spatial_window, self._pointer_window)

    def _apply_robust_policy(self, step: "_Decoding", prediction: MaskPrediction):
        """The robust policy on one frame's batched prediction (``robust_step.apply_robust_policy``):
        the prediction as the output and the memory encoder must see it, and each object's decision."""
        return apply_robust_policy(self.model, self._robust, step, self._frame, prediction)

    def _memory_batch(self, states: List[ObjectMemory], frame_index: int) -> MemoryBatch:
        appearance = None
        if self._robust is not None and self._robust.appearance_memory:
            appearance = [self._attended_appearance(s) for s in states]
        return gather_memories(self.model, states, frame_index, self._memory_pos, appearance)

    def _attended_appearance(self, state: ObjectMemory) -> List[FrameMemory]:
        """A hidden object also attends to how it looked before it hid (appearance memory): its
        newest appearance memories, as many as leave the newest recent memory in the window (the
        model needs its last "absent" memory); none while it is visible (with appearance_until_scored,
        visible as the model itself scores it)."""
        robust = state.robust
        if robust is None or robust.appearance is None or not robust.lends_appearance:
            return []
        return robust.appearance.newest_first()[:attended_places(self.model.config.num_maskmem)]

    def _remember_memory_positions(self, positions: torch.Tensor) -> None:
        if self._memory_pos is None:
            self._memory_pos = positions[0].float().flatten(1).transpose(0, 1).contiguous()

    # ------------------------------------------------------------------ helpers
    def _fill_holes(self, low_res: torch.Tensor) -> torch.Tensor:
        return fill_holes(low_res, self.options.fill_hole_area) if self.options.fill_hole_area > 0 else low_res

    @property
    def _model_dtype(self) -> torch.dtype:
        return self.model.no_mem_embed.dtype

    def _autocast(self):
        if self.options.autocast is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.model.device.type, dtype=getattr(torch, self.options.autocast))

    def _result(self) -> TrackingResult:
        frame = self._frame
        model = self.model
        side = model.image_size // 4
        outputs = [s.output for s in self._objects.values()]
        if outputs:
            low_res = torch.stack([o.low_res_logits for o in outputs]).float()
            scores = torch.stack([o.object_score_logit for o in outputs]).float().reshape(-1)
            ious = torch.stack([o.iou_score for o in outputs]).float().reshape(-1)
        else:
            low_res = torch.zeros(0, 1, side, side, device=model.device)
            scores = torch.zeros(0, device=model.device)
            ious = torch.zeros(0, device=model.device)
        return TrackingResult(frame.index, self.obj_ids, low_res, scores, ious, frame.frame_hw,
                              self.options.non_overlap_masks, self._predicted_boxes(frame))

    def _predicted_boxes(self, frame: _CurrentFrame) -> Optional[List[Optional[tuple]]]:
        """Robust policy: each object's predicted box on this frame, in the frame's pixels."""
        if self._robust is None:
            return None
        side = self.model.image_size // 4
        height, width = (float(v) for v in frame.frame_hw)
        boxes: List[Optional[tuple]] = []
        for state in self._objects.values():
            box = state.robust.predicted_box if state.robust is not None else None
            if box is None or state.output is None or state.output.frame_index != frame.index:
                boxes.append(None)
                continue
            x0, y0, x1, y1 = (float(v) for v in box)
            boxes.append((min(max(x0 * width / side, 0.0), width), min(max(y0 * height / side, 0.0), height),
                          min(max(x1 * width / side, 0.0), width), min(max(y1 * height / side, 0.0), height)))
        return boxes


def _rows(prediction: MaskPrediction, start: int, stop: int) -> MaskPrediction:
    pick = lambda t: None if t is None else t[start:stop]  # noqa: E731
    return MaskPrediction(*(pick(getattr(prediction, f.name)) for f in dataclasses.fields(MaskPrediction)))


def _join_rows(parts: List[MaskPrediction]) -> MaskPrediction:
    """The inverse of ``_rows``: predictions of consecutive rows as one."""
    def join(name: str):
        values = [getattr(part, name) for part in parts]
        return None if values[0] is None else torch.cat(values)
    return MaskPrediction(*(join(f.name) for f in dataclasses.fields(MaskPrediction)))


def _attend_together(model: SAM2Model, opened: List[_Attending]) -> List[_Decoding]:
    """Memory attention for several trackers' frames: those whose memories share a layout (the
    usual case: streams with the same settings, past their first frames) in one pass, each frame's
    self-attention once; a tracker alone exactly as ``track_encoded``."""
    groups: Dict[tuple, List[int]] = {}
    for k, item in enumerate(opened):
        groups.setdefault(item.memory.layout, []).append(k)
    conditioned: List[Optional[torch.Tensor]] = [None] * len(opened)
    for members in groups.values():
        if len(members) == 1:
            item = opened[members[0]]
            conditioned[members[0]] = model.attend_to_memory(item.features.image_embed, item.features.image_pos,
                                                             item.memory)
            continue
        items = [opened[k] for k in members]
        rows = [len(item.states) for item in items]
        joined = model.attend_to_memory(torch.cat([item.features.image_embed for item in items]),
                                        torch.cat([item.features.image_pos for item in items]),
                                        MemoryBatch.join([item.memory for item in items]), rows)
        for k, part in zip(members, joined.split(rows)):
            conditioned[k] = part
    return [item.tracker._decoding(item, c) for item, c in zip(opened, conditioned)]


@torch.inference_mode()
def track_encoded_together(items: Sequence[Tuple[StreamingTracker, PreparedFrame, FrameFeatures]]
                           ) -> List[TrackingResult]:
    """Track one encoded frame in each of several trackers (one model, one ``encode_key``): memory
    attention in one pass per memory layout (``_attend_together``), then every object of every
    tracker through the mask decoder and the memory encoder in one batch. One tracker alone
    is exactly ``track_encoded``; several agree with one at a time to float rounding."""
    if not items:
        return []
    first = items[0][0]
    if any(t.encode_key != first.encode_key for t, _, _ in items):
        raise TrackingError("trackers tracked together must share their model and autocast setting")
    model = first.model
    with first._autocast():
        opened = [s for s in (tracker._open_frame(prepared, features) for tracker, prepared, features in items)
                  if s is not None]
        steps = _attend_together(model, opened)
        if steps:
            join = (lambda parts: parts[0]) if len(steps) == 1 else torch.cat  # one tracker: no copies
            conditioned = join([s.conditioned for s in steps])
            high_res = [join([s.high_res[k] for s in steps]) for k in range(len(steps[0].high_res))]
            prediction = model.predict_masks(conditioned, high_res, multimask=model.use_multimask(False, 0))
            bounds = list(itertools.accumulate([len(s.states) for s in steps], initial=0))
            parts = [prediction] if len(steps) == 1 else \
                [_rows(prediction, start, stop) for start, stop in zip(bounds, bounds[1:])]
            # A tracker under the robust policy decides on its own objects before their memory is
            # encoded (a refused re-appearance is stored as absent).
            decisions: List[Optional[List[Decision]]] = [None] * len(steps)
            for k, step in enumerate(steps):
                if step.tracker._robust is not None:
                    parts[k], decisions[k] = step.tracker._apply_robust_policy(step, parts[k])
            if any(decided is not None for decided in decisions):
                prediction = parts[0] if len(steps) == 1 else _join_rows(parts)
            # Tracked frames: memory from the decoder's own high-res logits, through a sigmoid.
            binarize = torch.zeros(conditioned.shape[0], dtype=torch.bool, device=model.device)
            memory_features, positions = model.encode_memory(join([s.image_embed for s in steps]),
                                                             prediction.high_res_masks,
                                                             prediction.object_score_logits, binarize)
            for k, (step, start, stop) in enumerate(zip(steps, bounds, bounds[1:])):
                step.tracker._finish_frame(step, parts[k], memory_features[start:stop], positions[start:stop],
                                           decisions[k])
    return [tracker._result() for tracker, _, _ in items]
