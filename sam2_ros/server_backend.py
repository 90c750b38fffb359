"""The tracker node's model in a ``sam2-server``: a ``TrackerClient`` stream plus what the node
needs to survive the server going away (no torch: numpy, pyzmq and the messages only).

The node sends each frame and prompt to its stream on the server and gets ``FrameState``s back,
computed there by the same ``TrackingSession`` an in-process node uses. Faults:

- server not up at start: ``supervise`` (the node's heartbeat timer) tries to connect on every
  beat; until it answers, frames are dropped and the diagnostics say ERROR "waiting for ...".
- server gone mid-stream: a request that times out, or a heartbeat without answer, marks the
  link lost (within ``server_timeout`` + ``server_heartbeat_period``); frames are dropped.
- server answers again and still has the stream (it was slow, stopped, or briefly unreachable):
  tracking goes on with the stream's memory intact.
- server back without the stream (restarted, or it freed the stream after a long silence): the
  stream is opened again, given the last frame tracked, and every object is prompted with its
  last mask (kept here from each answer's crops), under its own id.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
from sensor_msgs.msg import CompressedImage

from sam2_model.discovery import DiscoveryOptions, Region
from sam2_model.errors import DiscoveryError, FrameError, PromptError, TrackingError, UnknownObjectError
from sam2_model.frame_state import Box, FrameState, paste_mask
from sam2_model.session_types import DiscoveryOutcome, Outputs, PromptSpec
from sam2_server.client import CurveClientKeys, ServerError, ServerUnavailable, TrackerClient
from sam2_server.security import SecurityError

from .image_conversion import compressed_to_rgb, image_to_rgb
from .node_parameters import ParameterError, TrackerParameters, resolve_autocast
from .tracker_backend import BackendUnavailable, LinkStatus

# Discovery runs the automatic mask generator on the server (seconds on a CPU): its reply may
# take this many times the node's server_timeout before the server counts as away.
DISCOVERY_TIMEOUT_FACTOR = 30.0

# ServerError kinds -> the errors an in-process backend raises, so the node answers alike.
_MODEL_ERRORS = {"prompt": PromptError, "unknown_object": UnknownObjectError, "tracking": TrackingError,
                 "frame": FrameError, "discovery": DiscoveryError}
# Kinds that mean "our stream is not there": the server restarted or dropped it; open it again.
_STREAM_GONE = ("unknown_stream",)


@dataclass
class _LastMask:
    """An object's mask on the last frame it was answered for (bbox crop, as in ObjectState)."""

    crop: np.ndarray
    bbox: Box


def stream_options(params: TrackerParameters) -> dict:
    """What the server builds this node's stream with (``TrackerClient``'s ``options``): the
    tracking options that are set (unset ones: the model's values), the node's ``autocast`` when
    not ``auto`` (absent: the server resolves it for its device, as an in-process node does for
    its own), and the discovery generator's settings under ``"generator"``."""
    options = {k: v for k, v in dataclasses.asdict(params.tracking).items() if v is not None and k != "autocast"}
    if params.autocast != "auto":
        options["autocast"] = None if params.autocast == "none" else params.autocast
    generator = {k: v for k, v in dataclasses.asdict(params.generator()).items() if k != "point_grids"}
    options["generator"] = generator
    return options


