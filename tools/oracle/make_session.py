#!/usr/bin/env python3
"""Reference-session generator driving the official SAM 2 implementation.

DEVELOPMENT-ONLY ORACLE.  This script runs only inside the separate oracle
virtualenv that has the official ``sam2==1.1.0`` package installed (see
README.md next to this file).  The product never imports it and never depends
on ``sam2`` (the official package) or on anything in this folder.

It writes streaming tracking sessions in the same format as the files in
``shared/parity/*_stream.pt`` (see shared/parity/README.md), made with a small
model whose weights are all randomised, on synthetic frames, and driven frame
by frame through the official ``SAM2VideoPredictor``.  It can also replay a
parity file (same weights, frames and events) to prove that the way it drives
the official predictor reproduces that file, and write a single-image
reference for the official ``SAM2ImagePredictor``.

Examples (run with the oracle venv's python):

  python make_session.py --flags sam2.1 --arch micro2 --script default \
      --frames 20 --seed 1 --out /work/oracle/sessions/sam2.1_micro2_default.pt
  python make_session.py --replay /work/shared/parity/sam2.1_micro_stream.pt
  python make_session.py --image-predictor --compact \
      --weights-from /work/shared/parity/sam2.1_micro_stream.pt \
      --out tests/data/image_predictor_micro.pt
  PYTHONPATH=. python tools/oracle/make_session.py --amg --out tests/data/amg_reference.pt
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from typing import ClassVar

os.environ.setdefault("TQDM_DISABLE", "1")

import numpy as np
import torch


def _declare_missing_torchvision_ops():
    """PyPI's torchvision wheels are built against CUDA torch: beside a CPU-only torch (the wheel
    this project installs) their C ops do not load, and importing torchvision then fails while it
    registers fake kernels for ``nms`` and ``qnms``. sam2 only uses torchvision's pure-Python
    transforms, so declaring those two ops' schemas (no kernels) lets it import; nothing here
    calls them."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("torchvision")
    if spec is None or spec.origin is None:
        return None
    try:
        torch.ops.load_library(str(Path(spec.origin).parent / "_C.so"))
        return None
    except (OSError, RuntimeError):
        library = torch.library.Library("torchvision", "DEF")
        for op in ("nms", "qnms"):
            library.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        return library  # kept alive: the declarations last as long as the Library object


_TORCHVISION_OPS = _declare_missing_torchvision_ops()

FORMAT_VERSION = 1
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
NO_OBJ_SCORE = -1024.0

# Official Hydra config (inside the installed sam2 package) for each flag set.
CONFIG_NAMES = {
    "sam2": "configs/sam2/sam2_hiera_t.yaml",
    "sam2.1": "configs/sam2.1/sam2.1_hiera_t.yaml",
}

VIDEO_TARGET = "++model._target_=sam2.sam2_video_predictor.SAM2VideoPredictor"

# Shape overrides on top of the official tiny config.
ARCH_OVERRIDES = {
    # The parity files' model (image_size 256).
    "micro": [
        "++model.image_size=256",
        "++model.image_encoder.trunk.embed_dim=24",
        "++model.image_encoder.trunk.stages=[1,1,2,1]",
        "++model.image_encoder.trunk.global_att_blocks=[3]",
        "++model.image_encoder.neck.d_model=32",
        "++model.image_encoder.neck.backbone_channel_list=[192,96,48,24]",
        "++model.image_encoder.neck.position_encoding.num_pos_feats=32",
        "++model.memory_attention.d_model=32",
        "++model.memory_attention.num_layers=2",
        "++model.memory_attention.layer.d_model=32",
        "++model.memory_attention.layer.dim_feedforward=64",
        "++model.memory_attention.layer.self_attention.embedding_dim=32",
        "++model.memory_attention.layer.self_attention.feat_sizes=[16,16]",
        "++model.memory_attention.layer.cross_attention.embedding_dim=32",
        "++model.memory_attention.layer.cross_attention.kv_in_dim=16",
        "++model.memory_attention.layer.cross_attention.feat_sizes=[16,16]",
        "++model.memory_encoder.in_dim=32",
        "++model.memory_encoder.out_dim=16",
        "++model.memory_encoder.position_encoding.num_pos_feats=16",
        "++model.memory_encoder.mask_downsampler.embed_dim=32",
        "++model.memory_encoder.fuser.layer.dim=32",
    ],
    # A different small shape: image_size 128 (8x8 top-level features, 32x32
    # low-res masks), 2 trunk heads, 7 trunk blocks, windows that do not
    # divide the feature maps (padding), hidden dim 48 with mem_dim 16 (each
    # object pointer splits into 3 memory tokens), 3 memory-attention layers
    # with 2 heads.
    "micro2": [
        "++model.image_size=128",
        "++model.image_encoder.trunk.embed_dim=16",
        "++model.image_encoder.trunk.num_heads=2",
        "++model.image_encoder.trunk.stages=[1,2,3,1]",
        "++model.image_encoder.trunk.global_att_blocks=[4]",
        "++model.image_encoder.trunk.window_spec=[4,4,6,4]",
        "++model.image_encoder.trunk.window_pos_embed_bkg_spatial_size=[4,4]",
        "++model.image_encoder.neck.d_model=48",
        "++model.image_encoder.neck.backbone_channel_list=[128,64,32,16]",
        "++model.image_encoder.neck.position_encoding.num_pos_feats=48",
        "++model.memory_attention.d_model=48",
        "++model.memory_attention.num_layers=3",
        "++model.memory_attention.layer.d_model=48",
        "++model.memory_attention.layer.dim_feedforward=96",
        "++model.memory_attention.layer.self_attention.embedding_dim=48",
        "++model.memory_attention.layer.self_attention.num_heads=2",
        "++model.memory_attention.layer.self_attention.feat_sizes=[8,8]",
        "++model.memory_attention.layer.cross_attention.embedding_dim=48",
        "++model.memory_attention.layer.cross_attention.num_heads=2",
        "++model.memory_attention.layer.cross_attention.kv_in_dim=16",
        "++model.memory_attention.layer.cross_attention.feat_sizes=[8,8]",
        "++model.memory_encoder.in_dim=48",
        "++model.memory_encoder.out_dim=16",
        "++model.memory_encoder.position_encoding.num_pos_feats=16",
        "++model.memory_encoder.mask_downsampler.embed_dim=48",
        "++model.memory_encoder.fuser.layer.dim=48",
    ],
}

# What the official build_sam2_video_predictor adds (apply_postprocessing),
# except that hole filling is switched off.
POSTPROCESSING_OVERRIDES = [
    "++model.sam_mask_decoder_extra_args.dynamic_multimask_via_stability=true",
    "++model.sam_mask_decoder_extra_args.dynamic_multimask_stability_delta=0.05",
    "++model.sam_mask_decoder_extra_args.dynamic_multimask_stability_thresh=0.98",
    "++model.binarize_mask_from_pts_for_mem_enc=true",
    "++model.fill_hole_area=0",
]


def _require_official():
    try:
        import sam2  # noqa: F401
        from sam2.build_sam import build_sam2_video_predictor  # noqa: F401
    except ImportError as exc:  # pragma: no cover - environment guard
        sys.exit(
            "make_session.py must run inside the oracle venv that has the official "
            f"sam2==1.1.0 package installed (import failed: {exc!r}); see README.md"
        )


def hydra_overrides_for(arch: str, corrections_as_cond: bool, clear_non_cond_mem: bool = False) -> list[str]:
    cond = "true" if corrections_as_cond else "false"
    clear = ["++model.clear_non_cond_mem_around_input=true"] if clear_non_cond_mem else []
    return (
        [VIDEO_TARGET]
        + list(ARCH_OVERRIDES[arch])
        + POSTPROCESSING_OVERRIDES
        + [f"++model.add_all_frames_to_correct_as_cond={cond}"]
        + clear
    )


def _clear_obj_non_cond_mem_around_input(self, inference_state, frame_idx, obj_idx):
    """The method sam2 1.1.0 calls when clear_non_cond_mem_around_input is set but never defines
    (also missing on its main branch). Its evident intent, from the all-objects version beside it
    (`_clear_non_cond_mem_around_input`): drop this object's non-conditioning outputs (memories and
    pointers) within num_maskmem frames (times the eval stride) on either side of the prompted frame."""
    r = self.memory_temporal_stride_for_eval
    outputs = inference_state["output_dict_per_obj"][obj_idx]["non_cond_frame_outputs"]
    for t in range(frame_idx - r * self.num_maskmem, frame_idx + r * self.num_maskmem + 1):
        outputs.pop(t, None)


