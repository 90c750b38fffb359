"""The streaming tracker's options: one typed, self-checking object, the single source of their defaults.

``StreamingTracker`` takes a ``TrackerOptions``; the ROS node (its parameters), ``sam2-eval`` (its
flags) and the demo build theirs from this class, its field defaults and its ``help`` texts.

Four options are the official video predictor's and also live in a model's YAML
(``fill_hole_area``, ``non_overlap_masks``, ``clear_non_cond_mem_around_input``,
``add_all_frames_to_correct_as_cond``). Left ``None`` here, they take the model's value, so a
YAML with ``fill_hole_area: 0`` turns hole filling off. Precedence, lowest first:

1. the model's YAML (official meaning; the released models' configs carry the official video
   predictor's post-processing, e.g. ``fill_hole_area: 8``);
2. a parameters file (the node's ``--params-file``, ``config/tracker.yaml``);
3. an explicit argument (``StreamingTracker(model, fill_hole_area=0)``, ``-p fill_hole_area:=0``,
   ``sam2-eval --fill-hole-area 0``).

Torch-free on purpose: the ROS side reads it without importing the model.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Dict, List, Optional

from .robust_options import COMPONENTS, MemoryPolicyError, RobustMemoryOptions, parse_memory_policy

if TYPE_CHECKING:
    from .config import ModelConfig

AUTOCAST_DTYPES = ("bfloat16", "float16")
# How frames are squashed to the model size (sam2_model.transforms.FrameResize has the same values):
# "pillow" is the official video predictor's uint8 bicubic, by Pillow on the CPU; "pillow_port" the
# same bytes by a torch port on the model's device; "bilinear" the image predictor's float resize.
FRAME_RESIZE_METHODS = ("pillow", "pillow_port", "bilinear")


class TrackerOptionsError(ValueError):
    """Invalid tracker options; the message names every bad one."""


def _option(default: Any, help: str, model_key: Optional[str] = None):
    metadata = {"help": help}
    if model_key is not None:
        metadata["model_key"] = model_key
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class TrackerOptions:
    """How ``StreamingTracker`` tracks (the model computes; these choose what it keeps and shows).

    Args:
        fill_hole_area: fill background holes of up to this many pixels (at 1/4 of the model's
            input size) inside each mask; 0 turns hole filling off. ``None``: the model's value.
        non_overlap_masks: a pixel belongs to at most one object's mask, the highest-scoring
            one. ``None``: the model's value.
        corrections_as_cond: a correction on an already tracked frame becomes a conditioning
            frame (official ``add_all_frames_to_correct_as_cond``). ``None``: the model's value.
        clear_non_cond_mem_around_input: when a prompt's memory is stored, drop that object's
            non-conditioning memories within ``num_maskmem`` frames of the prompted frame, so old
            appearance does not compete with the correction (official
            ``clear_non_cond_mem_around_input``). ``None``: the model's value.
        max_cond_frames: most conditioning (prompted) frames kept per object: the first prompt
            always, then the most recent ones.
        max_objects: most objects tracked at once.
        autocast: compute dtype inside the tracker (``"bfloat16"``, ``"float16"``) or ``None``
            for the weights' own dtype.
        frame_resize: how frames are resized to the model input: ``"pillow"`` (official video
            predictor, default), ``"pillow_port"`` (the same bytes on the model's device) or
            ``"bilinear"`` (not official for video; see docs/node.md for its effect on masks).
        memory_policy: ``"official"`` (SAM 2's video predictor exactly, default), ``"robust"``
            (the components ``robust_options.RobustMemoryOptions`` turns on by default, listed by
            its ``components``; docs/robust_memory.md), ``"robust:<components>"`` (only those,
            ``+``-separated, from ``robust_options.COMPONENTS``) or ``"robust+<components>"`` (the
            defaults and those).
    """

    fill_hole_area: Optional[int] = _option(
        None, "fill mask holes up to this many pixels (at 1/4 model resolution); 0 = off; "
              "unset = the model config's fill_hole_area", "fill_hole_area")
    non_overlap_masks: Optional[bool] = _option(
        None, "a pixel belongs to at most one object's mask (the highest scoring); "
              "unset = the model config's non_overlap_masks", "non_overlap_masks")
    corrections_as_cond: Optional[bool] = _option(
        None, "corrections become conditioning frames; unset = the model config's "
              "add_all_frames_to_correct_as_cond", "add_all_frames_to_correct_as_cond")
    clear_non_cond_mem_around_input: Optional[bool] = _option(
        None, "a prompt drops its object's non-conditioning memories within num_maskmem frames; "
              "unset = the model config's clear_non_cond_mem_around_input", "clear_non_cond_mem_around_input")
    max_cond_frames: int = _option(8, "most prompted (conditioning) frames kept per object")
    max_objects: int = _option(64, "most objects tracked at once")
    autocast: Optional[str] = _option(None, "compute dtype inside the tracker: bfloat16, float16 or "
                                            "unset (the weights' dtype)")
    frame_resize: str = _option("pillow", "frame resize to the model input: pillow (official video predictor), "
                                          "pillow_port (same bytes, on the model's device) or bilinear (not official)")
    # The default components are read off RobustMemoryOptions, so that this text follows them.
    memory_policy: str = _option("official", "official (SAM 2 exactly) or robust (components "
                                             f"{', '.join(RobustMemoryOptions().components)}); "
                                             "robust:<a+b>[,threshold=value...] picks components "
                                             f"({', '.join(COMPONENTS)}), robust+<a> adds them to the defaults")

    # ------------------------------------------------------------------ checks
    def problems(self) -> List[str]:
        """Every invalid value, as sentences naming the option; empty when all is well."""
        found, badly_typed = [], set()
        for name, wanted in option_types().items():
            value = getattr(self, name)
            if value is None:
                continue
            if wanted is bool and not isinstance(value, bool):
                found.append(f"{name} must be true or false, got {value!r}")
            elif wanted is int and (isinstance(value, bool) or not isinstance(value, int)):
                found.append(f"{name} must be an integer, got {value!r}")
            elif wanted is str and not isinstance(value, str):
                found.append(f"{name} must be a string, got {value!r}")
            else:
                continue
            badly_typed.add(name)
        if badly_typed:  # range checks below only compare values of the right type
            return found
        if self.fill_hole_area is not None and self.fill_hole_area < 0:
            found.append(f"fill_hole_area {self.fill_hole_area} must be >= 0 (0 turns hole filling off)")
        if self.max_cond_frames < 1:
            found.append(f"max_cond_frames {self.max_cond_frames} must be at least 1 (the first prompt is always kept)")
        if self.max_objects < 1:
            found.append(f"max_objects {self.max_objects} must be at least 1")
        if self.autocast is not None and self.autocast not in AUTOCAST_DTYPES:
            found.append(f"autocast {self.autocast!r} must be one of {', '.join(AUTOCAST_DTYPES)} or unset")
        if self.frame_resize not in FRAME_RESIZE_METHODS:
            found.append(f"frame_resize {self.frame_resize!r} must be one of {', '.join(FRAME_RESIZE_METHODS)}")
        try:
            parse_memory_policy(self.memory_policy)
        except MemoryPolicyError as error:
            found.append(str(error))
        return found

    def check(self) -> "TrackerOptions":
        problems = self.problems()
        if problems:
            raise TrackerOptionsError("invalid tracker options: " + "; ".join(problems))
        return self

    # ------------------------------------------------------------------ layering
    def overridden_by(self, **explicit: Any) -> "TrackerOptions":
        """These options with every explicit value that is not ``None`` put on top."""
        unknown = sorted(set(explicit) - set(option_names()))
        if unknown:
            raise TrackerOptionsError(f"unknown tracker option(s) {', '.join(unknown)}; "
                                      f"known: {', '.join(option_names())}")
        given = {name: value for name, value in explicit.items() if value is not None}
        return dataclasses.replace(self, **given)

    def for_model(self, config: "ModelConfig") -> "TrackerOptions":
        """Every option still unset takes the model config's value (official meaning)."""
        from_model = {item.name: getattr(config, item.metadata["model_key"])
                      for item in dataclasses.fields(self)
                      if "model_key" in item.metadata and getattr(self, item.name) is None}
        return dataclasses.replace(self, **from_model).check()


def option_names() -> List[str]:
    return [item.name for item in dataclasses.fields(TrackerOptions)]


def option_help() -> Dict[str, str]:
    """Each option's one-line description (ROS parameter descriptions, CLI help)."""
    return {item.name: item.metadata["help"] for item in dataclasses.fields(TrackerOptions)}


def option_types() -> Dict[str, type]:
    """Each option's value type (``bool``, ``int`` or ``str``), ``Optional`` removed."""
    return {name: _without_optional(hint) for name, hint in typing.get_type_hints(TrackerOptions).items()}


def option_choices() -> Dict[str, tuple]:
    """The allowed values of the options that take one of a few names."""
    return {"autocast": AUTOCAST_DTYPES, "frame_resize": FRAME_RESIZE_METHODS}


def model_option_names() -> List[str]:
    """The options whose unset value comes from the model's config."""
    return [item.name for item in dataclasses.fields(TrackerOptions) if "model_key" in item.metadata]


def _without_optional(hint: Any) -> Any:
    """``T`` for ``Optional[T]``; any other type hint as it is (resolved types, never their text)."""
    args = [arg for arg in typing.get_args(hint) if arg is not type(None)]
    if typing.get_origin(hint) is typing.Union and len(args) == 1:
        return args[0]
    return hint
