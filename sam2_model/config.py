"""Model configuration: typed values read from official SAM 2 YAML configs or released presets.

Official configs are Hydra YAML files whose ``_target_`` keys name the official classes. We
read only the values (Hydra is not needed): the ``model:`` mapping gives the image encoder's
trunk/neck settings, the memory attention, the memory encoder and the ``SAM2Base`` /
``SAM2VideoPredictor`` flags.
"""

from __future__ import annotations

import copy
import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional, Tuple

import yaml


class ConfigError(ValueError):
    """A config that cannot describe a SAM 2 model (unknown key, bad value, unknown name)."""


@dataclass
class RoPEAttentionConfig:
    embedding_dim: int = 256
    num_heads: int = 1
    downsample_rate: int = 1
    dropout: float = 0.1
    rope_theta: float = 10000.0
    feat_sizes: Tuple[int, int] = (64, 64)
    rope_k_repeat: bool = False
    kv_in_dim: Optional[int] = None


@dataclass
class MemoryAttentionConfig:
    d_model: int = 256
    num_layers: int = 4
    pos_enc_at_input: bool = True
    activation: str = "relu"
    dim_feedforward: int = 2048
    dropout: float = 0.1
    pos_enc_at_attn: bool = False
    pos_enc_at_cross_attn_keys: bool = True
    pos_enc_at_cross_attn_queries: bool = False
    self_attention: RoPEAttentionConfig = field(default_factory=RoPEAttentionConfig)
    cross_attention: RoPEAttentionConfig = field(
        default_factory=lambda: RoPEAttentionConfig(rope_k_repeat=True, kv_in_dim=64))


@dataclass
class MemoryEncoderConfig:
    in_dim: int = 256
    out_dim: int = 64
    position_num_feats: int = 64
    position_temperature: float = 10000.0
    position_normalize: bool = True
    position_scale: Optional[float] = None
    downsampler_kernel_size: int = 3
    downsampler_stride: int = 2
    downsampler_padding: int = 1
    downsampler_total_stride: int = 16
    downsampler_embed_dim: int = 256
    fuser_num_layers: int = 2
    fuser_dim: int = 256
    fuser_kernel_size: int = 7
    fuser_padding: int = 3
    fuser_layer_scale_init_value: float = 1e-6
    fuser_use_dwconv: bool = True
    fuser_input_projection: bool = False


