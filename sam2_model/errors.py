"""The tracker's error types, in a torch-free module: the ROS node catches them whether the model
runs in its own process or in ``sam2_server`` (whose client raises them without importing torch).

``prompts``, ``tracker``, ``transforms`` and ``discovery`` raise these and re-export them, so
``sam2_model.PromptError`` and ``sam2_model.tracker.TrackingError`` are the same classes.
"""

from __future__ import annotations


class PromptError(ValueError):
    """A prompt the model cannot take: wrong shapes, coordinates outside the frame, etc."""


class TrackingError(ValueError):
    """A call the tracker cannot honour (prompt before any frame, unknown object, ...)."""


class UnknownObjectError(TrackingError):
    """A prompt or removal for an object id the tracker does not hold."""


class FrameError(ValueError):
    """A frame that is not an HxWx3 uint8 RGB image."""


class DiscoveryError(ValueError):
    """A discovery setting or request that cannot be met (the message names it)."""
