"""Speed of the automatic mask generator: ``python -m sam2_model.benchmark --amg``.

Called by ``sam2_model.benchmark``. Times ``AutomaticMaskGenerator.generate`` on one generated
scene at the model's input size (ms per image, masks per second) and, when the official ``sam2``
package is importable (development only, never a dependency), the official
``SAM2AutomaticMaskGenerator`` with the same weights and settings on the same image, with the ratio.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass
from typing import Callable, Dict, List

import numpy as np
import torch

from .automatic_mask_generator import AutomaticMaskGenerator
from .build import build_model
from .config import DEFAULT_CONFIG_PATH, DEFAULT_MODEL
from .mask_generator_options import MaskGeneratorOptions

_DEFAULTS = MaskGeneratorOptions()


def add_amg_arguments(parser: argparse.ArgumentParser) -> None:
    """The benchmark's ``--amg`` options."""
    parser.add_argument("--amg", action="store_true", help="benchmark the AutomaticMaskGenerator")
    parser.add_argument("--points-per-side", type=int, default=_DEFAULTS.points_per_side,
                        help="clicks per side (--amg)")
    parser.add_argument("--pred-iou-thresh", type=float, default=_DEFAULTS.pred_iou_thresh, help="(--amg)")
    parser.add_argument("--stability-score-thresh", type=float, default=_DEFAULTS.stability_score_thresh,
                        help="(--amg)")


@dataclass
class GeneratorTiming:
    label: str
    samples_ms: List[float]
    num_masks: int

    @property
    def ms_per_image(self) -> float:
        return statistics.median(self.samples_ms)

    @property
    def masks_per_second(self) -> float:
        return self.num_masks / (self.ms_per_image / 1000.0)

    def line(self) -> str:
        return (f"{self.label:<36} {self.ms_per_image:10.1f} ms/image (median of {len(self.samples_ms)})  "
                f"{self.num_masks:5d} masks  {self.masks_per_second:8.1f} masks/s")


def time_generator(generate: Callable[[], list], iterations: int, warmup: int, device: torch.device) -> GeneratorTiming:
    for _ in range(warmup):
        generate()
    samples, count = [], 0
    for _ in range(iterations):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        count = len(generate())
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        samples.append((time.perf_counter() - start) * 1000.0)
    return GeneratorTiming("", samples, count)


def scene_image(size: int, seed: int = 0) -> np.ndarray:
    """A procedural frame (textured background, several shapes) of ``size x size`` pixels."""
    from .train.procedural import ProceduralConfig, generate_video

    return generate_video(seed, ProceduralConfig(height=size, width=size, num_frames=1)).frames[0]


def _official_generator(model_name: str, state_dict: Dict[str, torch.Tensor], device: torch.device,
                        settings: dict):
    """The official generator with our model's weights (ImportError: the comparison is skipped)."""
    from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator

    if model_name.endswith((".yaml", ".yml")) or model_name == DEFAULT_MODEL:
        from hydra.utils import instantiate
        from omegaconf import OmegaConf

        config = OmegaConf.load(DEFAULT_CONFIG_PATH if model_name == DEFAULT_MODEL else model_name)
        OmegaConf.resolve(config)
        model = instantiate(config.model, _recursive_=True)
    else:
        from sam2.build_sam import build_sam2

        from .official_reference import _CONFIG_FILES

        if model_name not in _CONFIG_FILES:
            raise ImportError(f"no official config for {model_name!r}")
        model = build_sam2(_CONFIG_FILES[model_name], ckpt_path=None, device=str(device))
    model.load_state_dict(state_dict, strict=True)
    model = model.to(device).eval()
    generator = SAM2AutomaticMaskGenerator(model, **settings)
    size = model.image_size
    # The official image predictor hard-codes the feature sizes of a 1024 input.
    generator.predictor._bb_feat_sizes = [(size // 4, size // 4), (size // 8, size // 8), (size // 16, size // 16)]
    return generator


def run_amg_benchmark(args: argparse.Namespace, device: torch.device, dtype: torch.dtype) -> List[GeneratorTiming]:
    """Print and return the timings of ours and (if importable and not ``--no-official``) the official generator."""
    model = build_model(args.model, args.checkpoint, device=device, dtype=dtype)
    image = scene_image(model.image_size)
    settings = {"points_per_side": args.points_per_side, "pred_iou_thresh": args.pred_iou_thresh,
                "stability_score_thresh": args.stability_score_thresh}
    print(f"automatic mask generator on a {image.shape[1]}x{image.shape[0]} generated scene: {settings}")
    ours = time_generator(lambda: AutomaticMaskGenerator(model, **settings).generate(image), args.iterations,
                          args.warmup, device)
    ours.label = "ours"
    timings = [ours]
    print(ours.line())
    if not args.no_official:
        try:
            generator = _official_generator(args.model, model.float().state_dict(), device, settings)
        except ImportError as error:
            print(f"(official sam2 package not importable: {error}; skipping the comparison)")
            return timings
        with torch.inference_mode():
            theirs = time_generator(lambda: generator.generate(image), args.iterations, args.warmup, device)
        theirs.label = "official SAM2AutomaticMaskGenerator"
        timings.append(theirs)
        print(theirs.line())
        print(f"{'':<36} speed-up (official ms/image / ours): {theirs.ms_per_image / ours.ms_per_image:.2f}x")
    return timings
