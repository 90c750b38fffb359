"""``TrackerClient``: one camera's stream on a ``sam2_server``, called like the in-process tracking session.

Torch-free (numpy and pyzmq only), so a tracker node that uses a server never imports torch.
The node calls ``track``/``add_prompt``/... from its worker and ``heartbeat`` from a timer; the
two go over separate sockets, so a heartbeat is answered while a frame is being tracked.

Faults, as the node sees them:
    * no reply within ``timeout_s`` (server down, overloaded, network gone): ``ServerUnavailable``;
      the request is abandoned (its socket is closed, so a server that comes back never gets a
      backlog of stale frames) and the next call reconnects;
    * the server answered but refused: ``ServerError`` with ``kind`` (``protocol.ERROR_KINDS``);
    * the server lost the stream (restarted, or freed it after a silence longer than its
      ``--stream-timeout``): ``ServerError`` kind ``unknown_stream`` and ``stream_lost``; call
      ``connect()`` again (a new ``stream_epoch``) and re-seed the objects.
"""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any, Dict, Mapping, Optional, Sequence

import numpy as np
import zmq

from sam2_model.frame_state import FrameState
from sam2_model.session_types import DiscoveryOutcome, Outputs, PromptSpec

from . import protocol
from .protocol import Message, ProtocolError
from .security import CurveClientKeys

__all__ = ["TrackerClient", "ServerUnavailable", "ServerError", "CurveClientKeys", "Outputs", "PromptSpec",
           "DiscoveryOutcome"]

DEFAULT_TIMEOUT_S = 2.0
# The generator runs over the whole frame: seconds on a CPU.
DEFAULT_DISCOVER_TIMEOUT_S = 60.0


class ServerUnavailable(Exception):
    """No reply from the server within the timeout (down, busy or unreachable)."""


class ServerError(Exception):
    """The server refused a request; ``kind`` says why (``sam2_server.protocol.ERROR_KINDS``)."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


class _Channel:
    """One DEALER socket with request/reply matching by id; recreated after a timeout."""

    def __init__(self, context: zmq.Context, endpoint: str, curve: Optional[CurveClientKeys],
                 max_message_bytes: int):
        self._context, self._endpoint, self._curve = context, endpoint, curve
        self._max_message_bytes = max_message_bytes
        self._socket: Optional[zmq.Socket] = None
        self._ids = itertools.count(1)
        self.lock = threading.Lock()

    def _open(self) -> zmq.Socket:
        if self._socket is None:
            sock = self._context.socket(zmq.DEALER)
            sock.linger = 0
            sock.immediate = True  # queue nothing for a peer that is not connected
            if self._curve is not None:
                self._curve.apply(sock)
            sock.connect(self._endpoint)
            self._socket = sock
        return self._socket

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close(linger=0)
            self._socket = None

    def request(self, header: Dict[str, Any], arrays: Mapping[str, np.ndarray], timeout_s: float) -> Message:
        """Send and wait for the matching reply; ServerUnavailable after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        request_id = next(self._ids)
        parts = protocol.encode({**header, "id": request_id}, arrays)
        sock = self._open()
        if not sock.poll(self._remaining_ms(deadline), zmq.POLLOUT):
            self.close()
            raise ServerUnavailable(f"cannot reach the server at {self._endpoint} within {timeout_s:.1f} s")
        sock.send_multipart(parts, copy=False, flags=zmq.NOBLOCK)
        while True:
            if not sock.poll(self._remaining_ms(deadline), zmq.POLLIN):
                self.close()  # drop the request; a late reply would arrive on a socket nobody reads
                raise ServerUnavailable(f"no reply from the server at {self._endpoint} within {timeout_s:.1f} s "
                                        f"({header['op']})")
            reply = sock.recv_multipart(copy=False)
            try:
                message = protocol.decode(reply, self._max_message_bytes)
            except ProtocolError as error:
                raise ServerError(error.kind, f"unreadable reply from the server: {error}") from None
            if message.header.get("id") == request_id:
                return message
            # A reply to an earlier request on this socket (answered after we gave up): skip it.

    @staticmethod
    def _remaining_ms(deadline: float) -> int:
        return max(0, int((deadline - time.monotonic()) * 1000))


