"""How tracked objects are drawn: the node's overlay image, the demo GIF and sam2-eval's report plots.

numpy + Pillow, no ROS, so every picture of an object uses one palette: ``colour_of(id)`` steps
the hue by the golden ratio, so ids close together get clearly different colours and an object
keeps its colour wherever it is drawn. Masks are tinted with numpy (from a label image or from
per-object masks); boxes and id tags are drawn with Pillow's ImageDraw.

Boxes are ``(x0, y0, x1, y1)`` with inclusive pixel indices, the format of
``sam2_model.mask_geometry``.
"""

from __future__ import annotations

import colorsys
import functools
import math
from typing import TYPE_CHECKING, Mapping, Optional, Tuple

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .mask_geometry import Box

if TYPE_CHECKING:  # torch only where tensors are tinted (reports and the demo draw without it)
    import torch

Colour = Tuple[int, int, int]

MASK_ALPHA = 0.5
# Hue steps of 1/golden ratio spread any run of consecutive ids evenly around the colour circle.
HUE_STEP = (math.sqrt(5) - 1) / 2
SATURATION = 0.75
VALUE = 0.95
# Text on a tag is black where the tag is lighter than this (ITU-R BT.601 luma, 0..255), else white.
DARK_TEXT_ABOVE_LUMA = 150
# One box line pixel per this many pixels of the picture's shorter side (at least 1).
PIXELS_PER_LINE_PX = 120


@functools.lru_cache(maxsize=4096)
def colour_of(object_id: int) -> Colour:
    """The RGB colour of an object id: HSV with hue = id * HUE_STEP (mod 1), SATURATION, VALUE."""
    red, green, blue = colorsys.hsv_to_rgb((int(object_id) * HUE_STEP) % 1.0, SATURATION, VALUE)
    return round(red * 255), round(green * 255), round(blue * 255)


def text_colour_on(colour: Colour) -> Colour:
    """Black or white, whichever reads better on ``colour``."""
    luma = 0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2]
    return (0, 0, 0) if luma > DARK_TEXT_ABOVE_LUMA else (255, 255, 255)


@functools.lru_cache(maxsize=32)
def font(size_px: int) -> ImageFont.ImageFont:
    """Pillow's bundled font at ``size_px`` (Pillow < 10.1 has one bitmap size only)."""
    try:
        return ImageFont.load_default(size=size_px)
    except TypeError:
        return ImageFont.load_default()