def install_missing_official_methods():
    from sam2.sam2_video_predictor import SAM2VideoPredictor

    if not hasattr(SAM2VideoPredictor, "_clear_obj_non_cond_mem_around_input"):
        SAM2VideoPredictor._clear_obj_non_cond_mem_around_input = _clear_obj_non_cond_mem_around_input


def official_config_text(config_name: str) -> str:
    import sam2

    path = os.path.join(os.path.dirname(sam2.__file__), config_name)
    with open(path, "r", encoding="utf-8") as f:
        return f.read()


def config_name_for_yaml(official_yaml: str) -> str:
    for name in CONFIG_NAMES.values():
        if official_config_text(name) == official_yaml:
            return name
    raise ValueError("official_config_yaml matches none of the known tiny configs")


def build_model(config_name: str, overrides: list[str]):
    """Compose the official config with overrides and instantiate the model."""
    import sam2  # noqa: F401  (initialises Hydra's config module)
    from hydra import compose
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    install_missing_official_methods()
    cfg = compose(config_name=config_name, overrides=list(overrides))
    OmegaConf.resolve(cfg)
    model = instantiate(cfg.model, _recursive_=True)
    model = model.to(torch.device("cpu")).float().eval()
    resolved = "# @package _global_\n" + OmegaConf.to_yaml(cfg)
    return model, resolved


def predictor_options(model) -> dict:
    extra = model.sam_mask_decoder
    return {
        "fill_hole_area": int(model.fill_hole_area),
        "non_overlap_masks": bool(model.non_overlap_masks),
        "add_all_frames_to_correct_as_cond": bool(model.add_all_frames_to_correct_as_cond),
        "clear_non_cond_mem_around_input": bool(model.clear_non_cond_mem_around_input),
        "dynamic_multimask_via_stability": bool(extra.dynamic_multimask_via_stability),
        "dynamic_multimask_stability_delta": float(extra.dynamic_multimask_stability_delta),
        "dynamic_multimask_stability_thresh": float(extra.dynamic_multimask_stability_thresh),
        "binarize_mask_from_pts_for_mem_enc": bool(model.binarize_mask_from_pts_for_mem_enc),
    }


# ---------------------------------------------------------------------------
# Weight randomisation
# ---------------------------------------------------------------------------

# Free-standing embedding-like parameters; drawn large enough that a wrong
# index or a forgotten addition shows clearly in the outputs.
_TOKEN_PARAMS = {
    "maskmem_tpos_enc": 0.3,
    "no_mem_embed": 0.3,
    "no_mem_pos_enc": 0.3,
    "no_obj_ptr": 0.3,
    "no_obj_embed_spatial": 0.3,
}


