"""Single-image prompting: embed an image once, then decode masks per prompt in milliseconds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import numpy as np
import torch

from .prompt_encoder import LABEL_BOX_BOTTOM_RIGHT, LABEL_BOX_TOP_LEFT
from .prompts import PromptError, validate_box, validate_points
from .sam2 import FrameFeatures, SAM2Model
from .transforms import FrameLike, preprocess_image, resize_logits, scale_points_to_model


@dataclass
class ImagePrediction:
    masks: np.ndarray           # [M, H, W] bool at the image's resolution
    iou_scores: np.ndarray      # [M] predicted IoU
    low_res_logits: np.ndarray  # [M, S/4, S/4] logits, clamped to [-32, 32] (usable as mask_input)


def embed_image(model: SAM2Model, image: FrameLike) -> Tuple[FrameFeatures, Tuple[int, int]]:
    """Features of one ``H x W x 3`` uint8 RGB image for prompting, and its ``(height, width)``."""
    # The official image predictor's torchvision resize, not the video predictor's Pillow one.
    pixels, image_hw = preprocess_image(image, model.image_size, model.device, next(model.parameters()).dtype)
    features = model.encode_image(pixels)
    # The image has no memory: SAM 2 adds the "no memory" embedding, as on a first prompt.
    without_memory = model.features_without_memory(features.image_embed, features.image_pos)
    return FrameFeatures(without_memory, features.image_pos, features.high_res), image_hw


class ImagePredictor:
    """SAM 2 as an image model (``SAM2ImagePredictor`` semantics)."""

    def __init__(self, model: SAM2Model, mask_threshold: float = 0.0):
        self.model = model
        self.mask_threshold = mask_threshold
        self._features: Optional[FrameFeatures] = None
        self._image_hw: Optional[Tuple[int, int]] = None

    @torch.inference_mode()
    def set_image(self, image: FrameLike) -> None:
        """Compute the image embedding (``H x W x 3`` uint8 RGB) once for many prompts."""
        self._features, self._image_hw = embed_image(self.model, image)

    @property
    def image_hw(self) -> Tuple[int, int]:
        if self._image_hw is None:
            raise PromptError("call set_image() before predict()")
        return self._image_hw

    @torch.inference_mode()
    def predict(self, points: Optional[Sequence[Sequence[float]]] = None, labels: Optional[Sequence[int]] = None,
                box: Optional[Sequence[float]] = None, mask_input: Optional[np.ndarray] = None,
                multimask_output: bool = True) -> ImagePrediction:
        """Masks for one prompt. ``points``/``box`` in pixels of the image given to ``set_image``;
        ``mask_input``: low-resolution logits ``[S/4, S/4]`` (e.g. from a previous prediction)."""
        height, width = self.image_hw
        model = self.model
        device = model.device
        coords_list, labels_list = [], []
        if box is not None:
            box_tensor = validate_box(box, (height, width))
            coords_list.append(box_tensor.reshape(2, 2))
            labels_list.append(torch.tensor([LABEL_BOX_TOP_LEFT, LABEL_BOX_BOTTOM_RIGHT], dtype=torch.int32))
        if points is not None or labels is not None:
            point_tensor, label_tensor = validate_points(points, labels, (height, width))
            coords_list.append(point_tensor)
            labels_list.append(label_tensor)
        coords = label_tensor_all = None
        if coords_list:
            coords = scale_points_to_model(torch.cat(coords_list).to(device), (height, width), model.image_size)[None]
            label_tensor_all = torch.cat(labels_list).to(device)[None]
        mask_tensor = None
        if mask_input is not None:
            mask_tensor = torch.as_tensor(np.asarray(mask_input), dtype=torch.float32, device=device)
            expected = model.sam_prompt_encoder.mask_input_size
            if mask_tensor.dim() == 3 and mask_tensor.shape[0] == 1:
                mask_tensor = mask_tensor[0]
            if tuple(mask_tensor.shape) != tuple(expected):
                raise PromptError(f"mask_input must be low-resolution logits of shape {expected}, "
                                  f"got {tuple(mask_tensor.shape)}")
            mask_tensor = mask_tensor[None, None]
        features = self._features
        dtype = features.image_embed.dtype
        sparse, dense = model.sam_prompt_encoder(
            coords, label_tensor_all, None if mask_tensor is None else mask_tensor.to(dtype))
        decoded = model.sam_mask_decoder(features.image_embed, model.sam_prompt_encoder.dense_positional_encoding(),
                                         sparse.to(dtype), dense.to(dtype), multimask_output, features.high_res)
        low_res = decoded.mask_logits.float()
        full = resize_logits(low_res, (height, width))
        return ImagePrediction(
            masks=(full > self.mask_threshold)[0].cpu().numpy(),
            iou_scores=decoded.iou_scores.float()[0].cpu().numpy(),
            low_res_logits=low_res.clamp(-32.0, 32.0)[0].cpu().numpy(),
        )
