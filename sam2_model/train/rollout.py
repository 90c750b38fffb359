"""One training clip through SAM 2, with memory carried exactly as the StreamingTracker does it.

The first frame is prompted (click, box or mask, then correction clicks); every later frame is
tracked from memory, optionally with one correction click. Memories are stored and selected
with the tracker's own ``ObjectMemory`` / ``gather_memories`` (same windows, same bfloat16
storage, prompted frames binarised, tracked frames through a sigmoid), so the model is trained
on exactly what it attends to when tracking. Gradients flow through the memories.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F

from ..memory_bank import FrameMemory, ObjectMemory, gather_memories, pointer_window
from ..sam2 import FrameFeatures, MaskPrediction, SAM2Model
from ..tracker import PREVIOUS_LOGITS_CLAMP
from .losses import LossTerms, LossWeights, add_terms, prediction_losses
from .prompting import ObjectDraws, PointPrompts, sample_box, sample_click, sample_correction
from .step_data import RolloutPlan


@dataclass
class RolloutResult:
    losses: LossTerms
    num_supervised: int                         # decoder passes the losses sum over
    low_res_logits: torch.Tensor                # [B, T, S/4, S/4] final logits per frame (detached)
    object_score_logits: torch.Tensor           # [B, T] (detached)
    feature_rms: float                          # root mean square of the stride-16 image features


@dataclass
class _Frame:
    index: int
    features: FrameFeatures   # expanded to the batch of objects


def _frame_features(all_frames: FrameFeatures, rows: torch.Tensor) -> FrameFeatures:
    """Each object's view of its own clip's frame: ``rows`` [B] index the encoded frames."""
    if bool((rows == rows[0]).all()):  # one clip: a view, not a copy
        one = int(rows[0])
        single = FrameFeatures(all_frames.image_embed[one:one + 1], all_frames.image_pos[one:one + 1],
                               [level[one:one + 1] for level in all_frames.high_res])
        return single.expand(len(rows))
    return FrameFeatures(all_frames.image_embed[rows], all_frames.image_pos[rows],
                         [level[rows] for level in all_frames.high_res])


class ClipRollout:
    """Runs C clips of equal length for B objects in all, in one batch, and sums the losses of
    every decoder pass. Batching clips matters on small models: the per-operation overhead is
    shared, so 32 objects cost about 7x one object, not 32x."""

    def __init__(self, model: SAM2Model, draws: "ObjectDraws | torch.Generator",
                 weights: LossWeights = LossWeights()):
        """``draws``: the random numbers of simulated prompts (a generator alone: this rollout
        holds the whole batch of objects)."""
        self.model = model
        self.draws = draws if isinstance(draws, ObjectDraws) else ObjectDraws(draws)
        self.weights = weights
        self._spatial_window = model.config.num_maskmem - 1
        self._pointer_window = pointer_window(model)

    def run(self, images: torch.Tensor, truth: torch.Tensor, plan: RolloutPlan,
            clip_of_object: Optional[torch.Tensor] = None) -> RolloutResult:
        """``images`` ``[T, 3, S, S]`` (one clip) or ``[C, T, 3, S, S]``, normalised; ``truth``
        ``[B, T, S, S]`` bool, every object present on frame 0; ``clip_of_object`` ``[B]``: the clip
        each object belongs to (all 0 when omitted)."""
        model = self.model
        batch, length = truth.shape[:2]
        if images.dim() == 4:
            images = images[None]
        if images.shape[1] != length:
            raise ValueError(f"clips of {images.shape[1]} frames but truth of {length}")
        if clip_of_object is None:
            clip_of_object = torch.zeros(batch, dtype=torch.long)
        first_rows = clip_of_object.to(device=images.device, dtype=torch.long) * length
        all_frames = model.encode_image(images.flatten(0, 1))
        states = [ObjectMemory(obj_id=row) for row in range(batch)]
        memory_pos: Optional[torch.Tensor] = None
        losses: Optional[LossTerms] = None
        supervised = 0
        final_logits, final_scores = [], []
        for index in range(length):
            frame = _Frame(index, _frame_features(all_frames, first_rows + index))
            target = truth[:, index]
            if index == 0:
                predictions, prompted = self._prompt_first_frame(frame, target, plan)
            else:
                predictions, prompted = self._track(frame, target, states, memory_pos,
                                                    correct=index in plan.corrected_frames)
            frame_loss = None
            for pass_index, prediction in enumerate(predictions):
                if prediction.candidate_logits is None:
                    continue  # a mask prompt used as the output: nothing to supervise
                # Only a first-frame single click is ambiguous; tracked frames and corrections are not.
                ambiguous = index == 0 and pass_index == 0 and plan.prompt_kind == "click"
                terms = prediction_losses(prediction.candidate_logits, prediction.candidate_ious,
                                          prediction.object_score_logits, target, self.weights, ambiguous)
                frame_loss = terms if frame_loss is None else add_terms(frame_loss, terms)
                supervised += 1
            if frame_loss is not None:
                losses = frame_loss if losses is None else add_terms(losses, frame_loss)
            last = predictions[-1]
            # As the tracker by default (corrections_as_cond off): a corrected frame is remembered as a
            # recent frame; only the first prompt conditions.
            memory_pos = self._remember(frame, states, last, prompted, memory_pos, as_conditioning=index == 0)
            final_logits.append(last.low_res_masks.detach()[:, 0])
            final_scores.append(last.object_score_logits.detach()[:, 0])
        if losses is None:
            zero = sum(p.sum() for p in model.parameters()) * 0.0
            losses = LossTerms(zero, zero, zero, zero, zero)
        feature_rms = float(all_frames.image_embed.detach().float().pow(2).mean().sqrt())
        return RolloutResult(losses, supervised, torch.stack(final_logits, dim=1), torch.stack(final_scores, dim=1),
                             feature_rms)

    # ------------------------------------------------------------------ steps
    def _prompt_first_frame(self, frame: _Frame, target: torch.Tensor, plan: RolloutPlan
                            ) -> Tuple[List[MaskPrediction], bool]:
        model = self.model
        features = frame.features
        if plan.prompt_kind == "mask" and model.config.use_mask_input_as_output_without_sam:
            return [model.mask_as_output(features.image_embed, features.high_res, target[:, None].float())], True
        conditioned = model.features_without_memory(features.image_embed, features.image_pos)
        if plan.prompt_kind == "mask":
            prompts = None
            prediction = model.predict_masks(conditioned, features.high_res, mask_input=target[:, None].float(),
                                             multimask=model.use_multimask(True, 0))
        else:
            prompts = sample_box(target, self.draws) if plan.prompt_kind == "box" \
                else sample_click(target, self.draws)
            prediction = self._decode(conditioned, features, prompts, None, is_initial=True)
        predictions = [prediction]
        for _ in range(plan.initial_corrections):
            prompts, prediction = self._correct(conditioned, features, prompts, prediction, target, is_initial=True)
            predictions.append(prediction)
        return predictions, True

    def _track(self, frame: _Frame, target: torch.Tensor, states: List[ObjectMemory],
               memory_pos: Optional[torch.Tensor], correct: bool) -> Tuple[List[MaskPrediction], bool]:
        model = self.model
        features = frame.features
        memory = gather_memories(model, states, frame.index, memory_pos)
        conditioned = model.attend_to_memory(features.image_embed, features.image_pos, memory)
        prediction = model.predict_masks(conditioned, features.high_res, multimask=model.use_multimask(False, 0))
        predictions = [prediction]
        if correct:
            _, corrected = self._correct(conditioned, features, None, prediction, target, is_initial=False)
            predictions.append(corrected)
            return predictions, True
        return predictions, False

    def _correct(self, conditioned: torch.Tensor, features: FrameFeatures, prompts: Optional[PointPrompts],
                 previous: MaskPrediction, target: torch.Tensor, is_initial: bool
                 ) -> Tuple[PointPrompts, MaskPrediction]:
        """One more click on each object's error, decoded with the previous logits as mask input
        (as a correction through ``StreamingTracker.add_prompt`` does)."""
        predicted = F.interpolate(previous.low_res_masks.detach(), size=target.shape[-2:], mode="bilinear",
                                  align_corners=False)[:, 0] > 0
        click = sample_correction(predicted, target, self.draws)
        prompts = click if prompts is None else prompts.extend(click.coords, click.labels)
        mask_input = previous.low_res_masks.detach().clamp(-PREVIOUS_LOGITS_CLAMP, PREVIOUS_LOGITS_CLAMP)
        return prompts, self._decode(conditioned, features, prompts, mask_input, is_initial)

    def _decode(self, conditioned: torch.Tensor, features: FrameFeatures, prompts: PointPrompts,
                mask_input: Optional[torch.Tensor], is_initial: bool) -> MaskPrediction:
        model = self.model
        multimask = model.use_multimask(is_initial, prompts.num_points)
        return model.predict_masks(conditioned, features.high_res, prompts.coords, prompts.labels,
                                   mask_input=mask_input, multimask=multimask)

    def _remember(self, frame: _Frame, states: List[ObjectMemory], prediction: MaskPrediction, prompted: bool,
                  memory_pos: Optional[torch.Tensor], as_conditioning: bool) -> torch.Tensor:
        """Encode and store every object's memory of this frame, as the tracker does."""
        model = self.model
        embed = frame.features.image_embed
        if prompted:
            features, positions = model.encode_prompted_memory(embed, prediction.low_res_masks,
                                                               prediction.object_score_logits)
        else:
            not_binarised = torch.zeros(len(states), dtype=torch.bool, device=model.device)
            features, positions = model.encode_memory(embed, prediction.high_res_masks,
                                                      prediction.object_score_logits, not_binarised)
        if memory_pos is None:
            memory_pos = positions[0].float().flatten(1).transpose(0, 1)
        for row, state in enumerate(states):
            memory = FrameMemory(frame.index, prediction.obj_ptr[row], features[row].to(torch.bfloat16))
            state.commit(frame.index, memory, as_conditioning, max_conditioning=0)
            state.forget_old(frame.index, self._spatial_window, self._pointer_window)
        return memory_pos
