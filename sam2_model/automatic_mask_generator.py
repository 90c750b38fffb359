"""Segment everything: masks for a whole image from a grid of clicks, without any prompt.

``AutomaticMaskGenerator`` is the official ``SAM2AutomaticMaskGenerator`` (sam2 1.1.0) in this
package: the same settings (``MaskGeneratorOptions``) give the same masks in the same order. Used by
scripts and, through ``generate``, by front ends that discover objects to track.

Pipeline, per crop of the image (the whole image, then ``crop_n_layers`` layers of tiles): encode the
crop once; click every point of the layer's grid, ``points_per_batch`` clicks per decoder pass; keep
masks whose predicted IoU and stability pass their thresholds and that the crop did not cut off;
drop duplicates by box NMS on predicted IoU. Between crops, duplicates are dropped by box NMS that
prefers the smaller crop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch

from .amg_geometry import (CropBox, box_areas, box_nms, crop_boxes, mask_boxes, near_crop_edge, paste_mask,
                           stability_scores)
from .holes import remove_small_regions
from .image_predictor import embed_image
from .mask_generator_options import MaskGeneratorOptions
from .prompt_encoder import LABEL_FOREGROUND
from .sam2 import FrameFeatures, SAM2Model
from .transforms import FrameLike, as_rgb_tensor, resize_logits, scale_points_to_model

# Low-resolution logits fed back to the decoder (m2m) are clamped as the image predictor returns them.
LOW_RES_LOGIT_LIMIT = 32.0


@dataclass
class GeneratedMask:
    """One mask found in the image; the fields (and their conventions) of an official record."""

    segmentation: np.ndarray                          # [H, W] bool, the whole image
    area: int                                         # pixels in the mask
    bbox: Tuple[float, float, float, float]           # (x, y, w, h): first pixel, last minus first
    predicted_iou: float                              # the decoder's estimate of the mask's quality
    stability_score: float                            # IoU of the mask cut at threshold +/- offset
    point_coords: List[List[float]]                   # [[x, y]]: the click that made it, image pixels
    crop_box: Tuple[float, float, float, float]       # (x, y, w, h) of the crop it was found in

    def as_record(self) -> Dict[str, Any]:
        """The official generator's dict for this mask (``output_mode="binary_mask"``)."""
        return {"segmentation": self.segmentation, "area": self.area, "bbox": list(self.bbox),
                "predicted_iou": self.predicted_iou, "point_coords": [list(p) for p in self.point_coords],
                "stability_score": self.stability_score, "crop_box": list(self.crop_box)}