class TrackerClient:
    """One stream (one camera's objects and memories) on a ``sam2_server``.

    Args:
        endpoint: the server's address, e.g. ``ipc:///tmp/sam2.sock`` or ``tcp://base-station:5555``.
        stream: this camera's stream name (unique per server; ``connect`` replaces a stream of
            the same name).
        options: the stream's ``TrackerOptions`` fields as a dict (unset ones: the model's
            values); an optional ``"generator"`` entry holds ``MaskGeneratorOptions`` fields for
            discovery (default: ``sam2_model.discovery.DISCOVERY_GENERATOR_OPTIONS``).
        timeout_s: how long a request (and a heartbeat) waits for its reply.
        curve: CURVE keys, for a server that requires them (``CurveClientKeys.load``).
        discover_timeout_s: how long a discovery may take (the generator is slow on a CPU).
        max_message_bytes: largest reply accepted.
    """

    def __init__(self, endpoint: str, stream: str, options: Optional[Dict[str, Any]] = None, *,
                 timeout_s: float = DEFAULT_TIMEOUT_S, curve: Optional[CurveClientKeys] = None,
                 discover_timeout_s: float = DEFAULT_DISCOVER_TIMEOUT_S,
                 max_message_bytes: int = protocol.DEFAULT_MAX_MESSAGE_BYTES):
        if not isinstance(stream, str) or not stream:
            raise ValueError(f"stream must be a non-empty name, got {stream!r}")
        self.endpoint, self.stream, self.options = endpoint, stream, dict(options or {})
        self.timeout_s, self.discover_timeout_s = float(timeout_s), float(discover_timeout_s)
        context = zmq.Context.instance()
        self._calls = _Channel(context, endpoint, curve, max_message_bytes)
        self._pings = _Channel(context, endpoint, curve, max_message_bytes)
        self._stream_epoch = 0          # 0: no stream yet
        self._server_alive = False
        self._stream_lost = False
        self.server_info: Dict[str, Any] = {}
        # Milliseconds the last answered request spent in the server (queued + computed); the round
        # trip minus this is the cost of the transport and the wire format.
        self.last_server_ms: Optional[float] = None

    # ------------------------------------------------------------------ state
    @property
    def server_alive(self) -> bool:
        """The last request or heartbeat got a reply."""
        return self._server_alive

    @property
    def stream_epoch(self) -> int:
        """Changes whenever ``connect`` creates the stream afresh (0 before): objects must be re-seeded."""
        return self._stream_epoch

    @property
    def stream_lost(self) -> bool:
        """The server no longer has this stream (restarted, or freed it after a silence): ``connect`` again."""
        return self._stream_lost

    # ------------------------------------------------------------------ calls
    def connect(self) -> None:
        """Create this stream on the server (replacing one of the same name); ServerUnavailable if not up,
        ServerError (``bad_request`` for bad options, ``full`` at the server's --max-streams)."""
        reply = self._call("open", {"options": self.options})
        self.server_info = {k: reply.header.get(k) for k in ("model", "device", "dtype", "server_epoch")}
        self._stream_epoch = int(reply.header["stream_epoch"])
        self._stream_lost = False

    def track(self, frame: np.ndarray, outputs: Outputs = Outputs()) -> FrameState:
        """Track the next frame (``H x W x 3`` uint8 RGB)."""
        frame = np.asarray(frame)
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ServerError("frame", f"frame must be an H x W x 3 uint8 RGB array, got {frame.dtype} "
                                       f"{list(frame.shape)}")
        reply = self._call("track", {"outputs": protocol.outputs_to_wire(outputs)}, {"frame": frame})
        return self._frame_state(reply)

    def current(self, outputs: Outputs = Outputs()) -> FrameState:
        """Every object on the most recent frame, now (e.g. after a removal)."""
        return self._frame_state(self._call("current", {"outputs": protocol.outputs_to_wire(outputs)}))

    def add_prompt(self, object_id: int, prompt: PromptSpec, outputs: Outputs = Outputs()) -> FrameState:
        fields, arrays = protocol.prompt_to_wire(prompt)
        reply = self._call("prompt", {"object_id": int(object_id), "outputs": protocol.outputs_to_wire(outputs),
                                      **fields}, arrays)
        return self._frame_state(reply)

    def remove_object(self, object_id: int) -> None:
        self._call("remove", {"object_id": int(object_id)})

    def reset(self) -> None:
        self._call("reset", {})

    def discover(self, options: Optional[Dict[str, Any]], region: Optional[Sequence[int]], max_new: int,
                 first_id: int, outputs: Optional[Outputs] = None) -> DiscoveryOutcome:
        """Discovery on the most recent frame (``TrackingSession.discover``); ``options`` are
        ``DiscoveryOptions`` fields (None: the defaults)."""
        fields = {"options": dict(options or {}), "region": None if region is None else [int(v) for v in region],
                  "max_new": int(max_new), "first_id": int(first_id),
                  "outputs": None if outputs is None else protocol.outputs_to_wire(outputs)}
        reply = self._call("discover", fields, timeout_s=self.discover_timeout_s)
        try:
            return protocol.discovery_from_wire(reply)
        except (ProtocolError, KeyError, TypeError, ValueError) as error:
            raise ServerError("bad_request", f"malformed discovery reply: {error!r}") from None

    def stats(self) -> Dict[str, Any]:
        """The server's counters (requests, errors by kind, streams, memory)."""
        return dict(self._call("stats", {}, stream=False).header["stats"])

    def heartbeat(self) -> bool:
        """A cheap ping on its own socket (callable while ``track`` runs on another thread); True when the
        server answered. Sets ``stream_lost`` when the server answered without this stream."""
        with self._pings.lock:
            try:
                reply = self._pings.request({"op": "ping", "stream": self.stream}, {}, self.timeout_s)
            except (ServerUnavailable, ServerError):
                self._server_alive = False
                return False
        self._server_alive = True
        known = reply.header.get("stream_epoch")
        if self._stream_epoch and known != self._stream_epoch:
            self._stream_lost = True
        return True

    def close(self) -> None:
        """Free the stream on the server (best effort) and close the sockets."""
        if self._stream_epoch and not self._stream_lost:
            try:
                self._call("close", {}, timeout_s=min(self.timeout_s, 0.5))
            except (ServerUnavailable, ServerError):
                pass
        self._stream_epoch = 0
        with self._calls.lock:
            self._calls.close()
        with self._pings.lock:
            self._pings.close()

    def __enter__(self) -> "TrackerClient":
        self.connect()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ plumbing
    def _call(self, op: str, fields: Dict[str, Any], arrays: Optional[Mapping[str, np.ndarray]] = None,
              timeout_s: Optional[float] = None, stream: bool = True) -> Message:
        header = {"op": op, **fields}
        if stream:
            header["stream"] = self.stream
        with self._calls.lock:
            try:
                reply = self._calls.request(header, arrays or {}, self.timeout_s if timeout_s is None else timeout_s)
            except ServerUnavailable:
                self._server_alive = False
                raise
        self._server_alive = True
        self.last_server_ms = reply.header.get("server_ms")
        if not reply.header.get("ok", False):
            kind = str(reply.header.get("kind", "bad_request"))
            if kind == "unknown_stream":
                self._stream_lost = True
            raise ServerError(kind, str(reply.header.get("message", "request refused")))
        return reply

    @staticmethod
    def _frame_state(reply: Message) -> FrameState:
        try:
            return protocol.frame_state_from_wire(reply)
        except ProtocolError as error:
            raise ServerError(error.kind, str(error)) from None

