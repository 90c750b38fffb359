#!/usr/bin/env python3
"""Official video-predictor references on frames NOT at the model size (development-only oracle).

Run with the oracle venv's python (see README.md beside this file). For each frame size it
generates a procedural video (``sam2_model.train.procedural``, imported from this checkout: numpy
only) at that size, writes it as a JPEG folder, and runs the official ``SAM2VideoPredictor`` on
the folder exactly as a user would (``init_state(video_path=folder)``: Pillow decodes each JPEG and
squashes it to the model size with ``Image.resize``). Prompts on frame 0: every target's true mask,
plus one extra object from a box around target 1 (so that box coordinates are rescaled per axis).
It stores the frames as Pillow DECODED them (uint8 RGB, PNG-compressed: the JPEG is lossy, the
test must see the same pixels), the prompts, and per model the official masks at video resolution (numpy.packbits).

The folder holds ``FOLDER_FRAMES`` frames but only the first ``--frames`` are tracked and stored:
official code bounds its object-pointer window by the video length (``min(num_frames, 16)``), so
a folder of at least 16 frames makes it behave like a streaming tracker.

  python make_resized_reference.py --out tests/data/resized_video_reference.pt
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile

os.environ.setdefault("TQDM_DISABLE", "1")

import numpy as np
import torch
import PIL
from PIL import Image

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUNDLED_YAML = os.path.join(REPO, "sam2_model", "weights", "default.yaml")
BUNDLED_WEIGHTS = os.path.join(REPO, "sam2_model", "weights", "default.pt")
MICRO_SESSION = "/work/shared/parity/sam2.1_micro_stream.pt"
FOLDER_FRAMES = 16  # see the module docstring
# (height, width): downscaled and upscaled, wider and taller than square, for a 256-pixel model.
SIZES = ((120, 200), (240, 320), (160, 96))
BOX_OBJ_ID = 9
JPEG_QUALITY = 75  # Pillow's default


def build_bundled():
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(BUNDLED_YAML)
    return _instantiate(cfg), torch.load(BUNDLED_WEIGHTS, map_location="cpu", weights_only=True)["model"]


def build_micro():
    from omegaconf import OmegaConf

    session = torch.load(MICRO_SESSION, map_location="cpu", weights_only=False)
    cfg = OmegaConf.create(session["resolved_config_yaml"].replace("# @package _global_\n", ""))
    return _instantiate(cfg), session["state_dict"]


def _instantiate(cfg):
    """The video predictor with hole filling off (fill_hole_area 0: ours without the official CUDA
    extension cannot differ from it; sam2_model's tracker is run with fill_hole_area=0 too)."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    cfg.model._target_ = "sam2.sam2_video_predictor.SAM2VideoPredictor"
    cfg.model.fill_hole_area = 0
    OmegaConf.resolve(cfg)
    return instantiate(cfg.model, _recursive_=True)


def load_model(name: str):
    model, state_dict = {"bundled": build_bundled, "micro": build_micro}[name]()
    model.load_state_dict(state_dict, strict=True)
    return model.to(torch.device("cpu")).float().eval()


def make_video(height: int, width: int, seed: int):
    sys.path.insert(0, REPO)
    from sam2_model.train.procedural import ProceduralConfig, generate_with_events

    config = ProceduralConfig(height=height, width=width, num_frames=FOLDER_FRAMES, min_targets=2, max_targets=3)
    return generate_with_events(seed, config, min_hidden_frames=1)


def write_and_decode(frames: np.ndarray, folder: str) -> np.ndarray:
    """Write ``<index>.jpg`` files; return the frames as Pillow decodes them (uint8 RGB)."""
    decoded = []
    for index, frame in enumerate(frames):
        path = os.path.join(folder, f"{index:05d}.jpg")
        Image.fromarray(frame).save(path, quality=JPEG_QUALITY)
        decoded.append(np.array(Image.open(path).convert("RGB")))
    return np.stack(decoded)


def png_bytes(frame: np.ndarray) -> torch.Tensor:
    """A decoded frame kept losslessly and small (PNG; the JPEG's bytes would have to be decoded
    again, by whichever libjpeg the test machine has)."""
    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="PNG", optimize=True)
    return torch.frombuffer(bytearray(buffer.getvalue()), dtype=torch.uint8)


def box_around(mask: np.ndarray) -> list[float]:
    ys, xs = np.nonzero(mask)
    return [float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max())]


def run_official(model, folder: str, prompts: dict, frames: int) -> dict[int, np.ndarray]:
    """Per object id: bool masks [frames, H, W] at video resolution (official outputs > 0)."""
    predictor = model
    state = predictor.init_state(video_path=folder)
    for obj_id, mask in prompts["masks"].items():
        predictor.add_new_mask(state, frame_idx=0, obj_id=obj_id, mask=torch.from_numpy(mask))
    predictor.add_new_points_or_box(state, frame_idx=0, obj_id=BOX_OBJ_ID, box=prompts["box"])
    masks = {}
    for frame_idx, obj_ids, video_res_masks in predictor.propagate_in_video(
            state, start_frame_idx=0, max_frame_num_to_track=frames - 1):
        for k, obj_id in enumerate(obj_ids):
            masks.setdefault(int(obj_id), []).append((video_res_masks[k, 0] > 0.0).cpu().numpy())
        assert frame_idx == len(masks[int(obj_ids[0])]) - 1
    return {obj_id: np.stack(m) for obj_id, m in masks.items()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--frames", type=int, default=8, help="frames tracked and stored per size")
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    import sam2  # noqa: F401  (the official package; fails outside the oracle venv)

    models = {name: load_model(name) for name in ("bundled", "micro")}
    videos = []
    for n, (height, width) in enumerate(SIZES):
        video = make_video(height, width, args.seed + n)
        with tempfile.TemporaryDirectory() as folder:
            decoded = write_and_decode(video.frames, folder)
            prompts = {
                "masks": {obj_id: video.labels[0] == obj_id for obj_id in range(1, video.num_targets + 1)},
                "box": box_around(video.labels[0] == 1),
            }
            outputs = {}
            for name, model in models.items():
                with torch.inference_mode():
                    masks = run_official(model, folder, prompts, args.frames)
                outputs[name] = {obj_id: torch.from_numpy(np.packbits(m)) for obj_id, m in masks.items()}
                areas = {obj_id: m.sum(axis=(1, 2)).tolist() for obj_id, m in masks.items()}
                print(f"{height}x{width} {name}: mask areas per object {areas}", flush=True)
        videos.append({
            "height": height, "width": width,
            "frames_png": [png_bytes(frame) for frame in decoded[:args.frames]],
            "mask_prompts": {obj_id: torch.from_numpy(np.packbits(m)) for obj_id, m in prompts["masks"].items()},
            "box_prompt": {"obj_id": BOX_OBJ_ID, "box": prompts["box"]},
            "official_masks": outputs,
        })
    reference = {
        "format_version": 1,
        "generated_with": {
            "sam2": "official sam2==1.1.0 SAM2VideoPredictor, init_state(video_path=JPEG folder), CPU float32",
            "pillow": PIL.__version__,
            "fill_hole_area": 0, "jpeg_quality": JPEG_QUALITY, "folder_frames": FOLDER_FRAMES,
            "seed": args.seed, "models": {"bundled": "sam2_model/weights/default.{yaml,pt}",
                                          "micro": MICRO_SESSION + " (state_dict, resolved_config_yaml)"},
        },
        "model_image_size": 256,
        "videos": videos,
    }
    torch.save(reference, args.out)
    print("wrote", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