@dataclass
class _CropMasks:
    """Masks kept in one crop, in crop coordinates."""

    crop_box: CropBox
    masks: torch.Tensor       # [N, h, w] bool
    boxes: torch.Tensor       # [N, 4] int64, inclusive
    iou: torch.Tensor         # [N] float32 predicted IoU
    stability: torch.Tensor   # [N] float32
    points: torch.Tensor      # [N, 2] float32 clicks, crop pixels

    def select(self, index: torch.Tensor) -> "_CropMasks":
        return _CropMasks(self.crop_box, self.masks[index], self.boxes[index], self.iou[index],
                          self.stability[index], self.points[index])

    @staticmethod
    def cat(crop_box: CropBox, parts: List["_CropMasks"]) -> "_CropMasks":
        return _CropMasks(crop_box, *(torch.cat([getattr(p, name) for p in parts]) for name in
                                      ("masks", "boxes", "iou", "stability", "points")))

    def in_image(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """Boxes and clicks moved to image coordinates."""
        x0, y0 = self.crop_box[0], self.crop_box[1]
        boxes = self.boxes + torch.tensor([x0, y0, x0, y0], device=self.boxes.device)
        points = self.points + torch.tensor([x0, y0], dtype=torch.float32, device=self.points.device)
        return boxes, points


@dataclass
class _Decoded:
    """One decoder pass over a batch of clicks."""

    low_res: torch.Tensor  # [B, M, S/4, S/4] float32 logits
    iou: torch.Tensor      # [B, M] float32


class AutomaticMaskGenerator:
    """Masks of everything in an image (``SAM2AutomaticMaskGenerator`` semantics)."""

    def __init__(self, model: SAM2Model, options: Optional[MaskGeneratorOptions] = None, **settings: Any):
        """Args:
            model: the SAM 2 model (any official-format model; its image size is read from it).
            options: all settings at once; see ``MaskGeneratorOptions`` for each one's meaning.
            **settings: or the settings by name, as for the official generator
                (``points_per_side=32, pred_iou_thresh=0.8, ...``); not together with ``options``.
        """
        if options is not None and settings:
            raise TypeError("give either options or keyword settings, not both")
        self.model = model
        self.options = options if options is not None else MaskGeneratorOptions.from_kwargs(**settings)
        self._grids = [torch.as_tensor(grid) for grid in self.options.layer_grids()]

    @torch.inference_mode()
    def generate(self, image: FrameLike) -> List[GeneratedMask]:
        """All masks of an ``H x W x 3`` uint8 RGB image, in the official generator's order."""
        rgb = as_rgb_tensor(image)
        image_hw = (int(rgb.shape[0]), int(rgb.shape[1]))
        options = self.options
        crops = [self._masks_in_crop(rgb, box, self._grids[layer], image_hw)
                 for box, layer in crop_boxes(image_hw, options.crop_n_layers, options.crop_overlap_ratio)]
        owners = [(crop_index, row) for crop_index, crop in enumerate(crops) for row in range(len(crop.iou))]
        if len(crops) > 1 and owners:
            boxes = torch.cat([crop.in_image()[0] for crop in crops])
            # Prefer masks from smaller crops (the score is 1 / crop area).
            crop_area = [float(box_areas(torch.tensor([crop.crop_box]))[0]) for crop in crops]
            scores = torch.cat([torch.full((len(crop.iou),), 1.0, device=boxes.device) / area
                                for crop, area in zip(crops, crop_area)])
            keep = box_nms(boxes.float(), scores, options.crop_nms_thresh).tolist()
            owners = [owners[index] for index in keep]
        return [self._record(crops[crop_index], row, image_hw) for crop_index, row in owners]

    # ------------------------------------------------------------------ one crop
    def _masks_in_crop(self, rgb: torch.Tensor, crop_box: CropBox, grid: torch.Tensor,
                       image_hw: Tuple[int, int]) -> _CropMasks:
        x0, y0, x1, y1 = crop_box
        features, crop_hw = embed_image(self.model, rgb[y0:y1, x0:x1])
        device = self.model.device
        # Clicks in crop pixels, float32 as the official generator hands them to its predictor.
        scale = torch.tensor([crop_hw[1], crop_hw[0]], dtype=torch.float64)
        points = (grid * scale).to(dtype=torch.float32, device=device)
        batch = self.options.points_per_batch
        parts = [self._masks_from_clicks(features, points[start:start + batch], crop_box, crop_hw, image_hw)
                 for start in range(0, len(points), batch)]
        found = _CropMasks.cat(crop_box, parts)
        return found.select(box_nms(found.boxes.float(), found.iou, self.options.box_nms_thresh))

    def _masks_from_clicks(self, features: FrameFeatures, points: torch.Tensor, crop_box: CropBox,
                           crop_hw: Tuple[int, int], image_hw: Tuple[int, int]) -> _CropMasks:
        """Masks of one batch of clicks that pass the quality filters and are not cut by the crop."""
        options = self.options
        decoded = self._decode(features, points, None, options.multimask_output, crop_hw)
        per_click = decoded.low_res.shape[1]
        low_res, iou = decoded.low_res.flatten(0, 1), decoded.iou.flatten(0, 1)
        points = points.repeat_interleave(per_click, dim=0)
        if options.use_m2m:
            low_res, iou = self._refine(features, points, low_res, crop_hw)
        if options.pred_iou_thresh > 0.0:
            keep = iou > options.pred_iou_thresh
            low_res, iou, points = low_res[keep], iou[keep], points[keep]
        # Clean-up and upsampling act on each mask alone: only masks that passed the IoU filter need them.
        logits = self._at_crop_size(low_res, crop_hw)
        stability = stability_scores(logits, options.mask_threshold, options.stability_score_offset)
        if options.stability_score_thresh > 0.0:
            keep = stability >= options.stability_score_thresh
            logits, iou, points, stability = logits[keep], iou[keep], points[keep], stability[keep]
        masks = logits > options.mask_threshold
        boxes = mask_boxes(masks)
        inside = ~near_crop_edge(boxes, crop_box, image_hw)
        return _CropMasks(crop_box, masks[inside], boxes[inside], iou[inside], stability[inside], points[inside])

    def _refine(self, features: FrameFeatures, points: torch.Tensor, low_res: torch.Tensor,
                crop_hw: Tuple[int, int]) -> Tuple[torch.Tensor, torch.Tensor]:
        """m2m: decode each mask again from its click and its own low-resolution logits (one mask each)."""
        batch = self.options.points_per_batch
        refined, iou = [], []
        for start in range(0, len(points), batch):
            limited = low_res[start:start + batch, None].clamp(-LOW_RES_LOGIT_LIMIT, LOW_RES_LOGIT_LIMIT)
            decoded = self._decode(features, points[start:start + batch], limited, False, crop_hw)
            refined.append(decoded.low_res[:, 0])
            iou.append(decoded.iou[:, 0])
        return torch.cat(refined), torch.cat(iou)

    def _decode(self, features: FrameFeatures, points: torch.Tensor, mask_input: Optional[torch.Tensor],
                multimask_output: bool, crop_hw: Tuple[int, int]) -> _Decoded:
        """One foreground click per prompt (``points`` ``[B, 2]`` in crop pixels), all decoded together."""
        model = self.model
        dtype = features.image_embed.dtype
        coords = scale_points_to_model(points, crop_hw, model.image_size)[:, None]
        labels = torch.full((len(points), 1), LABEL_FOREGROUND, dtype=torch.int32, device=points.device)
        sparse, dense = model.sam_prompt_encoder(coords, labels, None if mask_input is None else mask_input.to(dtype))
        batch = len(points)
        decoded = model.sam_mask_decoder(features.image_embed.expand(batch, -1, -1, -1),
                                         model.sam_prompt_encoder.dense_positional_encoding(),
                                         sparse.to(dtype), dense.to(dtype), multimask_output, features.high_res)
        return _Decoded(decoded.mask_logits.float(), decoded.iou_scores.float())

    def _at_crop_size(self, low_res: torch.Tensor, crop_hw: Tuple[int, int]) -> torch.Tensor:
        """Low-resolution logits ``[N, S/4, S/4]`` -> ``[N, h, w]`` at the crop's size, after the image
        predictor's small-region clean-up (when ``min_mask_region_area`` > 0)."""
        options = self.options
        cleaned = remove_small_regions(low_res[:, None], options.min_mask_region_area, options.mask_threshold)
        return resize_logits(cleaned, crop_hw)[:, 0]

    # ------------------------------------------------------------------ output
    @staticmethod
    def _record(crop: _CropMasks, row: int, image_hw: Tuple[int, int]) -> GeneratedMask:
        boxes, points = crop.in_image()
        x0, y0, x1, y1 = (float(v) for v in boxes[row].tolist())
        cx0, cy0, cx1, cy1 = crop.crop_box
        segmentation = paste_mask(crop.masks[row], crop.crop_box, image_hw).cpu().numpy()
        return GeneratedMask(
            segmentation=segmentation,
            area=int(np.count_nonzero(segmentation)),
            bbox=(x0, y0, x1 - x0, y1 - y0),
            predicted_iou=float(crop.iou[row]),
            stability_score=float(crop.stability[row]),
            point_coords=[points[row].tolist()],
            crop_box=(float(cx0), float(cy0), float(cx1 - cx0), float(cy1 - cy0)),
        )
