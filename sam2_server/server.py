"""``InferenceServer``: one SAM 2 model serving many tracker streams over ZeroMQ (no ROS).

Two threads:
    I/O thread    owns the ROUTER socket: decodes requests, answers ``open``/``close``/``ping``/
                  ``stats`` itself (so heartbeats are answered while the model works), queues the
                  rest on their stream (``streams.StreamTable``), frees silent streams, and
                  forwards the model thread's replies to the clients.
    model thread  takes rounds of queued work and runs them (``engine.Engine``): frames of
                  different streams waiting at the same time go through the image encoder together.

A bad message (garbage, truncated, oversized, another protocol version, an unknown stream or
operation) is answered with an error when it can be, else dropped, and always counted; nothing
a client sends stops the server.
"""

from __future__ import annotations

import ctypes
import itertools
import logging
import os
import random
import socket
import threading
import time
from collections import Counter
from typing import Any, Dict, Optional

import zmq
from zmq.utils.monitor import recv_monitor_message

from . import protocol
from .config import ServerConfig
from .protocol import ProtocolError
from .security import ServerKeys, check_bind
from .streams import QueueFull, Request, Stream, StreamTable

LOG = logging.getLogger("sam2_server")

POLL_MS = 100
SOCKET_HWM = 32
MAX_STREAM_NAME = 200
WARN_EVERY_S = 10.0
TRIM_EVERY_ROUNDS = 16
# Idle this long after some work (every camera stopped or gone), the heap's free pages go back too.
TRIM_WHEN_IDLE_S = 1.0
HANDSHAKE_NAMES = {zmq.EVENT_HANDSHAKE_FAILED_AUTH: "authentication refused",
                   zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL: "protocol error",
                   zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL: "failed"}
HANDSHAKE_FAILURES = (zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
                      | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)
EXPIRE_EVERY_S = 0.25
# Requests read per wake-up before replies are forwarded again (keeps replies flowing under a flood).
MAX_READS_PER_WAKE = 256