def randomise_weights(model, seed: int) -> dict:
    """Draw every tensor of the state_dict from a seeded normal distribution.

    Linear/conv weights: N(0, (0.6/sqrt(fan_in))^2), biases N(0, (0.5/sqrt(fan_in))^2);
    norm weights N(1, 0.05^2), norm biases N(0, 0.05^2); embeddings N(0, 1);
    other free parameters according to their role.  Nothing is left at a
    constant initial value.
    """
    from sam2.modeling.sam2_utils import LayerNorm2d

    gen = torch.Generator().manual_seed(int(seed))

    def normal(t, std, mean=0.0):
        with torch.no_grad():
            t.copy_(torch.randn(t.shape, generator=gen, dtype=torch.float32) * std + mean)

    done = set()
    for mname, mod in model.named_modules():
        prefix = f"{mname}." if mname else ""
        if isinstance(mod, (torch.nn.LayerNorm, LayerNorm2d)):
            normal(mod.weight, 0.05, 1.0)
            normal(mod.bias, 0.05)
            done.update({prefix + "weight", prefix + "bias"})
        elif isinstance(mod, torch.nn.Embedding):
            normal(mod.weight, 1.0)
            done.add(prefix + "weight")
        elif isinstance(mod, (torch.nn.Linear, torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
            w = mod.weight
            if isinstance(mod, torch.nn.Linear):
                fan_in = w.shape[1]
            elif isinstance(mod, torch.nn.ConvTranspose2d):
                fan_in = w.shape[0]
            else:
                fan_in = w.shape[1] * w.shape[2] * w.shape[3]
            normal(w, 0.6 / math.sqrt(fan_in))
            done.add(prefix + "weight")
            if mod.bias is not None:
                normal(mod.bias, 0.5 / math.sqrt(fan_in))
                done.add(prefix + "bias")

    sd = model.state_dict(keep_vars=True)
    for key, t in sd.items():
        if key in done:
            continue
        leaf = key.split(".")[-1]
        if key in _TOKEN_PARAMS:
            normal(t, _TOKEN_PARAMS[key])
        elif leaf in ("pos_embed", "pos_embed_window") or leaf == "gamma":
            # Hiera position embeddings (zeros at init); ConvNeXt layer scale
            # (constant 1e-6 at init)
            normal(t, 0.1)
        elif leaf == "positional_encoding_gaussian_matrix":
            normal(t, 1.0)
        else:
            raise RuntimeError(f"no randomisation rule for {key} {tuple(t.shape)}")
        done.add(key)

    # Sharper heads, so that masks and decisions are well separated:
    dec = model.sam_mask_decoder
    with torch.no_grad():
        for mlp in dec.output_hypernetworks_mlps:
            mlp.layers[-1].weight.mul_(8.0)
            mlp.layers[-1].bias.mul_(8.0)
        dec.iou_prediction_head.layers[-1].weight.mul_(10.0)
        dec.iou_prediction_head.layers[-1].bias.mul_(10.0)
    return {"rule": "normal per tensor (see randomise_weights)", "seed": int(seed)}


def check_no_constant_tensor(state_dict) -> list[str]:
    bad = []
    for k, v in state_dict.items():
        v = v.float().flatten()
        if v.numel() > 1 and float(v.std()) == 0.0:
            bad.append(k)
    return bad


# ---------------------------------------------------------------------------
# Synthetic frames
# ---------------------------------------------------------------------------


class Scene:
    """Moving coloured shapes on a textured background, all in fractions of S."""

    SHAPES: ClassVar[dict] = {
        # name: (kind, colour, centre0 (x, y), velocity per frame, size)
        "disc": ("disc", (228, 40, 40), (0.30, 0.35), (0.012, 0.005), 0.12),
        "rect": ("rect", (40, 210, 60), (0.68, 0.66), (-0.007, 0.0), (0.25, 0.20)),
        "diamond": ("diamond", (50, 70, 230), (0.70, 0.25), (0.004, 0.011), 0.10),
        "ellipse": ("ellipse", (235, 200, 40), (0.18, 0.80), (0.010, -0.004), (0.10, 0.06)),
    }
    DRAW_ORDER = ("ellipse", "rect", "disc", "diamond")

    def __init__(self, size: int, num_frames: int, seed: int):
        self.S = int(size)
        self.T = int(num_frames)
        rng = np.random.default_rng(int(seed) + 12345)
        block = max(self.S // 32, 2)
        nb = -(-self.S // block)
        tex = rng.integers(40, 200, size=(nb, nb, 3)).astype(np.float64)
        self.background = np.kron(tex, np.ones((block, block, 1)))[: self.S, : self.S]
        self.noise = rng.normal(0.0, 4.0, size=(self.T, self.S, self.S, 3))
        start = max(1, round(0.25 * self.T))
        self.occluded = set(range(start, min(start + 3, self.T)))
        yy, xx = np.mgrid[0 : self.S, 0 : self.S]
        self.xx = xx + 0.5
        self.yy = yy + 0.5

    def centre(self, name, t):
        _, _, c0, v, _ = self.SHAPES[name]
        return ((c0[0] + v[0] * t) * self.S, (c0[1] + v[1] * t) * self.S)

    def mask(self, name, t) -> np.ndarray:
        kind, _, _, _, size = self.SHAPES[name]
        cx, cy = self.centre(name, t)
        dx, dy = self.xx - cx, self.yy - cy
        S = self.S
        if kind == "disc":
            m = dx * dx + dy * dy <= (size * S) ** 2
        elif kind == "rect":
            m = (np.abs(dx) <= size[0] * S / 2) & (np.abs(dy) <= size[1] * S / 2)
        elif kind == "diamond":
            m = np.abs(dx) + np.abs(dy) <= size * S
        else:
            m = (dx / (size[0] * S)) ** 2 + (dy / (size[1] * S)) ** 2 <= 1.0
        return m

    def visible_mask(self, name, t) -> np.ndarray:
        m = self.mask(name, t).copy()
        later = self.DRAW_ORDER[self.DRAW_ORDER.index(name) + 1 :]
        for other in later:
            m &= ~self.mask(other, t)
        if t in self.occluded:
            m &= ~self.bar(t)
        return m

    def bar(self, t) -> np.ndarray:
        return (self.xx >= 0.18 * self.S) & (self.xx < 0.88 * self.S)

    def bbox(self, name, t, margin=0.02):
        m = self.visible_mask(name, t)
        ys, xs = np.nonzero(m)
        pad = margin * self.S
        x0 = max(float(xs.min()) - pad, 0.0)
        y0 = max(float(ys.min()) - pad, 0.0)
        x1 = min(float(xs.max()) + 1 + pad, float(self.S))
        y1 = min(float(ys.max()) + 1 + pad, float(self.S))
        return [round(x0, 2), round(y0, 2), round(x1, 2), round(y1, 2)]

    def frames(self) -> np.ndarray:
        out = np.empty((self.T, self.S, self.S, 3), dtype=np.uint8)
        for t in range(self.T):
            img = self.background + self.noise[t]
            for name in self.DRAW_ORDER:
                colour = np.array(self.SHAPES[name][1], dtype=np.float64)
                img[self.mask(name, t)] = colour
            if t in self.occluded:
                img[self.bar(t)] = 200.0
            out[t] = np.clip(np.round(img), 0, 255).astype(np.uint8)
        return out


def _pt(scene, fx, fy):
    return [round(fx * scene.S, 2), round(fy * scene.S, 2)]


def _centre_pt(scene, name, t):
    cx, cy = scene.centre(name, t)
    return [round(cx, 2), round(cy, 2)]


def _track(t):
    return {"type": "track", "frame": t}


def _points(t, obj_id, points=None, labels=None, box=None, clear_old_points=True):
    ev = {"type": "points", "frame": t, "obj_id": obj_id}
    if points is not None:
        ev["points"] = points
        ev["labels"] = labels
    if box is not None:
        ev["box"] = box
    ev["clear_old_points"] = bool(clear_old_points)
    return ev


def _mask(t, obj_id, m):
    return {
        "type": "mask",
        "frame": t,
        "obj_id": obj_id,
        "mask": torch.from_numpy(np.ascontiguousarray(m)),
    }


def _remove(t, obj_id):
    # "frame" is the frame the output of this event is reported on (the frame
    # just tracked); the official remove_object itself takes no frame.
    return {"type": "remove", "obj_id": obj_id, "frame": t}


def _with_tracks(prompts: dict, T: int):
    """Interleave: frame t is tracked, then the prompts given for frame t."""
    events = list(prompts.get(0, []))
    for t in range(1, T):
        events.append(_track(t))
        events.extend(prompts.get(t, []))
    return events


def make_events(script: str, scene: Scene) -> list[dict]:
    T = scene.T
    if T < 16:
        # The official tracker takes object pointers from
        # min(num_frames, 16) - 1 frames back and normalises their temporal
        # encoding by that number: with fewer than 16 frames the reference
        # would depend on the video length, which a streaming tracker cannot
        # know.
        raise SystemExit("--frames must be >= 16 (see make_events)")
    if script == "default":
        # Same pattern as the parity sessions.
        prompts = {
            0: [
                _points(0, 1, [_centre_pt(scene, "disc", 0)], [1]),
                _points(0, 2, box=scene.bbox("rect", 0)),
            ],
            3: [_points(3, 1, [_pt(scene, 0.60, 0.06)], [0], clear_old_points=False)],
            4: [_points(4, 3, [_centre_pt(scene, "diamond", 4), _pt(scene, 0.05, 0.50)], [1, 0])],
            8: [_mask(8, 2, scene.visible_mask("rect", 8))],
        }
    elif script == "removals":
        if T < 18:
            raise SystemExit("--script removals needs --frames >= 18")
        prompts = {
            0: [
                _points(0, 1, [_centre_pt(scene, "disc", 0)], [1]),
                _points(0, 2, box=scene.bbox("rect", 0)),
            ],
            3: [_points(3, 3, [_centre_pt(scene, "diamond", 3), _pt(scene, 0.05, 0.50)], [1, 0])],
            # remove the first object while two others remain
            8: [_remove(8, 1)],
            # a new object after a removal
            9: [_points(9, 4, [_centre_pt(scene, "ellipse", 9)], [1])],
            # remove an object that was added mid-stream, then correct another one
            11: [
                _remove(11, 3),
                _points(11, 2, [_centre_pt(scene, "rect", 11)], [1], clear_old_points=False),
            ],
            # re-use a removed object id: it is a brand-new object
            13: [_points(13, 1, box=scene.bbox("disc", 13))],
            16: [_remove(16, 2)],
        }
    elif script == "masks":
        prompts = {
            0: [
                _points(0, 1, [_centre_pt(scene, "disc", 0)], [1]),
                # box and click together, new object
                _points(0, 2, [_centre_pt(scene, "rect", 0)], [1], box=scene.bbox("rect", 0)),
            ],
            # mask prompt for a NEW object mid-stream
            3: [_mask(3, 3, scene.visible_mask("diamond", 3))],
            # box + negative click as a correction of a tracked object
            9: [
                _points(
                    9,
                    1,
                    [_pt(scene, 0.02, 0.02)],
                    [0],
                    box=scene.bbox("disc", 9),
                    clear_old_points=True,
                )
            ],
            # mask correction of the mask-added object
            11: [_mask(11, 3, scene.visible_mask("diamond", 11))],
            # a second new object from a mask, later corrected with a click
            12: [_mask(12, 4, scene.visible_mask("ellipse", 12))],
            14: [_points(14, 4, [_centre_pt(scene, "ellipse", 14)], [1], clear_old_points=False)],
        }
    else:
        raise SystemExit(f"unknown --script {script}")
    return _with_tracks(prompts, T)


# ---------------------------------------------------------------------------
# Driving the official video predictor
# ---------------------------------------------------------------------------


class DecoderProbe:
    """Records every SAM mask-decoder call and every memory encoding of a
    prompted frame, to measure how far each discrete decision of the
    official pipeline is from flipping:

    - object score sign (present/absent), for every decoder call;
    - argmax of the three multimask IoU predictions;
    - the dynamic-multimask stability test (single-mask calls only): pixels
      whose logit is within 1e-4 of +-delta can flip, and the decision flips
      only if more pixels flip than its slack |area_i - thresh * area_u|;
    - binarisation at 0 of prompted frames' masks for the memory encoder.
    """

    BAND = 1e-4

    def __init__(self, model):
        self.model = model
        self.dec = model.sam_mask_decoder
        self.calls = []
        self.binarised = []
        self._multimask = None

    def __enter__(self):
        dec, model = self.dec, self.model
        orig_forward, orig_predict = dec.forward, dec.predict_masks
        orig_encode = model._encode_new_memory
        self._saved = (orig_forward, orig_predict, orig_encode)

        def forward(*args, **kwargs):
            self._multimask = kwargs.get("multimask_output", args[4] if len(args) > 4 else None)
            return orig_forward(*args, **kwargs)

        def predict_masks(*args, **kwargs):
            masks, iou, tokens, score = orig_predict(*args, **kwargs)
            self.calls.append(
                {
                    "multimask": bool(self._multimask),
                    "masks": masks.detach().clone(),
                    "iou": iou.detach().clone(),
                    "score": score.detach().clone(),
                }
            )
            return masks, iou, tokens, score

        def encode(*args, **kwargs):
            if kwargs.get("is_mask_from_pts"):
                x = kwargs["pred_masks_high_res"].detach()
                x = x[x > -1000.0].abs()
                self.binarised.append(
                    (
                        int((x < 1e-4).sum()),
                        int((x < 1e-5).sum()),
                        float(x.min()) if x.numel() else math.inf,
                    )
                )
            return orig_encode(*args, **kwargs)

        dec.forward, dec.predict_masks = forward, predict_masks
        model._encode_new_memory = encode
        return self

    def __exit__(self, *exc):
        del self.dec.forward, self.dec.predict_masks, self.model._encode_new_memory
        return False

    def margins(self) -> dict:
        delta = float(self.dec.dynamic_multimask_stability_delta)
        thresh = float(self.dec.dynamic_multimask_stability_thresh)
        scores = [float(s) for c in self.calls for s in c["score"].flatten()]
        iou_gap = math.inf
        worst_stability = math.inf
        for c in self.calls:
            top2 = torch.topk(c["iou"][:, 1:], 2, dim=-1).values
            iou_gap = min(iou_gap, float((top2[:, 0] - top2[:, 1]).min()))
            if c["multimask"]:
                continue
            single = c["masks"][:, 0].flatten(1)
            area_i = (single > delta).sum(1).float()
            area_u = (single > -delta).sum(1).float()
            slack = (area_i - thresh * area_u).abs()
            near = ((single - delta).abs() < self.BAND).sum(1) + (
                (single + delta).abs() < self.BAND
            ).sum(1)
            worst_stability = min(worst_stability, float((slack - near.float()).min()))
        return {
            "decoder_calls": len(self.calls),
            "decoder_scores": scores,
            "min_abs_decoder_score": min((abs(s) for s in scores), default=math.inf),
            "min_multimask_iou_gap": iou_gap,
            "min_stability_slack_pixels": worst_stability,
            "prompted_memory_encodings": len(self.binarised),
            "binarised_pixels_within_1e-4_of_0": int(sum(b[0] for b in self.binarised)),
            "binarised_pixels_within_1e-5_of_0": int(sum(b[1] for b in self.binarised)),
            "binarised_min_abs_logit": min((b[2] for b in self.binarised), default=math.inf),
        }


def init_inference_state(predictor, frames_uint8: torch.Tensor):
    """init_state on in-memory frames: (frame/255 - mean)/std, no resize."""
    import sam2.sam2_video_predictor as svp

    _T, H, W, _ = frames_uint8.shape
    if H != predictor.image_size or W != predictor.image_size:
        raise ValueError(f"frames are {H}x{W}, model size is {predictor.image_size}")
    images = torch.from_numpy(frames_uint8.numpy().astype(np.float64) / 255.0).float()
    images = images.permute(0, 3, 1, 2).contiguous()
    images -= torch.tensor(IMAGENET_MEAN, dtype=torch.float32)[:, None, None]
    images /= torch.tensor(IMAGENET_STD, dtype=torch.float32)[:, None, None]

    def fake_loader(**kwargs):
        return images, H, W

    original = svp.load_video_frames
    svp.load_video_frames = fake_loader
    try:
        state = predictor.init_state(video_path="<in-memory frames>")
    finally:
        svp.load_video_frames = original
    return state


def _latest_output(state, obj_idx, t):
    temp = state["temp_output_dict_per_obj"][obj_idx]
    outd = state["output_dict_per_obj"][obj_idx]
    found = [
        d[t]
        for d in (
            temp["cond_frame_outputs"],
            temp["non_cond_frame_outputs"],
            outd["cond_frame_outputs"],
            outd["non_cond_frame_outputs"],
        )
        if t in d
    ]
    if len(found) > 1 and t in temp["cond_frame_outputs"] and t in temp["non_cond_frame_outputs"]:
        raise RuntimeError("ambiguous pending outputs on one frame; avoid this in scripts")
    return found[0] if found else None


def collect_outputs(predictor, state, t) -> dict:
    obj_ids = list(state["obj_ids"])
    low = predictor.image_size // 4
    logits = torch.full((len(obj_ids), 1, low, low), NO_OBJ_SCORE, dtype=torch.float32)
    scores = torch.full((len(obj_ids), 1), float("nan"), dtype=torch.float32)
    for obj_idx in range(len(obj_ids)):
        out = _latest_output(state, obj_idx, t)
        if out is None:
            continue
        logits[obj_idx] = out["pred_masks"][0].detach().float().cpu()
        scores[obj_idx] = out["object_score_logits"][0].detach().float().cpu()
    return {"obj_ids": obj_ids, "low_res_logits": logits, "object_score_logits": scores}


def run_events(predictor, frames_uint8: torch.Tensor, events: list[dict]) -> list[dict]:
    state = init_inference_state(predictor, frames_uint8)
    outputs = []
    current = 0
    for ev in events:
        kind = ev["type"]
        if kind == "track":
            t = int(ev["frame"])
            n = 0
            for _ in predictor.propagate_in_video(
                state, start_frame_idx=t, max_frame_num_to_track=0
            ):
                n += 1
            assert n == 1
            current = t
        elif kind == "points":
            t = int(ev["frame"])
            predictor.add_new_points_or_box(
                state,
                frame_idx=t,
                obj_id=ev["obj_id"],
                points=ev.get("points"),
                labels=ev.get("labels"),
                box=ev.get("box"),
                clear_old_points=ev.get("clear_old_points", True),
            )
            current = t
        elif kind == "mask":
            t = int(ev["frame"])
            m = ev["mask"]
            m = m if isinstance(m, torch.Tensor) else torch.as_tensor(m)
            predictor.add_new_mask(state, frame_idx=t, obj_id=ev["obj_id"], mask=m.bool())
            current = t
        elif kind == "remove":
            t = int(ev.get("frame", current))
            predictor.remove_object(state, ev["obj_id"], strict=True)
        else:
            raise ValueError(f"unknown event type {kind}")
        outputs.append(collect_outputs(predictor, state, t))
    return outputs


def compare_outputs(ref: list[dict], got: list[dict]) -> dict:
    max_logit = 0.0
    max_score = 0.0
    nan_ok = True
    ids_ok = True
    decisions_ok = True
    for r, g in zip(ref, got, strict=True):
        if list(r["obj_ids"]) != list(g["obj_ids"]):
            ids_ok = False
            continue
        rs, gs = r["object_score_logits"], g["object_score_logits"]
        if not torch.equal(torch.isnan(rs), torch.isnan(gs)):
            nan_ok = False
        fin = ~torch.isnan(rs) & ~torch.isnan(gs)
        if fin.any():
            max_score = max(max_score, float((rs[fin] - gs[fin]).abs().max()))
            if not torch.equal(rs[fin] > 0, gs[fin] > 0):
                decisions_ok = False
        rl, gl = r["low_res_logits"], g["low_res_logits"]
        both = torch.isfinite(rl) & torch.isfinite(gl)
        if not torch.equal(torch.isfinite(rl), torch.isfinite(gl)):
            nan_ok = False
        if both.any():
            max_logit = max(max_logit, float((rl[both] - gl[both]).abs().max()))
    return {
        "events": len(ref),
        "max_abs_logit_diff": max_logit,
        "max_abs_score_diff": max_score,
        "same_obj_ids": ids_ok,
        "same_nan_pattern": nan_ok,
        "same_present_absent": decisions_ok,
    }


# ---------------------------------------------------------------------------
# Calibration of the object-score head
# ---------------------------------------------------------------------------


class FloatNoise:
    """Perturbs the official pipeline by float32-rounding-sized noise, as an
    independent float32 implementation would: relative noise `rel` on the
    image features and on memory features before they are stored in
    bfloat16, and absolute noise `rel` on prompted masks before they are
    binarised for the memory encoder."""

    def __init__(self, model, rel=1e-6, seed=0):
        self.model, self.rel = model, rel
        self.gen = torch.Generator().manual_seed(seed)

    def _noisy(self, x, absolute=False):
        n = (torch.rand(x.shape, generator=self.gen) * 2 - 1) * self.rel
        return x + (n if absolute else n * x)

    def __enter__(self):
        model = self.model
        orig_image, orig_encode = model.forward_image, model._encode_new_memory

        def forward_image(img):
            out = orig_image(img)
            out["backbone_fpn"] = [self._noisy(x) for x in out["backbone_fpn"]]
            return out

        def encode(*args, **kwargs):
            if kwargs.get("is_mask_from_pts"):
                kwargs["pred_masks_high_res"] = self._noisy(
                    kwargs["pred_masks_high_res"], absolute=True
                )
            feats, pos = orig_encode(*args, **kwargs)
            return self._noisy(feats), pos

        model.forward_image, model._encode_new_memory = forward_image, encode
        return self

    def __exit__(self, *exc):
        del self.model.forward_image, self.model._encode_new_memory
        return False


def float_noise_sensitivity(predictor, frames, events, outputs, trials=2) -> dict:
    """How far outputs move under float32-sized perturbations (see FloatNoise)."""
    worst = {"max_abs_logit_diff": 0.0, "max_abs_score_diff": 0.0, "same_present_absent": True}
    for k in range(trials):
        with FloatNoise(predictor, seed=k):
            noisy = run_events(predictor, frames, events)
        rep = compare_outputs(outputs, noisy)
        worst["max_abs_logit_diff"] = max(worst["max_abs_logit_diff"], rep["max_abs_logit_diff"])
        worst["max_abs_score_diff"] = max(worst["max_abs_score_diff"], rep["max_abs_score_diff"])
        worst["same_present_absent"] &= bool(rep["same_present_absent"] and rep["same_nan_pattern"])
    worst["trials"] = trials
    worst["relative_noise"] = 1e-6
    return worst


def _choose_bias(
    raw: np.ndarray, current_bias: float, mode: str, margin: float, lo: float, hi: float
) -> float:
    """Pick a bias b so that raw + b is far from 0 and has the wanted sign mix."""
    centre = {"mixed": 0.6, "present": 1.0}[mode]
    cands = np.unique(np.concatenate([-raw, [0.0]]))
    cands.sort()
    mids = (cands[:-1] + cands[1:]) / 2 if len(cands) > 1 else cands
    # also allow values beyond the ends
    extra = np.array([cands[0] - 4 * margin, cands[-1] + 4 * margin])
    best, best_key = current_bias, None
    for b in np.concatenate([mids, extra]):
        s = raw + b
        frac = float(np.mean(s > 0))
        gap = float(np.min(np.abs(s)))
        ok = lo <= frac <= hi
        key = (ok, min(gap, 4 * margin), -abs(frac - centre))
        if best_key is None or key > best_key:
            best, best_key = float(b), key
    return best


def calibrate_and_run(
    predictor, frames, events, mode, seed, margin=0.05, max_iters=14, restarts=6, score_std=3.0
):
    """Re-run the session, adjusting the object-score head until every
    decoder object score sits at least `margin` away from 0 and (mode
    "mixed") objects are present on some outputs and absent on others.

    Present/absent decisions feed back into tracking (an absent object gets
    the no-object pointer and memory embedding), so every candidate is
    checked by a full re-run.  The first run of each attempt rescales the
    head's last layer so that the decoder's scores spread by `score_std`;
    later runs move only its bias: bisection on the present fraction, with a
    small deterministic jitter once the fraction is right but a score is too
    close to 0.  An attempt that does not converge re-draws the last layer.
    """
    dec = predictor.sam_mask_decoder
    head = dec.pred_obj_score_head
    last = head.layers[-1] if hasattr(head, "layers") else head
    lo, hi = (0.25, 0.9) if mode == "mixed" else (0.97, 1.0)
    rng = np.random.default_rng(int(seed) + 999)
    gen = torch.Generator().manual_seed(int(seed) + 4242)
    history = []
    with torch.no_grad():
        w0 = last.weight.detach().clone()
        b0 = last.bias.detach().clone()
    for attempt in range(restarts):
        if attempt > 0:
            with torch.no_grad():
                last.weight.copy_(torch.randn(w0.shape, generator=gen) * w0.std())
                last.bias.copy_(b0)
        b_low, b_high = -math.inf, math.inf  # fraction too low at b_low, too high at b_high
        for it in range(max_iters):
            with DecoderProbe(predictor) as probe:
                outputs = run_events(predictor, frames, events)
            probe_margins = probe.margins()
            scores = np.array(probe_margins["decoder_scores"], dtype=np.float64)
            bias = float(last.bias.item())
            out_scores = torch.cat([o["object_score_logits"].flatten() for o in outputs]).numpy()
            out_scores = out_scores[np.isfinite(out_scores)]
            frac = float(np.mean(out_scores > 0)) if out_scores.size else float("nan")
            gap = float(np.min(np.abs(scores)))
            history.append(
                {
                    "attempt": attempt,
                    "iter": it,
                    "bias": bias,
                    "min_abs_score": gap,
                    "present_fraction": frac,
                }
            )
            if gap >= margin and lo <= frac <= hi:
                return outputs, probe_margins, history
            raw = scores - bias
            with torch.no_grad():
                if it == 0:
                    factor = score_std / (float(np.std(raw)) or 1.0)
                    last.weight.mul_(factor)
                    last.bias.mul_(factor)
                    raw = raw * factor
                    new_bias = _choose_bias(raw, bias * factor, mode, margin, lo, hi)
                else:
                    if frac < lo:
                        b_low = max(b_low, bias)
                    elif frac > hi:
                        b_high = min(b_high, bias)
                    pos = scores[scores > 0]
                    neg = -scores[scores <= 0]
                    p_min = float(pos.min()) if pos.size else math.inf
                    n_min = float(neg.min()) if neg.size else math.inf
                    if (
                        lo <= frac <= hi
                        and math.isfinite(p_min)
                        and math.isfinite(n_min)
                        and (p_min + n_min) / 2 >= margin
                    ):
                        # Only the sign of a score feeds back into tracking, so a
                        # shift that flips no sign leaves the session unchanged
                        # and moves every score by the same amount: centre 0 in
                        # the gap between the smallest positive and negative ones.
                        new_bias = bias + (n_min - p_min) / 2
                    elif lo <= frac <= hi:
                        new_bias = _choose_bias(raw, bias, mode, margin, lo, hi)
                        if any(abs(new_bias - h["bias"]) < 1e-4 for h in history):
                            new_bias = bias + float(rng.normal(0.0, 0.05 * score_std))
                    else:
                        new_bias = _choose_bias(raw, bias, mode, margin, lo, hi)
                        if not (b_low < new_bias < b_high):
                            if math.isfinite(b_low) and math.isfinite(b_high):
                                new_bias = 0.5 * (b_low + b_high)
                            elif math.isfinite(b_low):
                                new_bias = b_low + 0.5 * score_std
                            else:
                                new_bias = b_high - 0.5 * score_std
                    if math.isfinite(b_low) and math.isfinite(b_high):
                        new_bias = min(max(new_bias, b_low + 1e-3), b_high - 1e-3)
                last.bias.fill_(new_bias)
    raise RuntimeError(f"calibration did not converge: {history}")


# ---------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------


def load_session(path):
    return torch.load(path, map_location="cpu", weights_only=True)


def cmd_replay(args):
    ref = load_session(args.replay)
    config_name = config_name_for_yaml(ref["official_config_yaml"])
    predictor, resolved = build_model(config_name, ref["hydra_overrides"])
    predictor.load_state_dict(ref["state_dict"], strict=True)
    t0 = time.time()
    outputs = run_events(predictor, ref["frames"], ref["events"])
    report = compare_outputs(ref["outputs"], outputs)
    report["resolved_config_yaml_identical"] = resolved == ref["resolved_config_yaml"]
    report["predictor_options_identical"] = predictor_options(predictor) == ref["predictor_options"]
    report["seconds"] = round(time.time() - t0, 2)
    report["float_noise_sensitivity"] = float_noise_sensitivity(
        predictor, ref["frames"], ref["events"], outputs
    )
    print(f"replay {args.replay}")
    for k, v in report.items():
        print(f"  {k}: {v}")
    if args.out:
        session = dict(ref)
        session["outputs"] = outputs
        session["generated_with"] = {"replay": os.path.abspath(args.replay)}
        torch.save(session, args.out)
    ok = (
        report["max_abs_logit_diff"] < 1e-4
        and report["max_abs_score_diff"] < 1e-4
        and report["same_nan_pattern"]
        and report["same_obj_ids"]
        and report["same_present_absent"]
    )
    return 0 if ok else 1


def cmd_generate(args):
    config_name = CONFIG_NAMES[args.flags]
    overrides = hydra_overrides_for(args.arch, args.corrections_as_cond, args.clear_non_cond_mem)
    predictor, resolved = build_model(config_name, overrides)
    torch.manual_seed(args.seed)
    rand_info = randomise_weights(predictor, args.seed)
    S = predictor.image_size
    scene = Scene(S, args.frames, args.seed)
    frames = torch.from_numpy(scene.frames())
    events = make_events(args.script, scene)
    t0 = time.time()
    outputs, margins, history = calibrate_and_run(
        predictor, frames, events, args.obj_bias, args.seed
    )
    elapsed = time.time() - t0

    # Determinism check: one more run with the final weights.
    again = run_events(predictor, frames, events)
    rerun = compare_outputs(outputs, again)
    if rerun["max_abs_logit_diff"] != 0.0 or rerun["max_abs_score_diff"] != 0.0:
        raise RuntimeError(f"official predictor is not deterministic here: {rerun}")

    sensitivity = float_noise_sensitivity(predictor, frames, events, outputs)

    state_dict = {k: v.detach().clone().contiguous() for k, v in predictor.state_dict().items()}
    constant = check_no_constant_tensor(state_dict)
    if constant:
        raise RuntimeError(f"constant tensors left: {constant}")

    out_scores = torch.cat([o["object_score_logits"].flatten() for o in outputs])
    fin = out_scores[torch.isfinite(out_scores)]
    generated_with = {
        "tool": "tools/oracle/make_session.py",
        "official_package": "sam2==1.1.0 (facebookresearch/sam2 2b90b9f)",
        "torch": str(torch.__version__),
        "out": os.path.basename(args.out),
        "flags": args.flags,
        "arch": args.arch,
        "script": args.script,
        "seed": args.seed,
        "frames": args.frames,
        "corrections_as_cond": bool(args.corrections_as_cond),
        "clear_non_cond_mem_around_input": bool(args.clear_non_cond_mem),
        "obj_bias": args.obj_bias,
        "weights": rand_info,
        "calibration_iters": len(history),
        "calibration_history": history,
        "min_abs_decoder_object_score": margins["min_abs_decoder_score"],
        "min_abs_output_object_score": float(fin.abs().min()),
        "present_fraction": float((fin > 0).float().mean()),
        "min_multimask_iou_gap": margins["min_multimask_iou_gap"],
        "min_stability_slack_pixels": margins["min_stability_slack_pixels"],
        "prompted_memory_encodings": margins["prompted_memory_encodings"],
        "binarised_pixels_within_1e-4_of_0": margins["binarised_pixels_within_1e-4_of_0"],
        "binarised_pixels_within_1e-5_of_0": margins["binarised_pixels_within_1e-5_of_0"],
        "binarised_min_abs_logit": margins["binarised_min_abs_logit"],
        "decoder_calls": margins["decoder_calls"],
        "occluded_frames": sorted(scene.occluded),
        "float_noise_sensitivity": sensitivity,
    }
    session = {
        "format_version": FORMAT_VERSION,
        "generated_with": generated_with,
        "official_config_yaml": official_config_text(config_name),
        "hydra_overrides": overrides,
        "predictor_options": predictor_options(predictor),
        "state_dict": state_dict,
        "frames": frames,
        "video_hw": (S, S),
        "events": events,
        "outputs": outputs,
        "resolved_config_yaml": resolved,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    torch.save(session, args.out)

    # Self-check: the saved file replays to the same outputs.
    reloaded = load_session(args.out)
    check, _ = build_model(
        config_name_for_yaml(reloaded["official_config_yaml"]), reloaded["hydra_overrides"]
    )
    check.load_state_dict(reloaded["state_dict"], strict=True)
    rep = compare_outputs(
        reloaded["outputs"], run_events(check, reloaded["frames"], reloaded["events"])
    )
    print(f"wrote {args.out} ({elapsed:.1f}s, {len(history)} calibration run(s))")
    print(
        f"  replay of saved file: max|dlogit|={rep['max_abs_logit_diff']:.3g} max|dscore|={rep['max_abs_score_diff']:.3g}"
    )
    for k in (
        "min_abs_decoder_object_score",
        "min_abs_output_object_score",
        "present_fraction",
        "min_multimask_iou_gap",
        "min_stability_slack_pixels",
        "binarised_pixels_within_1e-4_of_0",
        "binarised_pixels_within_1e-5_of_0",
        "binarised_min_abs_logit",
    ):
        print(f"  {k}: {generated_with[k]:.4g}")
    print(f"  float-noise sensitivity: {sensitivity}")
    print_summary(events, outputs)
    return 0


def print_summary(events, outputs):
    for ev, out in zip(events, outputs):
        desc = {k: v for k, v in ev.items() if k not in ("type", "mask")}
        if "mask" in ev:
            desc["mask_pixels"] = int(torch.as_tensor(ev["mask"]).sum())
        sc = ", ".join(
            f"{i}:{'--' if math.isnan(s) else f'{s:+.2f}'}"
            for i, s in zip(out["obj_ids"], out["object_score_logits"].flatten().tolist())
        )
        print(f"  {ev['type']:6s} {desc}  -> [{sc}]")


def cmd_image_predictor(args):
    """Single-image reference for the official SAM2ImagePredictor."""
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    ref = load_session(args.weights_from)
    config_name = config_name_for_yaml(ref["official_config_yaml"])
    model, resolved = build_model(config_name, ref["hydra_overrides"])
    model.load_state_dict(ref["state_dict"], strict=True)
    S = model.image_size
    predictor = SAM2ImagePredictor(model)
    # The official predictor hard-codes the backbone feature sizes of a
    # 1024-pixel model; give it the ones of this model (S/4, S/8, S/16).
    predictor._bb_feat_sizes = [(S // 4, S // 4), (S // 8, S // 8), (S // 16, S // 16)]

    scene = Scene(S, 8, args.seed)
    square = scene.frames()[2]
    # A non-square image: 300 wide x 200 high, made from a different crop.
    rng = np.random.default_rng(args.seed + 7)
    wide = Scene(300, 8, args.seed + 1).frames()[5][:200, :300].copy()
    wide[20:60, 200:280] = np.array([250, 120, 20], dtype=np.uint8)
    wide = np.clip(wide.astype(np.int32) + rng.integers(-3, 4, size=wide.shape), 0, 255).astype(
        np.uint8
    )

    images = []
    for name, img in (("square", square), ("wide", wide)):
        H, W = img.shape[:2]
        predictor.set_image(img)
        input_tensor = predictor._transforms(img)[None]  # what the encoder saw
        with torch.no_grad():
            enc = model.forward_image(input_tensor)
        feats = predictor._features
        disc = (
            [round(0.30 * W + 6, 2), round(0.35 * H + 4, 2)]
            if name == "square"
            else [round(0.5 * W, 2), round(0.45 * H, 2)]
        )
        other = [round(0.62 * W, 2), round(0.66 * H, 2)]
        neg = [round(0.05 * W, 2), round(0.9 * H, 2)]
        box = [round(0.45 * W, 2), round(0.50 * H, 2), round(0.86 * W, 2), round(0.83 * H, 2)]
        prompts = [
            (
                "one_click_multimask",
                {"point_coords": [disc], "point_labels": [1], "multimask_output": True},
            ),
            (
                "one_click_single",
                {"point_coords": [disc], "point_labels": [1], "multimask_output": False},
            ),
            (
                "two_clicks_single",
                {"point_coords": [disc, neg], "point_labels": [1, 0], "multimask_output": False},
            ),
            (
                "two_clicks_multimask",
                {"point_coords": [disc, other], "point_labels": [1, 1], "multimask_output": True},
            ),
            ("box_single", {"box": box, "multimask_output": False}),
            ("box_multimask", {"box": box, "multimask_output": True}),
            (
                "box_click_single",
                {
                    "box": box,
                    "point_coords": [other],
                    "point_labels": [1],
                    "multimask_output": False,
                },
            ),
        ]
        results = []
        prev_best = None
        for pname, kw in prompts:
            call = {
                k: (np.array(v, dtype=np.float32) if k != "multimask_output" else v)
                for k, v in kw.items()
            }
            if "point_labels" in call:
                call["point_labels"] = np.array(kw["point_labels"], dtype=np.int32)
            masks, ious, low = predictor.predict(**call)
            logits, _, _ = predictor.predict(**call, return_logits=True)
            results.append(_image_result(pname, kw, masks, ious, low, logits))
            if pname == "one_click_multimask":
                prev_best = low[int(np.argmax(ious))][None]
        # mask input from a previous prediction (official notebook pattern)
        for pname, mm in (
            ("click_with_mask_input_single", False),
            ("click_with_mask_input_multimask", True),
        ):
            kw = {"point_coords": [disc, neg], "point_labels": [1, 0], "multimask_output": mm}
            call = {
                "point_coords": np.array(kw["point_coords"], dtype=np.float32),
                "point_labels": np.array(kw["point_labels"], dtype=np.int32),
                "mask_input": prev_best,
                "multimask_output": mm,
            }
            masks, ious, low = predictor.predict(**call)
            logits, _, _ = predictor.predict(**call, return_logits=True)
            res = _image_result(pname, kw, masks, ious, low, logits)
            res["mask_input"] = torch.from_numpy(prev_best.copy()).float()
            res["mask_input_from"] = (
                "one_click_multimask: low_res_logits[argmax(iou)] (already clamped to [-32, 32])"
            )
            results.append(res)
        images.append(
            {
                "name": name,
                "image": torch.from_numpy(np.ascontiguousarray(img)),
                "orig_hw": (H, W),
                "input_tensor": input_tensor[0].clone(),
                "forward_image": {
                    "backbone_fpn": [x.clone() for x in enc["backbone_fpn"]],
                    "vision_pos_enc": [x.clone() for x in enc["vision_pos_enc"]],
                    "vision_features": enc["vision_features"].clone(),
                },
                "image_embed": feats["image_embed"].clone(),
                "high_res_feats": [x.clone() for x in feats["high_res_feats"]],
                "predictions": results,
            }
        )
        print(f"{name} {H}x{W}:")
        for r in results:
            print(
                f"  {r['name']:34s} masks {tuple(r['masks'].shape)} iou {np.round(r['iou_predictions'].numpy(), 4).tolist()}"
                f" fg {r['masks'].flatten(1).sum(1).tolist()}"
            )

    session = {
        "format_version": FORMAT_VERSION,
        "kind": "image_predictor",
        "generated_with": {
            "tool": "tools/oracle/make_session.py --image-predictor",
            "official_package": "sam2==1.1.0 (facebookresearch/sam2 2b90b9f)",
            "torch": str(torch.__version__),
            "weights_from": os.path.basename(args.weights_from),
            "seed": args.seed,
            "notes": [
                "SAM2ImagePredictor(model) with defaults: mask_threshold 0, no hole/sprinkle filling",
                (
                    "predictor._bb_feat_sizes set to the model's (S/4, S/8, S/16) feature sizes "
                    "(the official value is hard-coded for 1024-pixel models)"
                ),
                "input_tensor = ToTensor, torchvision Resize((S, S)) (bilinear, antialias), Normalize(ImageNet)",
                "image_embed = top-level feature + no_mem_embed (directly_add_no_mem_embed)",
                "masks = bilinear upsample of the 4*S/16 low-res logits straight to the image size, > 0",
                "low_res_logits are clamped to [-32, 32]; logits are the un-thresholded masks",
            ],
        },
        "official_config_yaml": ref["official_config_yaml"],
        "hydra_overrides": ref["hydra_overrides"],
        "resolved_config_yaml": resolved,
        "state_dict": {k: v.clone() for k, v in model.state_dict().items()},
        "image_size": S,
        "images": images,
    }
    if args.compact:
        session = _compact_image_reference(session)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    torch.save(session, args.out)
    print(f"wrote {args.out} ({os.path.getsize(args.out) / 1e6:.2f} MB)")
    return 0


def _compact_image_reference(session):
    """What tests/test_image_predictor.py and tests/test_image_encoder.py compare, small enough for
    tests/data: no weights (they are the --weights-from session's, named in generated_with), no
    full-size logits or encoder input (the masks, packed with numpy.packbits, and the low-resolution
    logits carry the decoder's answer; the image carries the input), and of the encoder's outputs the
    top level and the predictor's features."""
    images = []
    for image in session["images"]:
        predictions = []
        for result in image["predictions"]:
            kept = {k: v for k, v in result.items() if k not in ("masks", "logits")}
            kept["masks_packed"] = torch.from_numpy(np.packbits(result["masks"].numpy(), axis=-1))
            kept["masks_shape"] = tuple(result["masks"].shape)
            predictions.append(kept)
        images.append({
            "name": image["name"], "image": image["image"], "orig_hw": image["orig_hw"],
            "vision_features": image["forward_image"]["vision_features"],
            "image_embed": image["image_embed"], "high_res_feats": image["high_res_feats"],
            "predictions": predictions,
        })
    kept = {k: v for k, v in session.items() if k not in ("state_dict", "images")}
    return {**kept, "kind": "image_predictor_compact", "images": images}


def _image_result(name, kw, masks, ious, low, logits):
    res = {
        "name": name,
        "multimask_output": bool(kw["multimask_output"]),
        "masks": torch.from_numpy(masks > 0.5),
        "iou_predictions": torch.from_numpy(ious.astype(np.float32)),
        "low_res_logits": torch.from_numpy(low.astype(np.float32)),
        "logits": torch.from_numpy(logits.astype(np.float32)),
    }
    if "point_coords" in kw:
        res["point_coords"] = [list(map(float, p)) for p in kw["point_coords"]]
        res["point_labels"] = [int(x) for x in kw["point_labels"]]
    if "box" in kw:
        res["box"] = [float(x) for x in kw["box"]]
    return res


# ---------------------------------------------------------------------------
# Automatic mask generator reference (--amg)
# ---------------------------------------------------------------------------

# Thresholds low enough that the small models give a useful number of masks at few points.
_AMG_LOW = {"pred_iou_thresh": 0.5, "stability_score_thresh": 0.7}
# (model, image, setting name, generator kwargs)
AMG_RUNS = [
    ("default", "scene", "official_defaults", {"points_per_side": 12}),
    ("default", "scene", "whole", {"points_per_side": 8, **_AMG_LOW}),
    ("default", "truck", "whole", {"points_per_side": 8, **_AMG_LOW}),
    ("default", "scene", "crop", {"points_per_side": 8, "crop_n_layers": 1, "crop_n_points_downscale_factor": 2,
                                  "points_per_batch": 20, **_AMG_LOW}),
    ("default", "truck", "crop", {"points_per_side": 6, "crop_n_layers": 1, "crop_overlap_ratio": 0.25, **_AMG_LOW}),
    ("default", "scene", "m2m", {"points_per_side": 8, "use_m2m": True, "points_per_batch": 20, **_AMG_LOW}),
    ("default", "scene", "single", {"points_per_side": 8, "multimask_output": False, **_AMG_LOW}),
    ("default", "truck", "single", {"points_per_side": 8, "multimask_output": False, "mask_threshold": 0.5,
                                    "stability_score_offset": 0.5, **_AMG_LOW}),
    ("default", "scene", "small_regions", {"points_per_side": 8, "min_mask_region_area": 25, **_AMG_LOW}),
    ("default", "scene", "point_grids", {"points_per_side": None, "point_grids": "custom", "crop_n_layers": 1,
                                         **_AMG_LOW}),
    ("default@128", "scene", "whole", {"points_per_side": 8, **_AMG_LOW}),
    ("default@128", "truck", "crop", {"points_per_side": 6, "crop_n_layers": 1, **_AMG_LOW}),
    # Random weights answer every click with about the same mask: a high mask threshold and a
    # lax NMS keep more than one.
    ("micro", "frame", "whole", {"points_per_side": 8, "pred_iou_thresh": 0.0, "stability_score_thresh": 0.0,
                                 "mask_threshold": 5.0, "box_nms_thresh": 0.95}),
]


def _amg_custom_grids():
    """Two explicit grids (layer 0, layer 1): uneven, normalised to [0, 1]."""
    rng = np.random.default_rng(5)
    return [rng.uniform(0.02, 0.98, size=(30, 2)), rng.uniform(0.05, 0.95, size=(12, 2))]


def _cv2_connected_components(mask):
    """CPU stand-in for the official CUDA kernel sam2.utils.misc.get_connected_components:
    8-connected labels of the foreground of [N, 1, H, W] masks (0 on background) and the area of
    each pixel's component (0 on background)."""
    import cv2

    binary = mask.to(torch.uint8).cpu().numpy()
    labels = np.zeros(binary.shape, dtype=np.int32)
    areas = np.zeros(binary.shape, dtype=np.int32)
    for i in range(binary.shape[0]):
        _, lab, stats, _ = cv2.connectedComponentsWithStats(binary[i, 0], connectivity=8)
        labels[i, 0] = lab
        areas[i, 0] = np.where(lab > 0, stats[lab, cv2.CC_STAT_AREA], 0)
    return torch.from_numpy(labels).to(mask.device), torch.from_numpy(areas).to(mask.device)


def _amg_models(repo_root):
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    models, yamls, weights = {}, {}, {}
    default_yaml = os.path.join(repo_root, "sam2_model", "weights", "default.yaml")
    default_state = torch.load(os.path.join(repo_root, "sam2_model", "weights", "default.pt"),
                               map_location="cpu", weights_only=True)["model"]
    for key, size in (("default", None), ("default@128", 128)):
        cfg = OmegaConf.load(default_yaml)
        if size is not None:
            # The same weights at another input size (the default model was first trained at 128).
            cfg.model.image_size = size
            tokens = size // 16
            attention = cfg.model.memory_attention.layer
            attention.self_attention.feat_sizes = [tokens, tokens]
            attention.cross_attention.feat_sizes = [tokens, tokens]
        OmegaConf.resolve(cfg)
        model = instantiate(cfg.model, _recursive_=True).to(torch.device("cpu")).float().eval()
        model.load_state_dict(default_state, strict=True)
        models[key] = model
        yamls[key] = OmegaConf.to_yaml(cfg)
        weights[key] = "sam2_model/weights/default.pt"
    parity = os.environ.get("SAM2_PARITY_MICRO", "/work/shared/parity/sam2.1_micro_stream.pt")
    ref = load_session(parity)
    model, resolved = build_model(config_name_for_yaml(ref["official_config_yaml"]), ref["hydra_overrides"])
    model.load_state_dict(ref["state_dict"], strict=True)
    models["micro"] = model
    yamls["micro"] = resolved
    weights["micro"] = "shared/parity/sam2.1_micro_stream.pt (state_dict)"
    return models, yamls, weights, ref["frames"][0].numpy()


def _amg_images(repo_root, parity_frame):
    from PIL import Image

    sys.path.insert(0, repo_root)
    from sam2_model.train.procedural import ProceduralConfig, generate_video

    scene = generate_video(3, ProceduralConfig(height=96, width=128, num_frames=1)).frames[0]
    truck_path = os.environ.get("SAM2_TRUCK_JPG", "/work/shared/media/truck.jpg")
    truck = np.asarray(Image.open(truck_path).convert("RGB").resize((120, 80), Image.BILINEAR))
    frame = parity_frame[::2, ::2]
    return {name: np.ascontiguousarray(img, dtype=np.uint8)
            for name, img in (("scene", scene), ("truck", truck), ("frame", frame))}


def cmd_amg(args):
    """Reference masks of the official SAM2AutomaticMaskGenerator (see AMG_RUNS)."""
    import sam2.utils.misc
    from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator

    # min_mask_region_area > 0 makes the official predictor fill holes and remove sprinkles with
    # its CUDA connected components, which a CPU install skips; run its definition with OpenCV.
    sam2.utils.misc.get_connected_components = _cv2_connected_components
    repo_root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    models, yamls, weights, parity_frame = _amg_models(repo_root)
    images = _amg_images(repo_root, parity_frame)
    runs = []
    for model_key, image_key, setting, kwargs in AMG_RUNS:
        model = models[model_key]
        S = model.image_size
        call = dict(kwargs)
        if call.get("point_grids") == "custom":
            call["point_grids"] = _amg_custom_grids()
        generator = SAM2AutomaticMaskGenerator(model, **call)
        # The official predictor hard-codes the feature sizes of a 1024 input.
        generator.predictor._bb_feat_sizes = [(S // 4, S // 4), (S // 8, S // 8), (S // 16, S // 16)]
        image = images[image_key]
        start = time.time()
        records = generator.generate(image)
        seconds = time.time() - start
        H, W = image.shape[:2]
        masks = np.stack([r["segmentation"] for r in records]) if records else np.zeros((0, H, W), bool)
        stored_kwargs = dict(kwargs)
        if stored_kwargs.get("point_grids") == "custom":
            stored_kwargs["point_grids"] = [torch.from_numpy(g) for g in call["point_grids"]]
        runs.append({
            "model": model_key, "image": image_key, "setting": setting, "kwargs": stored_kwargs,
            "num_masks": len(records),
            "masks_packed": torch.from_numpy(np.packbits(masks.reshape(len(records), -1), axis=1)),
            "area": torch.tensor([r["area"] for r in records], dtype=torch.int64),
            "bbox": torch.tensor([r["bbox"] for r in records], dtype=torch.float64).reshape(-1, 4),
            "predicted_iou": torch.tensor([r["predicted_iou"] for r in records], dtype=torch.float64),
            "stability_score": torch.tensor([r["stability_score"] for r in records], dtype=torch.float64),
            "point_coords": torch.tensor([r["point_coords"][0] for r in records], dtype=torch.float64).reshape(-1, 2),
            "crop_box": torch.tensor([r["crop_box"] for r in records], dtype=torch.float64).reshape(-1, 4),
        })
        print(f"{model_key:12s} {image_key:6s} {setting:18s} {len(records):3d} masks  {seconds:.2f} s  "
              f"iou {np.round([r['predicted_iou'] for r in records[:6]], 3).tolist()}")
    reference = {
        "format_version": FORMAT_VERSION,
        "kind": "automatic_mask_generator",
        "generated_with": {
            "tool": "tools/oracle/make_session.py --amg",
            "official_package": "sam2==1.1.0 (facebookresearch/sam2 2b90b9f)",
            "torch": str(torch.__version__),
            "notes": [
                "SAM2AutomaticMaskGenerator(model, **kwargs).generate(image), output_mode binary_mask",
                "predictor._bb_feat_sizes set to the model's (S/4, S/8, S/16) feature sizes",
                "min_mask_region_area > 0: sam2.utils.misc.get_connected_components replaced by an OpenCV "
                "8-connectivity equivalent (the CUDA kernel is absent from a CPU install)",
                "masks_packed: numpy.packbits of the row-major flattened H x W masks, one row per mask",
                "models: default = sam2_model/weights/default.{yaml,pt}; default@128 = the same weights with "
                "image_size 128; micro = shared/parity/sam2.1_micro_stream.pt",
            ],
        },
        "model_yaml": yamls,
        "model_weights": weights,
        "images": {k: torch.from_numpy(v.copy()) for k, v in images.items()},
        "runs": runs,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    torch.save(reference, args.out)
    print(f"wrote {args.out} ({os.path.getsize(args.out) / 1e6:.2f} MB)")
    return 0


def main(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--flags", choices=sorted(CONFIG_NAMES), default="sam2.1")
    p.add_argument("--arch", choices=sorted(ARCH_OVERRIDES), default="micro")
    p.add_argument("--script", choices=["default", "removals", "masks"], default="default")
    p.add_argument("--corrections-as-cond", action="store_true")
    p.add_argument("--clear-non-cond-mem", action="store_true",
                   help="clear_non_cond_mem_around_input=True (with the per-object method 1.1.0 lacks)")
    p.add_argument("--frames", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--obj-bias", choices=["mixed", "present"], default="mixed")
    p.add_argument("--out", default=None)
    p.add_argument("--replay", default=None, help="re-run a session file and compare its outputs")
    p.add_argument(
        "--image-predictor", action="store_true", help="write a SAM2ImagePredictor reference"
    )
    p.add_argument(
        "--weights-from", default=None, help="session file whose model the image reference uses"
    )
    p.add_argument("--compact", action="store_true",
                   help="with --image-predictor: the small reference tests/data keeps (no weights, packed masks)")
    p.add_argument("--amg", action="store_true",
                   help="write the SAM2AutomaticMaskGenerator reference (tests/data/amg_reference.pt)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: torch default)")
    args = p.parse_args(argv)

    _require_official()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    if args.replay:
        return cmd_replay(args)
    if not args.out:
        p.error("--out is required")
    if args.amg:
        return cmd_amg(args)
    if args.image_predictor:
        if not args.weights_from:
            p.error("--image-predictor needs --weights-from SESSION.pt")
        return cmd_image_predictor(args)
    return cmd_generate(args)


if __name__ == "__main__":
    sys.exit(main())
