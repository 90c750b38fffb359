"""SAM 2's image encoder: a Hiera trunk followed by an FPN neck.

Layout of the computation (1024 x 1024 input, the released configs):

* ``Hiera`` (state-dict prefix ``image_encoder.trunk.``) embeds 4 x 4 patches with a strided
  7 x 7 convolution, adds a position embedding, and runs transformer blocks in four stages of
  decreasing resolution (strides 4, 8, 16, 32). Most blocks attend inside non-overlapping
  windows; a few named blocks attend globally. The first block of each later stage halves the
  resolution by max-pooling its attention queries (and widens the channels).
* ``FpnNeck`` (prefix ``image_encoder.neck.``) projects every stage output to ``d_model``
  channels with a 1 x 1 convolution, adds upsampled coarser features on the chosen levels
  (top-down fusion) and attaches a sine position encoding to every level.
* ``ImageEncoder`` (prefix ``image_encoder.``) chains the two and drops the ``scalp`` coarsest
  levels.

Parameter names follow the official checkpoints exactly, so they load with strict key
matching; everything else (module structure, helpers) is this package's own. Tensors inside
the trunk are channels-last, ``[B, H, W, C]``; the neck works on ``[B, C, H, W]``.

Numerics follow the official implementation op for op where dtypes matter (e.g. under
bfloat16 autocast the residual stream is float32 because the float32 position embedding is
added to the bfloat16 patch embedding), while copies the official code makes are avoided
where the arithmetic is unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .position_encoding import SinePositionEncoding

__all__ = [
    "ImageFeatures",
    "PatchEmbed",
    "HieraMlp",
    "HieraAttention",
    "HieraBlock",
    "Hiera",
    "FpnNeck",
    "ImageEncoder",
    "build_image_encoder",
]

# LayerNorm epsilon of every Hiera block (official ``partial(nn.LayerNorm, eps=1e-6)``).
_HIERA_NORM_EPS = 1e-6


# ---------------------------------------------------------------------------------------------
# Output type
# ---------------------------------------------------------------------------------------------


@dataclass
class ImageFeatures:
    """Multi-scale image features, ordered from the finest (stride 4) to the coarsest level.

    ``positions[i]`` is the sine position encoding of ``feature_maps[i]`` (same shape, same
    dtype). Position encodings are broadcast views of a cached grid: treat them as read-only.
    """

    feature_maps: List[torch.Tensor]  # each [B, d_model, H_i, W_i]
    positions: List[torch.Tensor]     # each [B, d_model, H_i, W_i]

    @property
    def vision_features(self) -> torch.Tensor:
        """The coarsest kept level (official ``vision_features``)."""
        return self.feature_maps[-1]

    def as_official_dict(self) -> Dict[str, Any]:
        """The official ``ImageEncoder`` output dict, for code written against it."""
        return {
            "vision_features": self.feature_maps[-1],
            "vision_pos_enc": list(self.positions),
            "backbone_fpn": list(self.feature_maps),
        }


# ---------------------------------------------------------------------------------------------
# Windowing helpers (channels-last tensors)
# ---------------------------------------------------------------------------------------------


def _split_windows(x: torch.Tensor, size: int) -> Tuple[torch.Tensor, Tuple[int, int]]:
    """``[B, H, W, C]`` -> ``[B * nh * nw, size, size, C]`` windows in row-major window order.

    The grid is zero-padded at the bottom/right up to a multiple of ``size``; padded tokens
    take part in attention exactly as in the official model. Returns the window grid ``(nh, nw)``.
    """
    batch, height, width, channels = x.shape
    pad_h, pad_w = -height % size, -width % size
    if pad_h or pad_w:
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
    nh, nw = (height + pad_h) // size, (width + pad_w) // size
    windows = x.reshape(batch, nh, size, nw, size, channels).transpose(2, 3)
    return windows.reshape(batch * nh * nw, size, size, channels), (nh, nw)


def _window_tiles(windows: torch.Tensor, batch: int, grid: Tuple[int, int]) -> torch.Tensor:
    """``[B * nh * nw, s, s, C]`` -> the strided view ``[B, nh, s, nw, s, C]`` (spatial order)."""
    nh, nw = grid
    size, channels = windows.shape[1], windows.shape[-1]
    return windows.view(batch, nh, nw, size, size, channels).transpose(2, 3)


def _merge_windows(windows: torch.Tensor, batch: int, grid: Tuple[int, int], height: int, width: int) -> torch.Tensor:
    """Reassemble windows into a ``[B, height, width, C]`` grid, dropping the padding."""
    tiles = _window_tiles(windows, batch, grid)
    batch, nh, size, nw, _, channels = tiles.shape
    return tiles.reshape(batch, nh * size, nw * size, channels)[:, :height, :width]


def _add_windows(base: torch.Tensor, windows: torch.Tensor, grid: Tuple[int, int]) -> torch.Tensor:
    """``base + merge(windows)`` for a ``[B, H, W, C]`` ``base``.

    Without padding the merge is a strided view consumed directly by the addition, so the
    windows are never copied into a spatial tensor first.
    """
    batch, height, width, channels = base.shape
    tiles = _window_tiles(windows, batch, grid)
    _, nh, size, nw, _, _ = tiles.shape
    if nh * size == height and nw * size == width:
        # ``base`` first: the result takes its (contiguous) layout.
        return (base.reshape(batch, nh, size, nw, size, channels) + tiles).reshape(batch, height, width, channels)
    return base + _merge_windows(windows, batch, grid, height, width)


def _max_pool_hw(x: torch.Tensor, stride: Tuple[int, int]) -> torch.Tensor:
    """Max-pool a ``[B, H, W, C]`` tensor with kernel = stride (floor mode, no padding).

    Same values as ``nn.MaxPool2d(stride, stride)`` on the channels-first view (NaN included),
    computed as element-wise maxima of strided slices: for the strided query slice of the
    fused qkv output this is several times faster than a pooling or reduction kernel.
    """
    sh, sw = stride
    out_h, out_w = x.shape[1] // sh, x.shape[2] // sw
    rows = x[:, 0 : out_h * sh : sh]
    for offset in range(1, sh):
        rows = torch.maximum(rows, x[:, offset : out_h * sh : sh])
    pooled = rows[:, :, 0 : out_w * sw : sw]
    for offset in range(1, sw):
        pooled = torch.maximum(pooled, rows[:, :, offset : out_w * sw : sw])
    return pooled


# ---------------------------------------------------------------------------------------------
# Hiera trunk
# ---------------------------------------------------------------------------------------------


class PatchEmbed(nn.Module):
    """7 x 7 convolution with stride 4 and padding 3 (official defaults); output ``[B, C, H, W]``."""

    def __init__(self, embed_dim: int, in_chans: int = 3, kernel_size: int = 7, stride: int = 4,
                 padding: int = 3):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=kernel_size, stride=stride, padding=padding)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.proj(image)


class HieraMlp(nn.Module):
    """Two linear layers with GELU in between; kept as ``layers.0`` / ``layers.1`` (official ``MLP``)."""

    def __init__(self, dim: int, hidden_dim: int):
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(dim, hidden_dim), nn.Linear(hidden_dim, dim)])
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers[1](self.act(self.layers[0](x)))


class HieraAttention(nn.Module):
    """Multi-head self-attention over a ``[B, H, W, C_in]`` grid (a window or the whole map).

    With ``query_stride`` the queries (only) are max-pooled first, so the output grid is
    coarser: that is how Hiera downsamples between stages.
    """

    def __init__(self, dim: int, dim_out: int, num_heads: int, query_stride: Optional[Tuple[int, int]] = None):
        super().__init__()
        if dim_out % num_heads:
            raise ValueError(f"attention width {dim_out} is not divisible by {num_heads} heads")
        self.dim_out = dim_out
        self.num_heads = num_heads
        self.query_stride = query_stride
        self.qkv = nn.Linear(dim, dim_out * 3)
        self.proj = nn.Linear(dim_out, dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, height, width, _ = x.shape
        heads = self.num_heads
        # [B, H, W, 3 * C] -> q, k, v each [B, H, W, C] (strided views, no copy).
        q, k, v = self.qkv(x).unflatten(-1, (3, self.dim_out)).unbind(-2)
        if self.query_stride is not None:
            q = _max_pool_hw(q, self.query_stride)
            height, width = q.shape[1:3]

        def heads_first(t: torch.Tensor) -> torch.Tensor:  # [B, h, w, C] -> [B, heads, h * w, C / heads]
            return t.reshape(batch, -1, heads, self.dim_out // heads).transpose(1, 2)

        out = F.scaled_dot_product_attention(heads_first(q), heads_first(k), heads_first(v))
        out = out.transpose(1, 2).reshape(batch, height, width, self.dim_out)
        return self.proj(out)


class DropPath(nn.Module):
    """Stochastic depth: drop whole residual branches per sample while training."""

    def __init__(self, drop_prob: float):
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.drop_prob == 0.0:
            return x
        keep = 1.0 - self.drop_prob
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask.div_(keep) if keep > 0.0 else x * mask


class HieraBlock(nn.Module):
    """One Hiera transformer block (official ``MultiScaleBlock``), channels-last in and out.

    ``window_size`` 0 means global attention. With ``query_stride`` the block downsamples: its
    queries are pooled, and so is the (projected) shortcut. ``window_size`` is the window on
    the *input* grid; after pooling each window shrinks by the stride.
    """

    def __init__(self, dim: int, dim_out: int, num_heads: int, window_size: int = 0,
                 query_stride: Optional[Tuple[int, int]] = None, mlp_ratio: float = 4.0,
                 drop_path: float = 0.0):
        super().__init__()
        self.dim = dim
        self.dim_out = dim_out
        self.window_size = window_size
        self.query_stride = query_stride
        self.norm1 = nn.LayerNorm(dim, eps=_HIERA_NORM_EPS)
        self.attn = HieraAttention(dim, dim_out, num_heads, query_stride)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim_out, eps=_HIERA_NORM_EPS)
        self.mlp = HieraMlp(dim_out, int(dim_out * mlp_ratio))
        # Only width-changing blocks own a shortcut projection (official key ``blocks.N.proj``).
        self.proj = nn.Linear(dim, dim_out) if dim != dim_out else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        normed = self.norm1(x)
        shortcut = x
        if self.proj is not None:
            # The official shortcut of a widening block is the *normalised* input, projected.
            shortcut = self.proj(normed)
            if self.query_stride is not None:
                shortcut = _max_pool_hw(shortcut, self.query_stride)

        if self.window_size > 0:
            windows, grid = _split_windows(normed, self.window_size)
            attended = self.attn(windows)
            if self._dropping():
                # Stochastic depth drops per image, so merge the windows before dropping.
                merged = _merge_windows(attended, shortcut.shape[0], grid, *shortcut.shape[1:3])
                x = shortcut + self.drop_path(merged)
            else:
                x = _add_windows(shortcut, attended, grid)
        else:
            x = shortcut + self.drop_path(self.attn(normed))
        return x + self.drop_path(self.mlp(self.norm2(x)))

    def _dropping(self) -> bool:
        return self.training and isinstance(self.drop_path, DropPath)


class Hiera(nn.Module):
    """Hierarchical vision transformer trunk (https://arxiv.org/abs/2306.00989).

    Returns the output of every stage (or only the last with ``return_interm_layers=False``)
    as ``[B, C_s, H_s, W_s]`` maps, finest first. ``channel_list`` lists their widths coarsest
    first, the order the neck's ``backbone_channel_list`` uses.
    """

    def __init__(
        self,
        embed_dim: int = 96,
        num_heads: int = 1,
        drop_path_rate: float = 0.0,
        q_pool: int = 3,
        q_stride: Tuple[int, int] = (2, 2),
        stages: Sequence[int] = (2, 3, 16, 3),
        dim_mul: float = 2.0,
        head_mul: float = 2.0,
        window_pos_embed_bkg_spatial_size: Tuple[int, int] = (14, 14),
        window_spec: Sequence[int] = (8, 4, 14, 7),
        global_att_blocks: Optional[Sequence[int]] = (12, 16, 20),
        return_interm_layers: bool = True,
    ):
        super().__init__()
        stages, window_spec = list(stages), list(window_spec)
        if len(stages) != len(window_spec):
            raise ValueError(f"Hiera needs one window size per stage: stages={stages}, window_spec={window_spec}")
        if not 0 <= q_pool <= len(stages) - 1:
            raise ValueError(f"q_pool={q_pool} must be between 0 and the number of stage transitions ({len(stages) - 1})")
        q_stride = (int(q_stride[0]), int(q_stride[1]))

        depth = sum(stages)
        # Index of the last block of every stage.
        self.stage_ends: List[int] = [sum(stages[: s + 1]) - 1 for s in range(len(stages))]
        # The first block of each of the first ``q_pool`` later stages pools its queries.
        pooling_blocks = {end + 1 for end in self.stage_ends[:-1][:q_pool]}
        global_blocks = set(global_att_blocks or ())
        self.return_interm_layers = return_interm_layers
        self.window_spec = window_spec
        self.q_stride = q_stride

        self.patch_embed = PatchEmbed(embed_dim)
        # Background embedding resized to the token grid, plus one window-sized embedding tiled
        # over it (https://arxiv.org/abs/2311.05613). Zero init as official; checkpoints fill them.
        self.pos_embed = nn.Parameter(torch.zeros(1, embed_dim, *window_pos_embed_bkg_spatial_size))
        self.pos_embed_window = nn.Parameter(torch.zeros(1, embed_dim, window_spec[0], window_spec[0]))

        # Linearly increasing stochastic depth, computed in Python so meta-device builds work.
        drop_rates = [drop_path_rate * i / (depth - 1) if depth > 1 else 0.0 for i in range(depth)]

        self.blocks = nn.ModuleList()
        dim, heads, stage = embed_dim, num_heads, 0
        for i in range(depth):
            # A stage's first block still uses the previous stage's window (on its input grid).
            window = 0 if i in global_blocks else window_spec[stage]
            dim_out = dim
            if i - 1 in self.stage_ends:
                dim_out = int(dim * dim_mul)
                heads = int(heads * head_mul)
                stage += 1
            self.blocks.append(HieraBlock(
                dim, dim_out, heads, window_size=window,
                query_stride=q_stride if i in pooling_blocks else None,
                drop_path=drop_rates[i],
            ))
            dim = dim_out

        stage_widths = [self.blocks[end].dim_out for end in self.stage_ends]
        self.channel_list: List[int] = stage_widths[::-1] if return_interm_layers else [stage_widths[-1]]
        self._pos_cache: Dict[Tuple[Any, ...], torch.Tensor] = {}

    def _position_embedding(self, height: int, width: int) -> torch.Tensor:
        """``[1, C, H, W]``: bicubic-resized background embedding + tiled window embedding."""
        window = self.pos_embed_window
        pos = F.interpolate(self.pos_embed, size=(height, width), mode="bicubic")
        reps_h, reps_w = -(-height // window.shape[-2]), -(-width // window.shape[-1])
        tiled = window.tile(1, 1, reps_h, reps_w)[..., :height, :width]
        return pos + tiled

    def _cached_position_embedding(self, height: int, width: int) -> torch.Tensor:
        """The position embedding, recomputed only when the grid or the parameters change.

        Used when no gradient can flow into the embedding (inference): the resize is a
        noticeable share of a CPU forward pass. ``_version`` catches in-place updates such as
        ``load_state_dict``; the data pointers catch ``.to()`` / ``.half()``.
        """
        params = (self.pos_embed, self.pos_embed_window)
        key = (height, width) + tuple((p.data_ptr(), p._version, p.dtype, p.device) for p in params)
        cached = self._pos_cache.get(key)
        if cached is None:
            # A plain (non-inference) tensor, so it can be reused outside inference mode too.
            with torch.inference_mode(False), torch.no_grad():
                cached = self._position_embedding(height, width)
            self._pos_cache = {key: cached}
        return cached

    def forward(self, image: torch.Tensor) -> List[torch.Tensor]:
        x = self.patch_embed(image)  # [B, C, H, W]
        height, width = x.shape[-2:]
        needs_grad = torch.is_grad_enabled() and (self.pos_embed.requires_grad or self.pos_embed_window.requires_grad)
        if needs_grad or torch.compiler.is_compiling():  # a compiled graph folds it in anyway
            pos = self._position_embedding(height, width)
        else:
            pos = self._cached_position_embedding(height, width)
        # Add in channels-first layout, then make the channels-last residual stream contiguous once.
        x = (x + pos).permute(0, 2, 3, 1).contiguous()

        outputs: List[torch.Tensor] = []
        last = self.stage_ends[-1]
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i == last or (self.return_interm_layers and i in self.stage_ends):
                outputs.append(x.permute(0, 3, 1, 2))
        return outputs


# ---------------------------------------------------------------------------------------------
# FPN neck
# ---------------------------------------------------------------------------------------------


class _Lateral(nn.Module):
    """Holds one lateral convolution under the official key ``convs.N.conv``."""

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        self.conv = conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class FpnNeck(nn.Module):
    """Feature pyramid over the trunk outputs (no output convs, official ``FpnNeck``).

    ``backbone_channel_list`` is coarsest first, and so are ``convs``: ``convs[0]`` projects
    the coarsest trunk level. Levels are numbered finest first (0 = stride 4); only levels in
    ``fpn_top_down_levels`` receive the upsampled coarser result, the others are lateral only.
    """

    def __init__(
        self,
        position_encoding: nn.Module,
        d_model: int,
        backbone_channel_list: Sequence[int],
        kernel_size: int = 1,
        stride: int = 1,
        padding: int = 0,
        fpn_interp_model: str = "bilinear",
        fuse_type: str = "sum",
        fpn_top_down_levels: Optional[Sequence[int]] = None,
    ):
        super().__init__()
        if fuse_type not in ("sum", "avg"):
            raise ValueError(f"fuse_type must be 'sum' or 'avg', got {fuse_type!r}")
        self.position_encoding = position_encoding
        self.d_model = d_model
        self.backbone_channel_list = list(backbone_channel_list)
        self.convs = nn.ModuleList(
            _Lateral(nn.Conv2d(channels, d_model, kernel_size=kernel_size, stride=stride, padding=padding))
            for channels in self.backbone_channel_list
        )
        self.fpn_interp_model = fpn_interp_model
        self.fuse_type = fuse_type
        levels = range(len(self.convs)) if fpn_top_down_levels is None else fpn_top_down_levels
        self.fpn_top_down_levels = [int(level) for level in levels]

    def _upsample(self, x: torch.Tensor) -> torch.Tensor:
        # Official: always upsampled in float32 (the sum then follows type promotion).
        nearest = self.fpn_interp_model == "nearest"
        return F.interpolate(x.to(dtype=torch.float32), scale_factor=2.0, mode=self.fpn_interp_model,
                             align_corners=None if nearest else False, antialias=False)

    def forward(self, levels: Sequence[torch.Tensor], num_positions: Optional[int] = None
                ) -> Tuple[List[torch.Tensor], List[Optional[torch.Tensor]]]:
        """``levels`` finest first -> (features, positions), finest first.

        Position encodings are computed for the ``num_positions`` finest levels only (all by
        default); the others are ``None``.
        """
        count = len(self.convs)
        if len(levels) != count:
            raise ValueError(f"FpnNeck expects {count} trunk levels, got {len(levels)}")
        num_positions = count if num_positions is None else num_positions
        features: List[Optional[torch.Tensor]] = [None] * count
        positions: List[Optional[torch.Tensor]] = [None] * count
        coarser: Optional[torch.Tensor] = None
        for level in reversed(range(count)):  # coarse to fine
            fused = self.convs[count - 1 - level](levels[level])
            if coarser is not None and level in self.fpn_top_down_levels:
                fused = fused + self._upsample(coarser)
                if self.fuse_type == "avg":
                    fused = fused / 2
            coarser = fused
            features[level] = fused
            if level < num_positions:
                positions[level] = self.position_encoding(fused).to(fused.dtype)
        return features, positions  # type: ignore[return-value]


# ---------------------------------------------------------------------------------------------
# Image encoder
# ---------------------------------------------------------------------------------------------


class ImageEncoder(nn.Module):
    """Trunk -> neck; the ``scalp`` coarsest levels are dropped (their features still feed
    the top-down fusion of finer levels)."""

    def __init__(self, trunk: Hiera, neck: FpnNeck, scalp: int = 0):
        super().__init__()
        if list(trunk.channel_list) != list(neck.backbone_channel_list):
            raise ValueError(f"trunk widths {trunk.channel_list} do not match the neck's backbone_channel_list "
                             f"{neck.backbone_channel_list}")
        if not 0 <= scalp < len(neck.backbone_channel_list):
            raise ValueError(f"scalp={scalp} must leave at least one of {len(neck.backbone_channel_list)} levels")
        self.trunk = trunk
        self.neck = neck
        self.scalp = scalp

    def forward(self, images: torch.Tensor) -> ImageFeatures:
        """``images`` ``[B, 3, S, S]`` (normalised) -> features at strides 4, 8, 16 (with scalp 1)."""
        kept = len(self.neck.convs) - self.scalp
        features, positions = self.neck(self.trunk(images), num_positions=kept)
        return ImageFeatures(feature_maps=features[:kept], positions=positions[:kept])  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# Construction from official config values
# ---------------------------------------------------------------------------------------------

_TRUNK_KEYS = {
    "embed_dim", "num_heads", "drop_path_rate", "q_pool", "q_stride", "stages", "dim_mul", "head_mul",
    "window_pos_embed_bkg_spatial_size", "window_spec", "global_att_blocks", "return_interm_layers",
    "weights_path",
}
_NECK_KEYS = {
    "position_encoding", "d_model", "backbone_channel_list", "kernel_size", "stride", "padding",
    "fpn_interp_model", "fuse_type", "fpn_top_down_levels",
}
_POSITION_KEYS = {"num_pos_feats", "temperature", "normalize", "scale"}
# Official PositionEmbeddingSine arguments that only warm a CUDA cache: accepted, no effect.
_POSITION_IGNORED = {"warmup_cache", "image_size", "strides"}
_IGNORED = {"_target_"}


def _checked(values: Optional[Mapping[str, Any]], allowed: set, where: str, ignored: set = frozenset()) -> Dict[str, Any]:
    values = dict(values or {})
    unknown = sorted(k for k in values if k not in allowed and k not in ignored and k not in _IGNORED)
    if unknown:
        raise ValueError(f"unknown key(s) {', '.join(repr(k) for k in unknown)} in {where}; "
                         f"known keys: {', '.join(sorted(allowed))}")
    return {k: v for k, v in values.items() if k in allowed}


def _as_tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, (list, tuple)) else value


def build_image_encoder(trunk: Mapping[str, Any], neck: Mapping[str, Any], scalp: int = 0) -> ImageEncoder:
    """Build the encoder from the values under ``model.image_encoder`` of an official YAML.

    ``trunk`` holds ``Hiera`` arguments, ``neck`` ``FpnNeck`` arguments with a nested
    ``position_encoding`` mapping (``num_pos_feats``, ``normalize``, ``scale``, ``temperature``).
    ``_target_`` keys are ignored; unknown keys raise ``ValueError``. Omitted values take the
    official constructors' defaults.
    """
    trunk_args = _checked(trunk, _TRUNK_KEYS, "model.image_encoder.trunk")
    if trunk_args.pop("weights_path", None) is not None:
        raise ValueError("model.image_encoder.trunk.weights_path is not supported: load a full SAM 2 checkpoint instead")
    trunk_args = {k: _as_tuple(v) for k, v in trunk_args.items()}

    neck_args = _checked(neck, _NECK_KEYS, "model.image_encoder.neck")
    if "d_model" not in neck_args or "backbone_channel_list" not in neck_args:
        raise ValueError("model.image_encoder.neck needs 'd_model' and 'backbone_channel_list'")
    position_args = _checked(neck_args.pop("position_encoding", None), _POSITION_KEYS,
                             "model.image_encoder.neck.position_encoding", ignored=_POSITION_IGNORED)
    num_channels = position_args.pop("num_pos_feats", neck_args["d_model"])
    position = SinePositionEncoding(int(num_channels), **position_args)

    return ImageEncoder(Hiera(**trunk_args), FpnNeck(position, **neck_args), int(scalp))