class ServerBackend:
    """One camera's stream on a ``sam2-server``.

    Args:
        client: the stream's client (not connected yet).
        endpoint: the server's address, for messages.
        stream: the stream's name on the server, for messages.
        log: ``log(level, message)``, the node's logger.
    """

    def __init__(self, client: TrackerClient, endpoint: str, stream: str, log: Callable[[str, str], None]):
        self._client = client
        self.endpoint = endpoint
        self.stream = stream
        self.device = f"server {endpoint}"
        self._log = log
        self._lock = threading.Lock()           # one request at a time on the client's socket
        self._ids: List[int] = []               # the node's objects, kept while the server is away
        self._masks: Dict[int, _LastMask] = {}  # each object's last mask: re-seeds it after a restart
        self._frame: Optional[np.ndarray] = None  # the last frame tracked: re-seeding happens on it
        # A re-created stream counts frames from 0 again; published indices go on from the node's.
        self._index_offset = 0
        self._last_index = -1
        self._connected = False
        self._ever_connected = False
        self._problem_since = time.monotonic()
        self._reason = "not up yet"
        self._announced_waiting = False
        self._reconnects = 0

    @classmethod
    def from_parameters(cls, params: TrackerParameters, stream: str,
                        log: Callable[[str, str], None]) -> "ServerBackend":
        curve = None
        if params.server_public_key:
            try:
                curve = CurveClientKeys.load(params.server_public_key, params.server_client_key)
            except (SecurityError, OSError, ValueError) as error:
                raise ParameterError(f"server_public_key / server_client_key: {error}") from None
        client = TrackerClient(params.server, stream, stream_options(params), timeout_s=params.server_timeout,
                               discover_timeout_s=params.server_timeout * DISCOVERY_TIMEOUT_FACTOR, curve=curve)
        backend = cls(client, params.server, stream, log)
        with backend._lock:
            event = backend._connect_locked()
        if event is not None:
            log(*event)
        return backend

    # ------------------------------------------------------------------ the backend interface
    @property
    def obj_ids(self) -> List[int]:
        return list(self._ids)

    def to_frame(self, msg) -> np.ndarray:
        return compressed_to_rgb(msg) if isinstance(msg, CompressedImage) else image_to_rgb(msg)

    def track(self, frame: np.ndarray, outputs: Outputs) -> FrameState:
        state = self._request(self._client.track, frame, _with_crops(outputs))
        self._frame = frame
        return self._remember(state, outputs)

    def add_prompt(self, object_id: int, prompt: PromptSpec, outputs: Outputs) -> FrameState:
        return self._remember(self._request(self._client.add_prompt, object_id, prompt, _with_crops(outputs)),
                              outputs)

    def remove_object(self, object_id: int) -> None:
        self._request(self._client.remove_object, object_id)
        self._ids = [i for i in self._ids if i != object_id]
        self._masks.pop(object_id, None)

    def reset(self) -> None:
        self._request(self._client.reset)
        self._ids, self._masks, self._frame = [], {}, None
        self._index_offset, self._last_index = 0, -1  # as an in-process tracker: frames count from 0 again

    def discover(self, options: DiscoveryOptions, region: Optional[Region], max_new: int, first_id: int,
                 outputs: Optional[Outputs]) -> DiscoveryOutcome:
        # Always with the frame's crops: the new objects' masks are what re-seeds them.
        found = self._request(self._client.discover, dataclasses.asdict(options), region, max_new, first_id,
                              _with_crops(outputs or Outputs(crops=False)))
        if found.frame is not None:
            frame = self._remember(found.frame, outputs)
            found = dataclasses.replace(found, frame=frame if outputs is not None else None)
        return found

    def memory_bytes(self) -> int:
        return 0  # the memory is the server's (its statistics report it); not asked on every diagnostics tick

    def cuda_allocated_bytes(self) -> Optional[int]:
        return None  # the GPU is the server's

    def describe(self) -> str:
        state = "connected" if self._connected else f"waiting for it ({self._reason})"
        return f"model in sam2-server at {self.endpoint}, stream {self.stream!r} ({state}); none in this process"

    def link(self) -> LinkStatus:
        problem = None
        if not self._connected:
            what = "lost" if self._ever_connected else "waiting for"
            problem = (f"{what} sam2-server at {self.endpoint} for {time.monotonic() - self._problem_since:.0f} s "
                       f"({self._reason}): frames are dropped until it answers")
        return LinkStatus(self._connected, problem, self._problem_since, self._reconnects)

    def supervise(self) -> Optional[Tuple[str, str]]:
        """One heartbeat (the node's timer): check the server, or connect and re-seed when it is away."""
        if self._connected:
            # The heartbeat has its own socket: it is answered (or not) while a frame is in flight.
            alive = self._client.heartbeat()
            if alive and not self._client.stream_lost:
                return None
            return self._lost(f"no heartbeat reply within {self._client.timeout_s:.1f} s" if not alive
                              else "the server restarted: it no longer has this stream")
        if self._ever_connected:
            if not self._client.heartbeat():
                return None  # still away (reported when it went)
            if not self._client.stream_lost:
                # Slow or briefly unreachable, but the stream is still there: go on with its memory intact.
                self._connected = True
                return "warning", (f"sam2-server at {self.endpoint} answers again after "
                                   f"{time.monotonic() - self._problem_since:.1f} s; its stream was kept")
        if not self._lock.acquire(blocking=False):
            return None  # a request is still timing out; the next beat connects
        try:
            return self._connect_locked()
        finally:
            self._lock.release()

    def close(self) -> None:
        with self._lock:
            try:
                self._client.close()  # frees the stream on the server (a short wait when it is away)
            except (ServerUnavailable, ServerError):
                pass

    # ------------------------------------------------------------------ requests and faults
    def _request(self, call, *args, **kwargs):
        if not self._connected:
            raise BackendUnavailable(self.link().problem)
        with self._lock:
            try:
                return call(*args, **kwargs)
            except ServerUnavailable as error:
                event = self._lost(str(error))
            except ServerError as error:
                if error.kind not in _STREAM_GONE:
                    raise _MODEL_ERRORS.get(error.kind, TrackingError)(str(error)) from None
                event = self._lost(f"the server no longer has this stream ({error})")
        if event is not None:
            self._log(*event)
        raise BackendUnavailable(self.link().problem)

    def _lost(self, reason: str) -> Optional[Tuple[str, str]]:
        """Mark the link lost (by the heartbeat or a request, whichever sees it first: reported once)."""
        if not self._connected:
            return None
        self._connected = False
        self._reason = reason
        self._problem_since = time.monotonic()
        return "error", (f"lost sam2-server at {self.endpoint} ({reason}): frames are dropped until it is back; "
                         f"objects {self._ids} are kept (re-seeded from their last masks if the server lost them)")

    def _connect_locked(self) -> Optional[Tuple[str, str]]:
        """Open the stream (again); after a loss, re-seed every object. (level, message) on a change."""
        try:
            self._client.connect()
            self._resolve_autocast_locked()
            reseeded = self._reseed_locked() if self._ever_connected else []
        except ServerUnavailable as error:
            if self._ever_connected or self._announced_waiting:
                return None  # already reported; the diagnostics say for how long
            self._announced_waiting, self._reason = True, "not answering"
            return "error", (f"waiting for sam2-server at {self.endpoint}: {error}. Start it "
                             f"(sam2-server --bind {self.endpoint} ...); frames are dropped until it answers")
        except ServerError as error:  # refused: full (--max-streams), bad options, version mismatch...
            reason = f"it refused the stream: {error}"
            changed, self._reason = reason != self._reason, reason
            self._announced_waiting = True
            return ("error", f"sam2-server at {self.endpoint}: {reason}; trying again every heartbeat") if changed \
                else None
        back = self._ever_connected
        self._connected = self._ever_connected = True
        if not back:
            info = self._client.server_info
            return "info", (f"connected to sam2-server at {self.endpoint} (model {info.get('model')} on "
                            f"{info.get('device')}, {info.get('dtype')}), stream {self.stream!r}")
        self._reconnects += 1
        return "warning", (f"sam2-server at {self.endpoint} is back: stream re-created, objects {reseeded} "
                           "re-seeded from their last masks")

    def _resolve_autocast_locked(self) -> None:
        """``autocast: auto`` means what it means in an in-process node, on the server's device
        (bfloat16 on cuda, none on cpu): learnt at the first connect, the stream (still empty) is
        opened again with it, and later re-connections send it from the start."""
        options = self._client.options
        if "autocast" in options:
            return  # set by the node's parameter, or resolved before
        resolved = resolve_autocast("auto", str(self._client.server_info.get("device") or "cpu"))
        options["autocast"] = resolved
        if resolved is not None:
            self._client.connect()

    def _reseed_locked(self) -> List[int]:
        """The new stream gets the last frame and every object's last mask, under its id."""
        if self._frame is None or not self._ids:
            # Nothing to re-seed: the new stream's first frame (its 0) comes after the node's last.
            self._index_offset = self._last_index + 1
            self._ids, self._masks = [], {}
            return []
        state = self._client.track(self._frame, Outputs(crops=True))
        # That frame was published as _last_index already: the next one goes on from there.
        self._index_offset = self._last_index - state.frame_index
        height, width = self._frame.shape[:2]
        for object_id in list(self._ids):
            last = self._masks.get(object_id)
            mask = (paste_mask(last.crop, last.bbox, (height, width)) if last is not None
                    else np.zeros((height, width), bool))
            try:
                state = self._client.add_prompt(object_id, PromptSpec(mask=mask), Outputs(crops=True))
            except ServerError as error:
                if error.kind in _STREAM_GONE:
                    raise
                self._log("warning", f"object {object_id} could not be re-seeded: {error}")
        self._remember(state, None, shift=False)
        return list(self._ids)

    def _remember(self, state: FrameState, outputs: Optional[Outputs], shift: bool = True) -> FrameState:
        """Keep each object's mask and the id list from an answer; strip crops the caller did not ask
        for; number the frame on from the node's earlier frames."""
        if shift:
            state = dataclasses.replace(state, frame_index=state.frame_index + self._index_offset)
            self._last_index = state.frame_index
        self._ids = [o.object_id for o in state.objects]
        self._masks = {o.object_id: _LastMask(o.mask, o.bbox) for o in state.objects if o.mask is not None}
        if outputs is not None and not outputs.crops:
            state = dataclasses.replace(state, objects=[dataclasses.replace(o, mask=None) for o in state.objects])
        return state


def _with_crops(outputs: Outputs) -> Outputs:
    return dataclasses.replace(outputs, crops=True)
