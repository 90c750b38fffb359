"""Drive the official ``sam2`` video predictor frame by frame, for the benchmark's comparison.

Development only: imported by ``sam2_model.benchmark`` inside a ``try`` when the official package
(PyPI ``sam2``, which needs torchvision) happens to be installed. Nothing else imports it, and
``sam2_model`` never depends on it.
"""

from __future__ import annotations

import contextlib
import io
from typing import Dict, List, Sequence

import numpy as np
import torch

import sam2.sam2_video_predictor as official_video  # noqa: F401  (ImportError = no comparison)
from sam2.build_sam import build_sam2_video_predictor

from .transforms import IMAGENET_MEAN, IMAGENET_STD

# Released names -> the official package's config files.
_CONFIG_FILES = {
    "sam2_hiera_tiny": "configs/sam2/sam2_hiera_t.yaml",
    "sam2_hiera_small": "configs/sam2/sam2_hiera_s.yaml",
    "sam2_hiera_base_plus": "configs/sam2/sam2_hiera_b+.yaml",
    "sam2_hiera_large": "configs/sam2/sam2_hiera_l.yaml",
    "sam2.1_hiera_tiny": "configs/sam2.1/sam2.1_hiera_t.yaml",
    "sam2.1_hiera_small": "configs/sam2.1/sam2.1_hiera_s.yaml",
    "sam2.1_hiera_base_plus": "configs/sam2.1/sam2.1_hiera_b+.yaml",
    "sam2.1_hiera_large": "configs/sam2.1/sam2.1_hiera_l.yaml",
}


class OfficialStream:
    """The official predictor over frames given up front (it cannot take them one by one),
    tracked one frame per ``track`` call with the same per-frame work as a stream."""

    def __init__(self, model_name: str, state_dict: Dict[str, torch.Tensor], frames: Sequence[np.ndarray],
                 device: torch.device):
        if model_name not in _CONFIG_FILES:
            raise ImportError(f"no official config for {model_name!r}; the comparison needs a released name")
        self.predictor = build_sam2_video_predictor(_CONFIG_FILES[model_name], ckpt_path=None, device=str(device))
        self.predictor.load_state_dict(state_dict, strict=True)
        self.predictor.eval()
        size = self.predictor.image_size
        images = torch.from_numpy(np.stack(frames)).float().div(255.0).permute(0, 3, 1, 2)
        images = torch.nn.functional.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
        mean = torch.tensor(IMAGENET_MEAN).reshape(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD).reshape(1, 3, 1, 1)
        images = (images - mean) / std
        height, width = frames[0].shape[:2]

        def in_memory_frames(**_kwargs):
            return images, height, width

        original = official_video.load_video_frames
        official_video.load_video_frames = in_memory_frames
        try:
            self.state = self.predictor.init_state(video_path="<in-memory frames>")
        finally:
            official_video.load_video_frames = original

    def add_points(self, frame_index: int, obj_id: int, points: List[List[float]], labels: List[int]) -> None:
        self.predictor.add_new_points_or_box(self.state, frame_idx=frame_index, obj_id=obj_id,
                                             points=np.asarray(points, dtype=np.float32),
                                             labels=np.asarray(labels, dtype=np.int32))

    @torch.inference_mode()
    def track(self, frame_index: int) -> torch.Tensor:
        with contextlib.redirect_stderr(io.StringIO()):  # the official progress bar
            for _, _, masks in self.predictor.propagate_in_video(self.state, start_frame_idx=frame_index,
                                                                 max_frame_num_to_track=0):
                return masks
        raise RuntimeError(f"the official predictor produced no output for frame {frame_index}")


class OfficialImage:
    """The official ``SAM2ImagePredictor`` with given weights."""

    def __init__(self, model_name: str, state_dict: Dict[str, torch.Tensor], device: torch.device):
        from sam2.build_sam import build_sam2
        from sam2.sam2_image_predictor import SAM2ImagePredictor

        if model_name not in _CONFIG_FILES:
            raise ImportError(f"no official config for {model_name!r}; the comparison needs a released name")
        model = build_sam2(_CONFIG_FILES[model_name], ckpt_path=None, device=str(device))
        model.load_state_dict(state_dict, strict=True)
        self.predictor = SAM2ImagePredictor(model.eval())

    def set_image(self, image: np.ndarray) -> None:
        self.predictor.set_image(image)

    def predict(self, points: List[List[float]], labels: List[int]):
        return self.predictor.predict(point_coords=np.asarray(points, dtype=np.float32),
                                      point_labels=np.asarray(labels, dtype=np.int32))
