"""Tracking a generated video the way the default-model tests need it (see sam2_model.prompted_tracking)."""

from sam2_model.prompted_tracking import track_prompted_by_first_masks  # noqa: F401