@dataclass
class ModelConfig:
    """Every value that defines a SAM 2 / 2.1 model and its video-tracking post-processing.

    Defaults are those of the official ``SAM2Base`` constructor, so a YAML that omits a key
    means what it means to the official code.
    """

    # The image encoder's settings stay in the official key names: they are handed to the
    # Hiera trunk and FPN neck builders as they are.
    trunk: Dict[str, Any] = field(default_factory=dict)
    neck: Dict[str, Any] = field(default_factory=dict)
    scalp: int = 1
    memory_attention: MemoryAttentionConfig = field(default_factory=MemoryAttentionConfig)
    memory_encoder: MemoryEncoderConfig = field(default_factory=MemoryEncoderConfig)

    num_maskmem: int = 7
    image_size: int = 512
    backbone_stride: int = 16
    sigmoid_scale_for_mem_enc: float = 1.0
    sigmoid_bias_for_mem_enc: float = 0.0
    binarize_mask_from_pts_for_mem_enc: bool = False
    use_mask_input_as_output_without_sam: bool = False
    max_cond_frames_in_attn: int = -1
    directly_add_no_mem_embed: bool = False
    use_high_res_features_in_sam: bool = False
    multimask_output_in_sam: bool = False
    multimask_min_pt_num: int = 1
    multimask_max_pt_num: int = 1
    multimask_output_for_tracking: bool = False
    use_multimask_token_for_obj_ptr: bool = False
    iou_prediction_use_sigmoid: bool = False
    memory_temporal_stride_for_eval: int = 1
    # Read for completeness and deliberately not applied: upstream applies it across the batch, and its
    # video predictor runs one object per batch, so there it never changes a memory. Applying it to our
    # all-objects batch would depart from official results (measured: docs/benchmarks.md, sixth run).
    non_overlap_masks_for_mem_enc: bool = False
    use_obj_ptrs_in_encoder: bool = False
    max_obj_ptrs_in_encoder: int = 16
    add_tpos_enc_to_obj_ptrs: bool = True
    proj_tpos_enc_in_obj_ptrs: bool = False
    use_signed_tpos_enc_to_obj_ptrs: bool = False
    only_obj_ptrs_in_the_past_for_eval: bool = False
    pred_obj_scores: bool = False
    pred_obj_scores_mlp: bool = False
    fixed_no_obj_ptr: bool = False
    soft_no_obj_ptr: bool = False
    use_mlp_for_obj_ptr_proj: bool = False
    no_obj_embed_spatial: bool = False
    compile_image_encoder: bool = False
    # Mask decoder post-processing (official ``sam_mask_decoder_extra_args``).
    dynamic_multimask_via_stability: bool = False
    dynamic_multimask_stability_delta: float = 0.05
    dynamic_multimask_stability_thresh: float = 0.98
    # Video-predictor options carried by configs built for video: the defaults of the trackers built
    # on this model (sam2_model.tracker_options; a tracker's explicit options override them).
    fill_hole_area: int = 0
    non_overlap_masks: bool = False
    clear_non_cond_mem_around_input: bool = False
    add_all_frames_to_correct_as_cond: bool = False

    @property
    def hidden_dim(self) -> int:
        return int(self.neck.get("d_model", 256))

    @property
    def memory_dim(self) -> int:
        return self.memory_encoder.out_dim

    def validate(self) -> None:
        if self.image_size % self.backbone_stride:
            raise ConfigError(f"image_size {self.image_size} is not a multiple of backbone_stride {self.backbone_stride}")
        if self.memory_temporal_stride_for_eval != 1:
            raise ConfigError("memory_temporal_stride_for_eval other than 1 is not supported by the streaming tracker")
        if self.proj_tpos_enc_in_obj_ptrs and not self.add_tpos_enc_to_obj_ptrs:
            raise ConfigError("proj_tpos_enc_in_obj_ptrs needs add_tpos_enc_to_obj_ptrs")
        if self.fixed_no_obj_ptr and not (self.pred_obj_scores and self.use_obj_ptrs_in_encoder):
            raise ConfigError("fixed_no_obj_ptr needs pred_obj_scores and use_obj_ptrs_in_encoder")
        if self.hidden_dim % self.memory_dim:
            raise ConfigError(f"hidden dim {self.hidden_dim} is not a multiple of memory dim {self.memory_dim}")
        if self.fill_hole_area < 0:
            raise ConfigError(f"fill_hole_area {self.fill_hole_area} must be >= 0 (0 turns hole filling off)")
        if self.use_obj_ptrs_in_encoder and self.max_obj_ptrs_in_encoder < 2:
            raise ConfigError("max_obj_ptrs_in_encoder must be at least 2")


# ---------------------------------------------------------------------------------------------
# Reading official YAML
# ---------------------------------------------------------------------------------------------

# Keys of official configs that select a class or only matter to training/compilation.
_IGNORED_KEYS = {"_target_"}


def _strip_targets(node: Any) -> Any:
    if isinstance(node, Mapping):
        return {k: _strip_targets(v) for k, v in node.items() if k not in _IGNORED_KEYS}
    if isinstance(node, list):
        return [_strip_targets(v) for v in node]
    return node


def _coerce(value: Any, default: Any, where: str) -> Any:
    """Match the type of the official default (plain YAML reads ``1e-6`` as a string)."""
    if isinstance(value, list):
        return tuple(value)
    try:
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise ValueError(f"expected true/false, got {value!r}")
            return value
        if isinstance(default, float) and isinstance(value, (int, float, str)):
            return float(value)
        if isinstance(default, int) and isinstance(value, (int, float, str)):
            number = float(value)
            if not number.is_integer():
                raise ValueError(f"expected an integer, got {value!r}")
            return int(number)
    except ValueError as error:
        raise ConfigError(f"bad value for {where}: {error}") from error
    return value


def _fill_dataclass(instance: Any, values: Mapping[str, Any], where: str) -> None:
    names = {f.name for f in dataclasses.fields(instance)}
    for key, value in values.items():
        if key not in names:
            raise ConfigError(f"unknown key {where}.{key} in SAM 2 config")
        setattr(instance, key, _coerce(value, getattr(instance, key), f"{where}.{key}"))


def _read_attention(values: Mapping[str, Any], where: str) -> RoPEAttentionConfig:
    config = RoPEAttentionConfig()
    _fill_dataclass(config, values, where)
    return config


