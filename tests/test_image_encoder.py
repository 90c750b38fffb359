"""The Hiera + FPN image encoder: official key layout, official numerics, config handling.

Official numerics: the top-level features the official implementation (sam2 1.1.0, facebookresearch/sam2
2b90b9f) computed with the parity micro model's weights, in float32 on CPU, on the images of
tests/data/image_predictor_micro.pt (tools/oracle/make_session.py --image-predictor --compact).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml

from sam2_model.image_encoder import (
    FpnNeck,
    Hiera,
    ImageEncoder,
    ImageFeatures,
    _max_pool_hw,
    _merge_windows,
    _split_windows,
    build_image_encoder,
)
from sam2_model.position_encoding import SinePositionEncoding
from sam2_model.transforms import preprocess_image

from micro_session import session  # noqa: F401
from parity_sessions import MICRO_SESSION, PARITY_DIR

LAYOUTS_FILE = PARITY_DIR / "checkpoint_layouts.json"
PREFIX = "image_encoder."


# The parity micro model's encoder (as in the parity file's YAML), for tests that build their own weights.
MICRO_TRUNK = dict(embed_dim=24, num_heads=1, stages=[1, 1, 2, 1], global_att_blocks=[3],
                   window_pos_embed_bkg_spatial_size=[7, 7])
MICRO_NECK = dict(d_model=32, backbone_channel_list=[192, 96, 48, 24], fpn_top_down_levels=[2, 3],
                  fpn_interp_model="nearest",
                  position_encoding=dict(num_pos_feats=32, normalize=True, scale=None, temperature=10000))

def _image_encoder_config(config_yaml: str) -> dict:
    return yaml.safe_load(config_yaml)["model"]["image_encoder"]


def _build(config: dict) -> ImageEncoder:
    return build_image_encoder(config["trunk"], config["neck"], config["scalp"])


def _randomise(module: torch.nn.Module, seed: int = 0) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensor in module.state_dict().values():
            tensor.copy_(torch.randn(tensor.shape, generator=generator) * (0.2 if tensor.ndim > 1 else 0.1))


def _micro_encoder(seed: int = 0, **neck_overrides) -> ImageEncoder:
    encoder = build_image_encoder(MICRO_TRUNK, {**MICRO_NECK, **neck_overrides}, 1).eval()
    _randomise(encoder, seed)
    return encoder


def _normalised_frames(frames: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
    std = torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    return (frames.permute(0, 3, 1, 2).float() / 255 - mean) / std


# ---------------------------------------------------------------------------------------------
# Official checkpoint layouts
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(json.loads(LAYOUTS_FILE.read_text())))
def test_state_dict_matches_official_layout(name):
    layout = json.loads(LAYOUTS_FILE.read_text())[name]
    with torch.device("meta"):
        encoder = _build(_image_encoder_config(layout["config_yaml"]))
    ours = {PREFIX + k: list(v.shape) for k, v in encoder.state_dict().items()}
    official = {k: spec["shape"] for k, spec in layout["state_dict"].items() if k.startswith(PREFIX)}
    assert sorted(set(ours) ^ set(official)) == []
    assert ours == official


def test_released_tiny_builds_on_cpu_and_loads_strictly():
    layout = json.loads(LAYOUTS_FILE.read_text())["sam2.1_hiera_tiny"]
    encoder = _build(_image_encoder_config(layout["config_yaml"]))
    state = {k[len(PREFIX):]: torch.zeros(spec["shape"]) for k, spec in layout["state_dict"].items()
             if k.startswith(PREFIX)}
    encoder.load_state_dict(state, strict=True)
    assert encoder.trunk.channel_list == [768, 384, 192, 96]


# ---------------------------------------------------------------------------------------------
# Numerics on the parity micro model
# ---------------------------------------------------------------------------------------------


def test_parity_weights_load_strictly_and_match_official_outputs(session):  # noqa: F811
    encoder = _build(_image_encoder_config(session["resolved_config_yaml"])).eval()
    weights = {k[len(PREFIX):]: v for k, v in session["state_dict"].items() if k.startswith(PREFIX)}
    encoder.load_state_dict(weights, strict=True)
    images = _normalised_frames(session["frames"][[0, 7]])

    with torch.inference_mode():
        first = encoder(images)
        second = encoder(images)
        single = encoder(images[1:])

    assert isinstance(first, ImageFeatures)
    expected_shapes = [(2, 32, 64, 64), (2, 32, 32, 32), (2, 32, 16, 16)]
    assert [tuple(f.shape) for f in first.feature_maps] == expected_shapes
    assert [tuple(p.shape) for p in first.positions] == expected_shapes
    assert first.vision_features is first.feature_maps[-1]
    for a, b, c in zip(first.feature_maps, second.feature_maps, single.feature_maps):
        assert a.dtype == torch.float32 and torch.isfinite(a).all()
        assert torch.equal(a, b)  # deterministic
        torch.testing.assert_close(a[1:], c, atol=1e-5, rtol=1e-5)  # batch items are independent

    reference = torch.load(Path(__file__).resolve().parent / "data" / "image_predictor_micro.pt", weights_only=True)
    assert reference["generated_with"]["weights_from"] == MICRO_SESSION.name
    for official in reference["images"]:  # a square and a 300 x 200 image, resized as the official predictor does
        pixels, _ = preprocess_image(official["image"].numpy(), 256, torch.device("cpu"), torch.float32)
        with torch.inference_mode():
            features = encoder(pixels)
        torch.testing.assert_close(features.vision_features, official["vision_features"], atol=1e-4, rtol=1e-4)


def test_positions_are_the_sine_encoding_of_each_level():
    encoder = _micro_encoder()
    with torch.inference_mode():
        features = encoder(torch.randn(2, 3, 128, 128))
    reference = SinePositionEncoding(32)
    for feature, position in zip(features.feature_maps, features.positions):
        assert position.shape == feature.shape and position.dtype == feature.dtype
        assert torch.equal(position, reference(feature))


def test_official_dict_view():
    encoder = _micro_encoder()
    with torch.inference_mode():
        out = encoder(torch.randn(1, 3, 128, 128)).as_official_dict()
    assert set(out) == {"vision_features", "vision_pos_enc", "backbone_fpn"}
    assert out["vision_features"] is out["backbone_fpn"][-1]
    assert len(out["vision_pos_enc"]) == 3


def test_bfloat16_autocast_follows_official_dtypes():
    encoder = _micro_encoder()
    images = torch.randn(1, 3, 128, 128)
    with torch.inference_mode():
        reference = encoder(images)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            mixed = encoder(images)
    # As in the official code: lateral convs run in bfloat16, but the top-down sum on level 2
    # adds a float32 upsample and so comes out float32; positions follow their features.
    assert [f.dtype for f in mixed.feature_maps] == [torch.bfloat16, torch.bfloat16, torch.float32]
    assert [p.dtype for p in mixed.positions] == [f.dtype for f in mixed.feature_maps]
    for a, b in zip(reference.feature_maps, mixed.feature_maps):
        assert torch.isfinite(b).all()
        assert (a - b.float()).abs().max() < 0.1 * a.abs().max()


def test_half_precision_weights_run():
    encoder = _micro_encoder().to(torch.bfloat16)
    with torch.inference_mode():
        out = encoder(torch.randn(1, 3, 128, 128, dtype=torch.bfloat16))
    # The official neck upsamples in float32, so the top-down level comes out float32.
    assert [f.dtype for f in out.feature_maps] == [torch.bfloat16, torch.bfloat16, torch.float32]
    assert all(torch.isfinite(f).all() for f in out.feature_maps)


def test_position_embedding_cache_follows_weight_updates():
    encoder = _micro_encoder(seed=0)
    images = torch.randn(1, 3, 128, 128)
    with torch.inference_mode():
        encoder(images)  # fills the cache
    new_weights = _micro_encoder(seed=1).state_dict()
    encoder.load_state_dict(new_weights)
    fresh = _micro_encoder(seed=1)
    with torch.inference_mode():
        cached_run = encoder(images).feature_maps
        fresh_run = fresh(images).feature_maps
    assert encoder.trunk.pos_embed.requires_grad
    uncached_run = encoder(images).feature_maps  # grad mode: embedding recomputed
    for a, b, c in zip(cached_run, fresh_run, uncached_run):
        assert torch.equal(a, b)
        assert torch.equal(a, c.detach())


def test_training_mode_backpropagates_with_drop_path():
    trunk = {**MICRO_TRUNK, "drop_path_rate": 0.5}
    encoder = build_image_encoder(trunk, MICRO_NECK, 1).train()
    _randomise(encoder)
    out = encoder(torch.randn(2, 3, 128, 128))
    sum(f.square().mean() for f in out.feature_maps).backward()
    assert encoder.trunk.pos_embed.grad is not None and encoder.trunk.pos_embed.grad.abs().sum() > 0
    assert encoder.trunk.blocks[0].attn.qkv.weight.grad is not None


def test_fuse_avg_and_bilinear_and_scalp_zero():
    base = _micro_encoder(seed=3)
    avg = build_image_encoder(MICRO_TRUNK, {**MICRO_NECK, "fuse_type": "avg", "fpn_interp_model": "bilinear",
                                            "fpn_top_down_levels": None}, 0).eval()
    avg.load_state_dict(base.state_dict())
    images = torch.randn(1, 3, 128, 128)
    with torch.inference_mode():
        levels = base.trunk(images)
        out = avg(images)
        neck = avg.neck
        coarse = neck.convs[0](levels[3])
        level2 = (neck.convs[1](levels[2]) + F.interpolate(coarse, scale_factor=2.0, mode="bilinear",
                                                           align_corners=False)) / 2
    assert len(out.feature_maps) == 4
    torch.testing.assert_close(out.feature_maps[3], coarse)
    torch.testing.assert_close(out.feature_maps[2], level2)


# ---------------------------------------------------------------------------------------------
# Building blocks
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("height,width,size", [(16, 16, 8), (14, 10, 4), (5, 7, 7), (9, 9, 14)])
def test_window_split_and_merge_round_trip(height, width, size):
    x = torch.randn(2, height, width, 3)
    windows, grid = _split_windows(x, size)
    assert windows.shape == (2 * grid[0] * grid[1], size, size, 3)
    assert grid == (-(-height // size), -(-width // size))
    # Row-major windows: the first window is the top-left corner.
    corner = x[0, :size, :size]
    assert torch.equal(windows[0, : corner.shape[0], : corner.shape[1]], corner)
    assert torch.equal(_merge_windows(windows, 2, grid, height, width), x)


@pytest.mark.parametrize("height,width,stride", [(8, 8, (2, 2)), (7, 9, (2, 2)), (6, 9, (2, 3)), (5, 5, (1, 2))])
def test_max_pool_matches_torch(height, width, stride):
    x = torch.randn(3, height, width, 4)
    x[0, 0, 0, 0] = float("nan")
    expected = F.max_pool2d(x.permute(0, 3, 1, 2), stride, stride).permute(0, 2, 3, 1)
    torch.testing.assert_close(_max_pool_hw(x, stride), expected, equal_nan=True, rtol=0, atol=0)


def test_hiera_structure_follows_official_rules():
    trunk = Hiera(embed_dim=8, num_heads=1, stages=(1, 2, 3, 1), global_att_blocks=(4,), window_spec=(8, 4, 6, 3),
                  window_pos_embed_bkg_spatial_size=(4, 4))
    windows = [block.window_size for block in trunk.blocks]
    pooling = [block.query_stride for block in trunk.blocks]
    heads = [block.attn.num_heads for block in trunk.blocks]
    # A stage's first block keeps the previous stage's window; block 4 is global.
    assert windows == [8, 8, 4, 4, 0, 6, 6]
    assert pooling == [None, (2, 2), None, (2, 2), None, None, (2, 2)]
    assert heads == [1, 2, 2, 4, 4, 4, 8]
    assert trunk.channel_list == [64, 32, 16, 8]
    assert [b.proj is not None for b in trunk.blocks] == [False, True, False, True, False, False, True]
    outputs = trunk(torch.randn(1, 3, 128, 128))
    assert [tuple(o.shape) for o in outputs] == [(1, 8, 32, 32), (1, 16, 16, 16), (1, 32, 8, 8), (1, 64, 4, 4)]

    last_only = Hiera(embed_dim=8, stages=(1, 1), window_spec=(4, 4), global_att_blocks=(), q_pool=1,
                      return_interm_layers=False, window_pos_embed_bkg_spatial_size=(4, 4))
    assert last_only.channel_list == [16]
    assert [tuple(o.shape) for o in last_only(torch.randn(2, 3, 64, 64))] == [(2, 16, 8, 8)]


# ---------------------------------------------------------------------------------------------
# Configuration errors
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("part,key", [("trunk", "embed_dims"), ("neck", "dmodel"), ("position", "num_feats")])
def test_unknown_config_keys_are_named(part, key):
    trunk, neck = dict(MICRO_TRUNK), dict(MICRO_NECK)
    if part == "trunk":
        trunk[key] = 1
    elif part == "neck":
        neck[key] = 1
    else:
        neck["position_encoding"] = {**neck["position_encoding"], key: 1}
    with pytest.raises(ValueError, match=key):
        build_image_encoder(trunk, neck, 1)


def test_target_keys_are_ignored_and_defaults_apply():
    trunk = {"_target_": "sam2.modeling.backbones.hieradet.Hiera", "embed_dim": 8, "num_heads": 1}
    neck = {"_target_": "x", "d_model": 16, "backbone_channel_list": [64, 32, 16, 8],
            "position_encoding": {"_target_": "y", "num_pos_feats": 16}}
    encoder = build_image_encoder(trunk, neck, 1)
    assert len(encoder.trunk.blocks) == 24  # official default stages (2, 3, 16, 3)
    assert [encoder.trunk.blocks[i].window_size for i in (0, 12, 16, 20, 23)] == [8, 0, 0, 0, 7]
    assert encoder.neck.fpn_interp_model == "bilinear" and encoder.neck.fuse_type == "sum"
    assert encoder.neck.fpn_top_down_levels == [0, 1, 2, 3]


def test_mismatched_channels_and_bad_values_raise():
    with pytest.raises(ValueError, match="backbone_channel_list"):
        build_image_encoder(MICRO_TRUNK, {**MICRO_NECK, "backbone_channel_list": [96, 48, 24, 12]}, 1)
    with pytest.raises(ValueError, match="fuse_type"):
        build_image_encoder(MICRO_TRUNK, {**MICRO_NECK, "fuse_type": "max"}, 1)
    with pytest.raises(ValueError, match="window_spec"):
        build_image_encoder({**MICRO_TRUNK, "window_spec": [8, 4]}, MICRO_NECK, 1)
    with pytest.raises(ValueError, match="scalp"):
        build_image_encoder(MICRO_TRUNK, MICRO_NECK, 4)
    with pytest.raises(ValueError, match="weights_path"):
        build_image_encoder({**MICRO_TRUNK, "weights_path": "/tmp/hiera.pt"}, MICRO_NECK, 1)
    with pytest.raises(ValueError, match="d_model"):
        build_image_encoder(MICRO_TRUNK, {"backbone_channel_list": [192, 96, 48, 24]}, 1)


def test_modules_are_constructible_directly():
    trunk = Hiera(embed_dim=8, num_heads=1, stages=(1, 1, 1, 1), global_att_blocks=(), window_spec=(4, 2, 2, 2),
                  window_pos_embed_bkg_spatial_size=(4, 4))
    neck = FpnNeck(SinePositionEncoding(16), d_model=16, backbone_channel_list=trunk.channel_list,
                   fpn_top_down_levels=[2, 3], fpn_interp_model="nearest")
    encoder = ImageEncoder(trunk, neck, scalp=2)
    out = encoder(torch.randn(1, 3, 64, 64))
    assert [tuple(f.shape) for f in out.feature_maps] == [(1, 16, 16, 16), (1, 16, 8, 8)]