def process_rss_bytes() -> int:
    """Resident memory of this process (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _glibc_trim():
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc: nothing to do
        return None


_MALLOC_TRIM = _glibc_trim()


def _return_free_memory() -> None:
    """Give the heap's free pages back to the system. A round allocates with the number of streams
    in it (several frames' activations) and glibc keeps what is freed in its per-thread heaps: about
    35 MiB of the server's resident memory with three streams (docs/benchmarks.md). Every
    ``TRIM_EVERY_ROUNDS`` rounds (under ``threaded`` a round usually starts one frame), so that its
    cost (a few ms) stays out of most frames, and once the server has been idle
    ``TRIM_WHEN_IDLE_S`` (what it holds then no longer depends on where in that count the last
    round fell)."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


class BindError(RuntimeError):
    """The server cannot take its address (in use by another server or program)."""


def _refuse_if_served(endpoint: str, keys) -> None:
    """Binding an ipc path silently takes it from a server already there: look first."""
    path = endpoint[len("ipc://"):]
    if not endpoint.startswith("ipc://") or not os.path.exists(path):
        return
    if keys is None:
        from .client import TrackerClient

        probe = TrackerClient(endpoint, "probe", timeout_s=0.5)
        try:
            if probe.heartbeat():
                raise BindError(f"another sam2-server answers at {endpoint}: stop it, or choose another --bind")
        finally:
            probe.close()
    # A server with CURVE keys answers no heartbeat of ours (our keys may not be among its clients'),
    # nor does a server without keys answer a CURVE server's: whether anything listens on the path
    # at all is what tells a live socket from one a dead process left behind.
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as raw:
        raw.settimeout(0.5)
        try:
            raw.connect(path)
        except OSError:  # refused: a stale path (bind replaces it); or one bind itself will report
            return
    raise BindError(f"another program listens at {endpoint} (a sam2-server with other CURVE keys, or none?): "
                    "stop it, or choose another --bind")


class ServerStats:
    """Counters the ``stats`` request reports; thread-safe."""

    def __init__(self):
        self._lock = threading.Lock()
        self.counts: Counter = Counter()
        self.errors: Counter = Counter()

    def add(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self.counts[name] += amount

    def error(self, kind: str) -> None:
        with self._lock:
            self.errors[kind] += 1

    def snapshot(self) -> Dict[str, Any]:
        with self._lock:
            return {"counts": dict(self.counts), "errors": dict(self.errors)}


class InferenceServer:
    """Args:
        config: the settings (``ServerConfig``); the bind is checked against the security rules.
        host: the loaded model (``engine.ModelHost``); None: load it from ``config`` (imports torch).
    """

    def __init__(self, config: ServerConfig, host=None):
        self.config = config.check()
        check_bind(config.bind, curve=config.curve_keys is not None)
        self.keys = ServerKeys.load(config.curve_keys) if config.curve_keys else None
        _refuse_if_served(config.bind, self.keys)
        if host is None:
            from .engine import ModelHost
            host = ModelHost.load(config)
        self.host = host
        self.epoch = random.SystemRandom().randrange(1, 1 << 31)  # this server process
        self._stream_counter = itertools.count(1)
        self.streams = StreamTable(config.max_streams, config.stream_timeout_s, config.max_batch,
                                   config.batch_wait_ms / 1000.0)
        self.stats = ServerStats()
        self._stop = threading.Event()
        self._reply_endpoint = f"inproc://sam2-replies-{id(self)}"
        self.ready = threading.Event()  # set once bound
        self.failed = False             # the model thread died (serve returns; the CLI exits non-zero)
        self._last_handshake_warning = -WARN_EVERY_S
        self.execution: Optional[str] = None  # batched or threaded, once the model thread runs

    # ------------------------------------------------------------------ lifecycle
    def stop(self) -> None:
        self._stop.set()

    def serve(self) -> None:
        """Bind and serve until ``stop()``."""
        context = zmq.Context()
        authenticator = None
        router = context.socket(zmq.ROUTER)
        replies = context.socket(zmq.PULL)
        worker = monitor = None
        try:
            router.linger = 0
            # ZeroMQ drops any single part above this (and the connection that sent it) before we see it.
            router.maxmsgsize = self.config.max_message_bytes
            # Messages buffered per client, each way: a client that floods or stops reading costs a bounded
            # amount of memory (ZeroMQ drops past the mark; a node has one request in flight).
            router.rcvhwm = router.sndhwm = SOCKET_HWM
            if self.keys is not None:
                from zmq.auth.thread import ThreadAuthenticator
                authenticator = ThreadAuthenticator(context, log=LOG)
                authenticator.start()
                authenticator.configure_curve(domain="*", location=self.keys.authorized_dir)
                self.keys.apply(router)
            replies.bind(self._reply_endpoint)
            try:
                router.bind(self.config.bind)
            except zmq.ZMQError as error:
                raise BindError(f"cannot bind {self.config.bind}: {error}") from None
            # Connections that never become a client (no authorized CURVE key, not ZeroMQ at all) show
            # only as failed handshakes: counted from the socket's monitor.
            monitor = router.get_monitor_socket(HANDSHAKE_FAILURES)
            worker = threading.Thread(target=self._model_loop, args=(context,), name="sam2_server_model",
                                      daemon=True)
            worker.start()
            LOG.info("serving %s on %s (%s) at %s, up to %d streams", self.config.model, self.config.device,
                     self.config.dtype, self.config.bind, self.config.max_streams)
            self.ready.set()
            self._io_loop(router, replies, monitor)
        finally:
            self._stop.set()
            self.streams.close()
            if worker is not None:
                worker.join(timeout=30)
            if monitor is not None:
                router.disable_monitor()
                monitor.close(linger=0)
            router.close(linger=0)
            replies.close(linger=0)
            if authenticator is not None:
                authenticator.stop()
            context.term()

    # ------------------------------------------------------------------ I/O thread
    def _io_loop(self, router: zmq.Socket, replies: zmq.Socket, monitor: zmq.Socket) -> None:
        poller = zmq.Poller()
        poller.register(router, zmq.POLLIN)
        poller.register(replies, zmq.POLLIN)
        poller.register(monitor, zmq.POLLIN)
        next_expiry = time.monotonic() + EXPIRE_EVERY_S
        while not self._stop.is_set():
            events = dict(poller.poll(POLL_MS))
            if replies in events:
                self._forward_replies(router, replies)
            if monitor in events:
                self._count_handshake_failures(monitor)
            if router in events:
                for _ in range(MAX_READS_PER_WAKE):
                    try:
                        parts = router.recv_multipart(zmq.NOBLOCK, copy=False)
                    except zmq.Again:
                        break
                    try:
                        self._on_message(router, parts)
                    except Exception:  # noqa: BLE001 - a bug answering one message must not stop the server
                        LOG.exception("unexpected error handling a message; dropped")
                        self.stats.error("internal")
            if time.monotonic() >= next_expiry:
                for stream in self.streams.expire():
                    self.stats.add("streams_expired")
                    LOG.info("stream %s freed: nothing heard for %.1f s", stream.name, self.config.stream_timeout_s)
                next_expiry = time.monotonic() + EXPIRE_EVERY_S

    def _count_handshake_failures(self, monitor: zmq.Socket) -> None:
        while True:
            try:
                event = recv_monitor_message(monitor, zmq.NOBLOCK)
            except zmq.Again:
                return
            self.stats.add("handshakes_failed")
            now = time.monotonic()
            if now - self._last_handshake_warning > WARN_EVERY_S:  # a refused client retries every 0.1 s
                self._last_handshake_warning = now
                LOG.warning("a connection failed its handshake (%s): an unauthorized CURVE key, or not a "
                            "sam2_server client (counted in stats; warned at most every %.0f s)",
                            HANDSHAKE_NAMES.get(event["event"], event["event"]), WARN_EVERY_S)

    @staticmethod
    def _forward_replies(router: zmq.Socket, replies: zmq.Socket) -> None:
        while True:
            try:
                parts = replies.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            router.send_multipart(parts, copy=False)  # a client that left is silently skipped by ROUTER

    def _send(self, router: zmq.Socket, identity: bytes, header: Dict[str, Any], arrays=None) -> None:
        if not header.get("ok", True):
            self.stats.error(header["kind"])
        self.stats.add("replies")
        router.send_multipart([identity, *protocol.encode({**header, "server_epoch": self.epoch}, arrays)],
                              copy=False)

    def _on_message(self, router: zmq.Socket, parts) -> None:
        self.stats.add("requests")
        identity = parts[0].bytes
        request_id = None
        try:
            message = protocol.decode(parts[1:], self.config.max_message_bytes)
            request_id = message.header.get("id")
            if not isinstance(request_id, int) or isinstance(request_id, bool):
                raise ProtocolError("bad_request", "request field 'id' must be an integer")
            op = message.header.get("op")
            if op not in protocol.OPS:
                raise ProtocolError("bad_request", f"unknown operation {op!r}; known: {', '.join(protocol.OPS)}")
            request = Request(identity, message, time.monotonic())
            if op == "stats":
                self._send(router, identity, {"id": request_id, "ok": True, "stats": self._stats()})
                return
            name = message.value("stream", str)
            if not 0 < len(name) <= MAX_STREAM_NAME:
                raise ProtocolError("bad_request", f"stream names have 1 to {MAX_STREAM_NAME} characters, "
                                                   f"got {len(name)}")
            if op == "ping":
                stream = self.streams.touch(name)
                self._send(router, identity, {"id": request_id, "ok": True,
                                              "stream_epoch": None if stream is None else stream.epoch})
            elif op == "open":
                self._open(router, request, name)
            elif op == "close":
                closed = self.streams.remove(name)
                if closed is not None:
                    self.stats.add("streams_closed")
                    LOG.info("stream %s closed by its client", name)
                self._send(router, identity, {"id": request_id, "ok": True, "closed": closed is not None})
            else:
                stream = self.streams.touch(name)
                if stream is None:
                    raise ProtocolError("unknown_stream", f"no stream {name!r} on this server (it restarted, or "
                                                          "freed the stream after a silence): open it again")
                try:
                    replaced = self.streams.submit(stream, request)
                except QueueFull as error:
                    raise ProtocolError("full", str(error)) from None
                if replaced is not None:
                    self.stats.add("frames_superseded")
                    self._send(router, replaced.identity, {
                        "id": replaced.request_id, "ok": False, "kind": "superseded",
                        "message": "a newer frame of this stream arrived before this one was tracked"})
        except ProtocolError as error:
            LOG.debug("request refused (%s): %s", error.kind, error)
            self._send(router, identity, protocol.error_header(request_id, error.kind, str(error)))
        except Exception as error:  # noqa: BLE001 - a request nobody foresaw still gets an answer
            # Unanswered, the client would only see its timeout (and take the server for dead).
            LOG.exception("unexpected error handling a request; answered as internal")
            self._send(router, identity, protocol.error_header(request_id, "internal",
                                                               f"{type(error).__name__}: {error}"))

    def _open(self, router: zmq.Socket, request: Request, name: str) -> None:
        options = request.message.value("options", dict, required=False, default={})
        if self.streams.get(name) is None and len(self.streams) >= self.config.max_streams:
            raise ProtocolError("full", f"the server already holds its maximum of {self.config.max_streams} "
                                        "streams (--max-streams)")
        try:
            session = self.host.new_session(options)
        except ProtocolError:
            raise
        except (TypeError, ValueError) as error:
            raise ProtocolError("bad_request", f"stream options refused: {error}") from None
        except MemoryError:
            # Building a session allocates with its options (the generator's click grids).
            raise ProtocolError("bad_request", "stream options refused: they need more memory than the "
                                               "server has") from None
        epoch = (self.epoch << 20) + next(self._stream_counter)  # unique across server restarts too
        stream = Stream(name, epoch, session, options, time.monotonic())
        old = self.streams.put(stream)
        self.stats.add("streams_opened")
        if old is not None:
            for waiting in old.queue:
                self._send(router, waiting.identity, protocol.error_header(
                    waiting.request_id, "unknown_stream", f"stream {name!r} was opened again"))
        LOG.info("stream %s opened%s", name, " (replacing the old one)" if old is not None else "")
        model = self.host.model
        self._send(router, request.identity, {
            "id": request.request_id, "ok": True, "stream_epoch": epoch, "model": self.config.model,
            "device": str(model.device), "dtype": self.config.dtype, "image_size": int(model.image_size)})

    def _stats(self) -> Dict[str, Any]:
        snapshot = self.stats.snapshot()
        snapshot.update(streams=self.streams.names(), max_streams=self.config.max_streams, execution=self.execution,
                        rss_bytes=process_rss_bytes(), server_epoch=self.epoch)
        return snapshot

    # ------------------------------------------------------------------ model thread
    def _model_loop(self, context: zmq.Context) -> None:
        from .engine import Engine, resolve_execution  # torch lives on this thread's side only

        out = context.socket(zmq.PUSH)
        out.linger = 0
        out.connect(self._reply_endpoint)

        # Lanes send their frames' answers themselves: one socket, used under a lock (ZeroMQ sockets
        # are not thread-safe; a lock's memory barrier makes the hand-over safe), so answers still
        # leave in the order they were sent.
        out_lock = threading.Lock()

        def send(reply) -> None:
            request, header, arrays = reply
            if not header.get("ok", True):
                self.stats.error(header["kind"])
            self.stats.add("replies")
            parts = protocol.encode({**header, "id": request.request_id, "server_epoch": self.epoch}, arrays)
            with out_lock:
                out.send_multipart([request.identity, *parts], copy=False)

        def on_batch(size: int) -> None:
            self.stats.add("encoder_batches")
            self.stats.add("frames_tracked", size)
            self.stats.add(f"batch_size_{size}")

        execution = resolve_execution(self.config.execution, self.host.model.device)
        engine = Engine(self.host, send, on_batch, workers=min(self.config.max_batch, os.cpu_count() or 1),
                        execution=execution, lanes=self.config.max_batch, wake=self.streams.wake)
        self.execution = execution
        if engine.holds_streams:
            self.streams.gather_s = 0.0  # lanes start each frame as it comes: nothing to gather
        LOG.info("execution: %s (a round's frames of several streams %s)", execution,
                 "through the model together" if execution == "batched" else "each on its own thread")
        rounds, last_work, trimmed = 0, time.monotonic(), True
        try:
            while not self._stop.is_set():
                for stream in engine.collect():
                    self.streams.release(stream)
                work = self.streams.take_round(wait_s=POLL_MS / 1000, max_frames=engine.free_lanes(),
                                               hold=engine.holds_streams)
                if work is not None:
                    engine.run(work)
                    rounds += 1
                    last_work, trimmed = time.monotonic(), False
                    if rounds % TRIM_EVERY_ROUNDS == 0:
                        _return_free_memory()
                elif engine.busy:
                    last_work = time.monotonic()
                elif not trimmed and time.monotonic() - last_work > TRIM_WHEN_IDLE_S:
                    _return_free_memory()
                    trimmed = True
        except Exception:  # noqa: BLE001 - logged; the I/O thread stops the server rather than hang
            LOG.exception("model thread failed")
            self.failed = True
            self._stop.set()
        finally:
            engine.close()
            out.close(linger=0)


def run(config: ServerConfig, host=None, stop: Optional[threading.Event] = None) -> None:
    """Serve until interrupted (or ``stop`` is set)."""
    server = InferenceServer(config, host)
    if stop is not None:
        threading.Thread(target=lambda: (stop.wait(), server.stop()), daemon=True).start()
    server.serve()