def _read_memory_attention(values: Mapping[str, Any]) -> MemoryAttentionConfig:
    values = dict(values)
    layer = dict(values.pop("layer", {}))
    config = MemoryAttentionConfig()
    config.self_attention = _read_attention(layer.pop("self_attention", {}), "memory_attention.layer.self_attention")
    config.cross_attention = _read_attention(layer.pop("cross_attention", {}), "memory_attention.layer.cross_attention")
    layer_d_model = layer.pop("d_model", None)
    _fill_dataclass(config, values, "memory_attention")
    _fill_dataclass(config, layer, "memory_attention.layer")
    if layer_d_model is not None and layer_d_model != config.d_model:
        raise ConfigError("memory_attention.layer.d_model differs from memory_attention.d_model")
    return config


def _read_memory_encoder(values: Mapping[str, Any]) -> MemoryEncoderConfig:
    values = dict(values)
    config = MemoryEncoderConfig()
    flattened: Dict[str, Any] = {}
    for key, value in values.pop("position_encoding", {}).items():
        flattened["position_" + {"num_pos_feats": "num_feats"}.get(key, key)] = value
    for key, value in values.pop("mask_downsampler", {}).items():
        flattened["downsampler_" + key] = value
    fuser = dict(values.pop("fuser", {}))
    for key, value in fuser.pop("layer", {}).items():
        flattened["fuser_" + key] = value
    for key, value in fuser.items():
        flattened["fuser_" + key] = value
    flattened.update(values)
    _fill_dataclass(config, flattened, "memory_encoder")
    return config


def config_from_dict(model: Mapping[str, Any]) -> ModelConfig:
    """A ``ModelConfig`` from the ``model:`` mapping of an official-format config."""
    values = _strip_targets(model)
    config = ModelConfig()
    image_encoder = dict(values.pop("image_encoder", {}))
    config.trunk = dict(image_encoder.pop("trunk", {}))
    config.neck = dict(image_encoder.pop("neck", {}))
    config.scalp = int(image_encoder.pop("scalp", 1))
    if image_encoder:
        raise ConfigError(f"unknown key(s) model.image_encoder.{sorted(image_encoder)} in SAM 2 config")
    config.memory_attention = _read_memory_attention(values.pop("memory_attention", {}))
    config.memory_encoder = _read_memory_encoder(values.pop("memory_encoder", {}))
    decoder_args = values.pop("sam_mask_decoder_extra_args", None) or {}
    _fill_dataclass(config, decoder_args, "sam_mask_decoder_extra_args")
    _fill_dataclass(config, values, "model")
    config.validate()
    return config


def load_config_yaml(path: str | os.PathLike) -> ModelConfig:
    """Read an official-format (Hydra style) YAML config file."""
    try:
        with open(path, "r", encoding="utf-8") as handle:
            document = yaml.safe_load(handle)
    except OSError as error:
        raise ConfigError(f"cannot read SAM 2 config {path}: {error}") from error
    except yaml.YAMLError as error:
        raise ConfigError(f"{path} is not valid YAML: {error}") from error
    return config_from_yaml_document(document, str(path))


def config_from_yaml_document(document: Any, source: str = "<yaml>") -> ModelConfig:
    if not isinstance(document, Mapping) or not isinstance(document.get("model"), Mapping):
        raise ConfigError(f"{source} has no 'model:' mapping; is it a SAM 2 config?")
    return config_from_dict(document["model"])


# ---------------------------------------------------------------------------------------------
# The eight released models
# ---------------------------------------------------------------------------------------------

# Hiera sizes: only the trunk (and the neck's input widths) differ between tiny ... large.
_TRUNKS = {
    "tiny": dict(embed_dim=96, num_heads=1, stages=[1, 2, 7, 2], global_att_blocks=[5, 7, 9],
                 window_pos_embed_bkg_spatial_size=[7, 7]),
    "small": dict(embed_dim=96, num_heads=1, stages=[1, 2, 11, 2], global_att_blocks=[7, 10, 13],
                  window_pos_embed_bkg_spatial_size=[7, 7]),
    "base_plus": dict(embed_dim=112, num_heads=2),
    "large": dict(embed_dim=144, num_heads=2, stages=[2, 6, 36, 4], global_att_blocks=[23, 33, 43],
                  window_pos_embed_bkg_spatial_size=[7, 7], window_spec=[8, 4, 16, 8]),
}

