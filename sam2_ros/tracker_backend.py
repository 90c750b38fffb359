"""The tracker node's model behind one interface: in the node's own process (``InProcessBackend``,
PyTorch) or in a ``sam2-server`` (``ServerBackend``, no PyTorch in the node).

``tracker_node`` calls only this interface; object ids, the latest frame's header, parameters,
diagnostics and messages stay in the node. Both backends answer with ``sam2_model.frame_state``
types computed by ``sam2_model.tracking_session.TrackingSession`` (in this process or in the
server's), so a node gives the same outputs whichever it uses. This module imports no torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, List, Optional, Protocol, Tuple

from sam2_model.discovery import DiscoveryOptions, Region
from sam2_model.frame_state import FrameState
from sam2_model.session_types import DiscoveryOutcome, Outputs, PromptSpec

__all__ = ["BackendUnavailable", "LinkStatus", "TrackerBackend", "open_backend", "Outputs", "PromptSpec",
           "DiscoveryOutcome"]


class BackendUnavailable(RuntimeError):
    """The model cannot be reached now (its server is down or not up yet): the frame is dropped,
    the request refused; the node keeps running and reconnects when the server is back."""


@dataclass
class LinkStatus:
    """How the node's connection to its model stands (diagnostics and logs).

    ``problem`` is None while the model answers; else a sentence for the ERROR diagnostics
    (e.g. "waiting for sam2-server at ipc:///tmp/sam2.sock: no answer for 12 s")."""

    connected: bool
    problem: Optional[str] = None
    since: float = 0.0          # time.monotonic() of the last change
    reconnects: int = 0         # times the stream was re-created after the server came back


class TrackerBackend(Protocol):
    """Where the node's tracking runs. Not thread-safe: the node serialises calls (tracker lock);
    ``supervise`` and ``link`` may run beside them (the heartbeat timer)."""

    device: str  # where the model runs, for logs and diagnostics ("cpu", "cuda", "server ipc://...")

    @property
    def obj_ids(self) -> List[int]: ...

    def to_frame(self, msg) -> Any:
        """A sensor_msgs Image/CompressedImage as the frame ``track`` takes (raises ImageConversionError)."""

    def track(self, frame, outputs: Outputs) -> FrameState: ...

    def add_prompt(self, object_id: int, prompt: PromptSpec, outputs: Outputs) -> FrameState: ...

    def remove_object(self, object_id: int) -> None: ...

    def reset(self) -> None: ...

    def discover(self, options: DiscoveryOptions, region: Optional[Region], max_new: int, first_id: int,
                 outputs: Optional[Outputs]) -> DiscoveryOutcome: ...

    def memory_bytes(self) -> int: ...

    def cuda_allocated_bytes(self) -> Optional[int]: ...

    def describe(self) -> str: ...

    def supervise(self) -> Optional[Tuple[str, str]]:
        """Check the connection (heartbeat, reconnect, re-seed); (level, message) to log when its
        state changed, else None. The in-process backend has nothing to check."""

    def link(self) -> LinkStatus: ...

    def close(self) -> None: ...


def open_backend(params, stream: str, log: Callable[[str, str], None]) -> TrackerBackend:
    """The backend the parameters ask for: ``server`` empty -> the model in this process (loads
    it: torch), else a client of that server (no torch imported). ``log(level, message)``."""
    if params.server:
        from .server_backend import ServerBackend

        return ServerBackend.from_parameters(params, stream, log)
    from .inprocess_backend import InProcessBackend

    return InProcessBackend.from_parameters(params, log)
