"""Builds the in-process runner for a SAM 2 model (``sam2_model``), deterministically.

Kept apart from runner.py so that everything else in this package (readers,
metrics, reports, tests with stub trackers) works without torch.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sam2_model.tracker_options import TrackerOptions

from .errors import EvaluationInputError
from .runner import InProcessRunner

DTYPES = ("float32", "bfloat16", "float16")


@dataclass(frozen=True)
class ModelSpec:
    config: str  # released name ("sam2.1_hiera_tiny") or path of an official-format YAML
    checkpoint: Path | None  # official checkpoint ({"model": state_dict}); None = bundled weights for "default", else random
    device: str = "cpu"
    dtype: str = "float32"
    tracking: TrackerOptions = field(default_factory=TrackerOptions)  # unset options: the model's values


def _make_deterministic() -> Any:
    # cuBLAS needs its workspace setting before CUDA starts to give reproducible results.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    import torch

    torch.manual_seed(0)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    # warn_only: an op without a deterministic kernel warns instead of stopping the run.
    torch.use_deterministic_algorithms(True, warn_only=True)
    return torch


def build_variant_runners(spec: ModelSpec, memory_policies: list[str]) -> dict[str, InProcessRunner]:
    """One runner per memory policy, all on one model and one ``FeatureCache``: each frame is
    encoded once for every variant (exact: see ``variants``)."""
    from .variants import CachedTracker, FeatureCache

    # Every policy checked before the model is built: a typo in the last one should not cost a
    # model load (or hide behind a model error).
    trackings = {policy: dataclasses.replace(spec.tracking, memory_policy=policy) for policy in memory_policies}
    for tracking in trackings.values():
        problems = tracking.problems()
        if problems:
            raise EvaluationInputError("invalid tracker options: " + "; ".join(problems))
    base = build_runner(spec)
    cache = FeatureCache()
    runners = {}
    for policy, tracking in trackings.items():

        def make_tracker(tracking=tracking):
            import sam2_model

            return CachedTracker(sam2_model.StreamingTracker(base.model, tracking), cache)

        runners[policy] = InProcessRunner(
            make_tracker, description=f"{base.description}, memory_policy {policy}, image features shared "
                                      "by the variants (encoder time counted once, in the first variant)")
    return runners


def build_runner(
    spec: ModelSpec, discover_every: int = 0, discover_points_per_side: int | None = None
) -> InProcessRunner:
    """An InProcessRunner that gives each sequence a fresh StreamingTracker on one shared model.

    For ``--prompt auto`` it also discovers objects as the tracker node does (``~/discover``): the
    automatic mask generator and ``sam2_model.discovery`` with the node's default settings
    (``sam2_model.discovery``, where the node's discover_* parameters take theirs), again every ``discover_every`` frames when above 0;
    ``discover_points_per_side`` replaces the node's generator grid when given.
    """
    if spec.dtype not in DTYPES:
        raise EvaluationInputError(f"dtype must be one of {', '.join(DTYPES)}, got {spec.dtype!r}")
    problems = spec.tracking.problems()
    if problems:
        raise EvaluationInputError("invalid tracker options: " + "; ".join(problems))
    torch = _make_deterministic()
    try:
        import sam2_model
    except ImportError as exc:
        raise EvaluationInputError(f"cannot import the SAM 2 model package sam2_model: {exc}") from None
    if spec.device.startswith("cuda") and not torch.cuda.is_available():
        raise EvaluationInputError(f"device {spec.device!r} asked for, but CUDA is not available here")
    try:
        model = sam2_model.build_model(
            spec.config,
            checkpoint=None if spec.checkpoint is None else str(spec.checkpoint),
            device=spec.device,
            dtype=getattr(torch, spec.dtype),
        )
    except (OSError, ValueError, RuntimeError) as exc:
        # sam2_model's ConfigError / CheckpointError (ValueErrors) name unknown configs and
        # checkpoints that do not fit; RuntimeError covers devices torch cannot use.
        where = f" with checkpoint {spec.checkpoint}" if spec.checkpoint else ""
        raise EvaluationInputError(f"cannot build model {spec.config!r}{where} on {spec.device}: {exc}") from None

    def make_tracker():
        return sam2_model.StreamingTracker(model, spec.tracking)

    runner = InProcessRunner(
        make_tracker,
        description=f"in-process sam2_model.StreamingTracker on {spec.device} ({spec.dtype})",
        discoverer=make_discoverer(model, discover_points_per_side),
        discover_every=discover_every,
    )
    runner.model = model  # for variants sharing it (build_variant_runners)
    return runner


def make_discoverer(model: Any, points_per_side: int | None = None):
    """The node's discovery (generator + ``discover_objects``, the node's default settings) on model.

    Args:
        model: the SAM 2 model the generator shares with the tracker.
        points_per_side: the generator's clicks per side; None = the node's default.
    """
    import sam2_model
    from sam2_model.discovery import DISCOVERY_GENERATOR_OPTIONS, DiscoveryOptions, discover_objects

    # One source for the defaults: the node's discover_* parameters take theirs from the same names.
    generator_options = DISCOVERY_GENERATOR_OPTIONS
    if points_per_side is not None:
        generator_options = dataclasses.replace(generator_options, points_per_side=points_per_side)
    generator = sam2_model.AutomaticMaskGenerator(model, generator_options)
    options = DiscoveryOptions()

    def discover(image, tracked, limit):
        picked = discover_objects(tracked, generator.generate(image), options, limit=limit)
        return [mask.segmentation for mask in picked]

    return discover