def line_px_for(height: int, width: int) -> int:
    """Box line width for a picture of this size: visible on a camera image, thin on a small one."""
    return max(1, min(height, width) // PIXELS_PER_LINE_PX)


def _alpha_256(alpha: float) -> int:
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    return round(alpha * 256)


def _blend(pixels: np.ndarray, colours: np.ndarray, weight) -> np.ndarray:
    """uint8 pixels * (1 - weight / 256) + colours * weight / 256, rounded; integer arithmetic (a
    camera frame's worth of float blending costs several times more)."""
    weight = np.asarray(weight, np.uint16)
    mixed = pixels.astype(np.uint16) * (256 - weight) + np.asarray(colours, np.uint16) * weight + 128
    return (mixed >> 8).astype(np.uint8)


def _check_rgb(rgb: np.ndarray, shape: Tuple[int, ...], what: str) -> None:
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an H x W x 3 uint8 picture, got {rgb.shape} {rgb.dtype}")
    if tuple(shape) != rgb.shape[:2]:
        raise ValueError(f"{what} of shape {tuple(shape)} does not match the picture's {rgb.shape[:2]}")


def tint_tables(ids, alpha: float = MASK_ALPHA) -> Tuple[np.ndarray, np.ndarray]:
    """Lookup tables by label for ``tint_labels``: colour [L, 3] and weight [L] (out of 256), with L one
    past the largest id so that every label not drawn (0, ids not listed, anything larger) gets weight 0."""
    ids = [int(i) for i in ids if int(i) > 0]
    colours = np.zeros((max(ids, default=0) + 2, 3), np.uint16)
    weights = np.zeros(max(ids, default=0) + 2, np.uint16)
    if ids:
        colours[ids], weights[ids] = [colour_of(i) for i in ids], _alpha_256(alpha)
    return colours, weights


def tint_labels(rgb: np.ndarray, labels: np.ndarray, ids, alpha: float = MASK_ALPHA) -> np.ndarray:
    """A copy of ``rgb`` where each pixel labelled with one of ``ids`` (0 = background) is blended
    with that id's colour; other labels are left as they are."""
    _check_rgb(rgb, labels.shape, "label image")
    if not any(int(i) > 0 for i in ids):
        return rgb.copy()
    colours, weights = tint_tables(ids, alpha)
    return _blend(rgb, np.take(colours, labels, axis=0, mode="clip"),
                  np.take(weights, labels, mode="clip")[..., None])


def tint_labels_tensor(rgb: torch.Tensor, labels: torch.Tensor, ids, alpha: float = MASK_ALPHA) -> torch.Tensor:
    """``tint_labels`` in torch, on the tensors' device (the node tints on the model's device): the same
    tables and integer blend, so the same bytes. ``rgb`` H x W x 3 uint8, ``labels`` H x W integer."""
    import torch

    if tuple(rgb.shape) != (*labels.shape, 3) or rgb.dtype != torch.uint8:
        raise ValueError(f"expected H x W x 3 uint8 pixels for a {tuple(labels.shape)} label image, "
                         f"got {tuple(rgb.shape)} {rgb.dtype}")
    colours, weights = (torch.from_numpy(t.astype(np.int32)).to(rgb.device) for t in tint_tables(ids, alpha))
    index = labels.long().clamp_(0, colours.shape[0] - 1)
    weight = weights[index][..., None]
    mixed = rgb.int() * (256 - weight) + colours[index] * weight + 128
    return (mixed >> 8).to(torch.uint8)


def _edge(mask: np.ndarray, width_px: int) -> np.ndarray:
    """The mask's pixels within ``width_px`` steps (8-neighbourhood) of the background; outside the
    picture counts as background."""
    inner = mask
    height, width = mask.shape
    for _ in range(width_px):
        padded = np.pad(inner, 1, constant_values=False)
        shrunk = inner.copy()
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                shrunk &= padded[1 + dy:1 + dy + height, 1 + dx:1 + dx + width]
        inner = shrunk
    return mask & ~inner


def tint_masks(rgb: np.ndarray, masks: Mapping[int, np.ndarray], alpha: float = MASK_ALPHA,
               outline_px: int = 0) -> np.ndarray:
    """A copy of ``rgb`` with each object's mask blended with its colour (later objects on top of
    earlier ones) and, with ``outline_px``, the mask's edge that wide in the full colour."""
    out = rgb.copy()
    for object_id, mask in masks.items():
        mask = np.asarray(mask, dtype=bool)
        _check_rgb(rgb, mask.shape, f"mask of object {object_id}")
        colour = np.asarray(colour_of(object_id), np.uint8)
        out[mask] = _blend(out[mask], colour, _alpha_256(alpha))
        if outline_px > 0:
            out[_edge(mask, outline_px)] = colour
    return out


def draw_id_tag(draw: ImageDraw.ImageDraw, object_id: int, xy: Tuple[float, float], text_font,
                centred: bool = False) -> None:
    """The id as text on a tag of the object's colour: the tag's bottom-left corner at ``xy`` (or
    its centre, with ``centred``), moved inside the picture where it would stick out."""
    text = str(object_id)
    colour = colour_of(object_id)
    left, top, right, bottom = draw.textbbox((0, 0), text, font=text_font)
    pad = max(1, (bottom - top) // 5)
    tag_w, tag_h = right - left + 2 * pad, bottom - top + 2 * pad
    x, y = (xy[0] - tag_w / 2, xy[1] - tag_h / 2) if centred else (xy[0], xy[1] - tag_h)
    picture_w, picture_h = draw.im.size
    x = int(round(min(max(x, 0), max(picture_w - tag_w, 0))))
    y = int(round(min(max(y, 0), max(picture_h - tag_h, 0))))
    draw.rectangle((x, y, x + tag_w - 1, y + tag_h - 1), fill=colour)
    draw.text((x + pad - left, y + pad - top), text, fill=text_colour_on(colour), font=text_font)


def draw_boxes(rgb: np.ndarray, boxes: Mapping[int, Box], line_px: int = 1,
               font_px: Optional[int] = None) -> np.ndarray:
    """A copy of ``rgb`` with each object's box outlined in its colour (``line_px`` wide, inside
    the box) and its id on a tag above the box's top-left corner."""
    picture = Image.fromarray(rgb)
    draw = ImageDraw.Draw(picture)
    text_font = font(font_px or max(10, 7 * line_px))
    for object_id, (x0, y0, x1, y1) in boxes.items():
        draw.rectangle((x0, y0, x1, y1), outline=colour_of(object_id), width=line_px)
    for object_id, (x0, y0, _, _) in boxes.items():  # tags last: no box line crosses a tag
        draw_id_tag(draw, object_id, (x0, y0), text_font)
    return np.asarray(picture)


def draw_tracked(rgb: np.ndarray, labels: Optional[np.ndarray], boxes: Mapping[int, Box]) -> np.ndarray:
    """The node's overlay: ``rgb`` with the label image tinted (overlaps show the object that won the
    pixel) and each object of ``boxes`` outlined with its id; line width by the picture's size.
    ``labels`` None: ``rgb`` is already tinted (``tint_labels_tensor`` on the device)."""
    tinted = rgb if labels is None else tint_labels(rgb, labels, boxes.keys())
    if not boxes:
        return tinted
    return draw_boxes(tinted, boxes, line_px=line_px_for(*rgb.shape[:2]))