# Shared by every released model (official YAMLs plus the video predictor's post-processing,
# which the official builder adds: stability-based multimask choice, binarised prompt
# memories, hole filling).
_RELEASED_COMMON: Dict[str, Any] = dict(
    num_maskmem=7, image_size=1024, sigmoid_scale_for_mem_enc=20.0, sigmoid_bias_for_mem_enc=-10.0,
    use_mask_input_as_output_without_sam=True, directly_add_no_mem_embed=True,
    use_high_res_features_in_sam=True, multimask_output_in_sam=True, iou_prediction_use_sigmoid=True,
    use_obj_ptrs_in_encoder=True, only_obj_ptrs_in_the_past_for_eval=True, pred_obj_scores=True,
    pred_obj_scores_mlp=True, fixed_no_obj_ptr=True, multimask_output_for_tracking=True,
    use_multimask_token_for_obj_ptr=True, multimask_min_pt_num=0, multimask_max_pt_num=1,
    use_mlp_for_obj_ptr_proj=True, dynamic_multimask_via_stability=True,
    dynamic_multimask_stability_delta=0.05, dynamic_multimask_stability_thresh=0.98,
    binarize_mask_from_pts_for_mem_enc=True, fill_hole_area=8,
)

# What SAM 2.1 (September 2024) changed in the tracking flags relative to SAM 2 (July 2024).
_VERSION_FLAGS = {
    "sam2": dict(add_tpos_enc_to_obj_ptrs=False),
    "sam2.1": dict(add_tpos_enc_to_obj_ptrs=True, proj_tpos_enc_in_obj_ptrs=True,
                   use_signed_tpos_enc_to_obj_ptrs=True, no_obj_embed_spatial=True),
}

RELEASED_MODELS: Tuple[str, ...] = tuple(
    f"{version}_hiera_{size}" for version in ("sam2", "sam2.1") for size in ("tiny", "small", "base_plus", "large"))


def released_config(name: str) -> ModelConfig:
    """The configuration of one of the eight released checkpoints, by its official name."""
    if name not in RELEASED_MODELS:
        raise ConfigError(f"unknown model {name!r}; released models are {', '.join(RELEASED_MODELS)} "
                          f"(or {DEFAULT_MODEL!r}, the bundled small model, or the path of an official-format "
                          "YAML config)")
    version, size = name.split("_hiera_")
    trunk = copy.deepcopy(_TRUNKS[size])
    embed_dim = trunk["embed_dim"]
    config = ModelConfig(
        trunk=trunk,
        neck=dict(d_model=256, backbone_channel_list=[embed_dim * 8, embed_dim * 4, embed_dim * 2, embed_dim],
                  fpn_top_down_levels=[2, 3], fpn_interp_model="nearest",
                  position_encoding=dict(num_pos_feats=256, normalize=True, scale=None, temperature=10000)),
        scalp=1,
    )
    _fill_dataclass(config, {**_RELEASED_COMMON, **_VERSION_FLAGS[version]}, "model")
    config.validate()
    return config


# The small model trained with sam2_model.train and shipped in the package (see weights/).
DEFAULT_MODEL = "default"
_WEIGHTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "weights")
DEFAULT_CONFIG_PATH = os.path.join(_WEIGHTS_DIR, "default.yaml")
DEFAULT_CHECKPOINT_PATH = os.path.join(_WEIGHTS_DIR, "default.pt")


def resolve_config(config: "str | os.PathLike | ModelConfig | Mapping[str, Any]") -> ModelConfig:
    """Accept a released name, ``"default"``, a YAML path, a ``model:`` mapping or a ``ModelConfig``."""
    if isinstance(config, ModelConfig):
        return config
    if isinstance(config, Mapping):
        return config_from_yaml_document(config) if "model" in config else config_from_dict(config)
    text = os.fspath(config)
    if text == DEFAULT_MODEL:
        return load_config_yaml(DEFAULT_CONFIG_PATH)
    if text in RELEASED_MODELS:
        return released_config(text)
    if text.endswith((".yaml", ".yml")) or os.path.sep in text or os.path.exists(text):
        if not os.path.exists(text):
            raise ConfigError(f"SAM 2 config file {text} does not exist")
        return load_config_yaml(text)
    return released_config(text)  # raises with the list of known names

