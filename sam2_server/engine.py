"""The server's model side: one model on one device, a ``TrackingSession`` per stream, and the
execution of a round of requests (frames of several streams through the image encoder together).

``Engine`` runs on the server's model thread (and its helper threads); the I/O thread only builds
a stream's session (``ModelHost.new_session``: options and bookkeeping, no computation).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import time
from collections import defaultdict, deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Deque, Dict, List, Optional, Tuple

import torch

import sam2_model
from sam2_model.discovery import DISCOVERY_GENERATOR_OPTIONS, DiscoveryError, DiscoveryOptions
from sam2_model.mask_generator_options import MaskGeneratorOptions, MaskGeneratorOptionsError
from sam2_model.tracker_options import TrackerOptionsError
from sam2_model.tracking_session import TrackingSession, track_together

from . import protocol
from .config import ServerConfig
from .protocol import Message, ProtocolError
from .streams import Request, Round, Stream

LOG = logging.getLogger("sam2_server")

# A reply: the request it answers, its header fields and arrays.
Reply = Tuple[Request, Dict[str, Any], Dict[str, Any]]


def error_kind(error: BaseException) -> str:
    """The wire's name for what went wrong (the most specific class first)."""
    if isinstance(error, ProtocolError):
        return error.kind
    if isinstance(error, sam2_model.UnknownObjectError):
        return "unknown_object"
    if isinstance(error, sam2_model.TrackingError):
        return "tracking"
    if isinstance(error, sam2_model.PromptError):
        return "prompt"
    if isinstance(error, sam2_model.FrameError):
        return "frame"
    if isinstance(error, DiscoveryError):
        return "discovery"
    if isinstance(error, (TrackerOptionsError, MaskGeneratorOptionsError, TypeError, ValueError)):
        return "bad_request"
    return "internal"


@dataclass
class ModelHost:
    """The model the streams share, on its device."""

    model: sam2_model.SAM2Model
    config: ServerConfig

    @classmethod
    def load(cls, config: ServerConfig) -> "ModelHost":
        checkpoint = os.path.expanduser(config.checkpoint) if config.checkpoint else None
        device = sam2_model.resolve_device(config.device)  # DeviceError (a ValueError) names a missing GPU
        model = sam2_model.build_model(os.path.expanduser(config.model), checkpoint, device=device,
                                       dtype=getattr(torch, config.dtype))
        return cls(model, config)

    def new_session(self, options: Dict[str, Any]) -> TrackingSession:
        """A stream's session from its client's options (TrackerOptions fields, and ``generator``:
        MaskGeneratorOptions fields); ValueError naming a bad one."""
        options = dict(options)
        if "robust_options" in options:
            # The Python API takes a RobustMemoryOptions object; JSON can only bring a dict, and the
            # memory_policy text already names components and thresholds.
            raise ProtocolError("bad_request", "option 'robust_options' cannot be sent to a server: name the "
                                               "robust policy's components and thresholds in memory_policy, "
                                               "e.g. 'robust+colour_trim,trim_max_distance=90'")
        generator_options = options.pop("generator", None)
        if generator_options is None:
            generator_settings = DISCOVERY_GENERATOR_OPTIONS
        elif isinstance(generator_options, dict):
            try:
                generator_settings = MaskGeneratorOptions.from_kwargs(**generator_options)
            except TypeError as error:
                raise ProtocolError("bad_request", str(error)) from None
        else:
            raise ProtocolError("bad_request", f"options 'generator' must be an object, got {generator_options!r}")
        tracker = sam2_model.StreamingTracker(self.model, **options)
        return TrackingSession(tracker, sam2_model.AutomaticMaskGenerator(self.model, generator_settings))


@dataclass
class _Frame:
    """A frame on its way through a round: decoded and resized, waiting for its features."""

    stream: Stream
    request: Request
    outputs: Any        # session_types.Outputs
    ready: Any          # tracker.PreparedFrame
    pixels: Any         # the frame as a tensor where the tracker resizes it


def resolve_execution(execution: str, device: torch.device) -> str:
    """``auto`` -> ``batched`` on a GPU, ``threaded`` on a CPU (``ServerConfig.execution``)."""
    if execution != "auto":
        return execution
    return "threaded" if device.type == "cpu" else "batched"


class Engine:
    """Runs rounds of requests against the streams' sessions; every reply goes to ``send``.

    ``batched``: frames of a round are resized in parallel and encoded in one batch per encoder key;
    memory attention runs in one pass per memory layout (streams past their first frames share one),
    then every object of every stream goes through the mask decoder and the memory encoder in one
    batch; the per-stream summaries (masks to the host) run in parallel threads.
    ``threaded``: each frame is tracked on a lane thread of its own with one intra-op thread (on a
    CPU, one process's intra-op threads leave cores idle between small operations and Python;
    several streams' operations side by side fill them). ``run`` only starts the frames; the model
    thread takes more work while they run (their streams held, ``StreamTable.take_round(hold=True)``);
    a lane sends its frame's answer itself, and ``collect`` hands the model thread the streams whose
    frames are done, so a lane starts a stream's next frame as soon as it comes.
    A frame with no other in flight takes all of the model thread's intra-op threads. A single
    stream's frames are computed exactly as in-process either way.

    Args:
        host: the model.
        send: called with each ``Reply``, from the model thread or, under ``threaded``, from the lane
            that computed it (so it must be thread-safe; the server's serialises its socket).
            Calls for one stream never overlap: a stream's frame on a lane holds the stream.
        on_batch: called with each encoder batch size (statistics), like ``send`` from lanes too.
        workers: threads for the per-stream work of a batched round.
        execution: ``batched`` or ``threaded`` (``resolve_execution``).
        lanes: most frames tracked at once when threaded; no more than torch's intra-op threads (the
            cores it was given): a lane uses one, and a frame more in flight than cores only holds
            its activations in memory longer (3 streams on 2 cores, 3 lanes against 2: server
            resident memory 325-342 MiB against 320-325, frames per second no higher).
        wake: called from a lane when its frame is done (ends the model thread's wait for work, so
            that it calls ``collect``).
    """

    def __init__(self, host: ModelHost, send: Callable[[Reply], None], on_batch: Callable[[int], None],
                 workers: int = 4, execution: str = "batched", lanes: int = 4,
                 wake: Callable[[], None] = lambda: None):
        if execution not in ("batched", "threaded"):
            raise ValueError(f"execution must be batched or threaded, got {execution!r}")
        self.host, self.send, self.on_batch, self._wake = host, send, on_batch, wake
        self.execution = execution
        self._pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="sam2_server_stream")
        self._lanes: Optional[ThreadPoolExecutor] = None
        self._solo: Optional[ThreadPoolExecutor] = None
        self._threads = torch.get_num_threads()
        self._lane_count = max(1, min(lanes, self._threads))
        self._in_flight = 0  # frames started on lanes and not yet collected (model thread only)
        self._done: Deque[Tuple[Stream, Request, Future]] = deque()  # appended by lanes, emptied by collect
        if execution == "threaded":
            # OpenMP keeps the thread count per thread: a lane's operations use one core, the model
            # thread keeps its own count (pinned here, before any lane starts).
            torch.set_num_threads(self._threads)
            self._lanes = ThreadPoolExecutor(max_workers=self._lane_count, thread_name_prefix="sam2_server_lane",
                                             initializer=torch.set_num_threads, initargs=(1,))
            # A frame with no other in flight runs here, with every intra-op thread. Always this one
            # thread: each thread that runs with several keeps its own OpenMP team, whose idle threads
            # spin for a while and would take cores from the others.
            self._solo = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sam2_server_solo",
                                            initializer=torch.set_num_threads, initargs=(self._threads,))

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        for executor in (self._lanes, self._solo):
            if executor is not None:
                executor.shutdown(wait=True)

    @property
    def holds_streams(self) -> bool:
        """Frames outlive ``run`` (threaded): their streams are held until ``collect`` returns them."""
        return self._lanes is not None

    @property
    def busy(self) -> bool:
        return self._in_flight > 0

    def free_lanes(self) -> Optional[int]:
        """How many frames the next round may start (threaded: lanes not busy); None: no limit."""
        return None if self._lanes is None else self._lane_count - self._in_flight

    def run(self, work: Round) -> None:
        for stream, request in work.others:
            self.send(self._answer(stream, request, self._operation))
        if self._lanes is not None:
            self._start_in_lanes(work.frames)
        else:
            self._track_frames(work.frames)

    def collect(self) -> List[Stream]:
        """The streams whose frames the lanes finished (answered by the lanes), to be released."""
        finished = []
        while self._done:
            stream, request, future = self._done.popleft()
            self._in_flight -= 1
            try:
                future.result()
            except Exception as error:  # noqa: BLE001 - _on_lane answers its own faults; a bug is refused too
                self.send(self._refusal(stream, request, error))
            finished.append(stream)
        return finished

    def _each(self, function, items) -> list:
        if len(items) <= 1:
            return [function(item) for item in items]
        return list(self._pool.map(function, items))

    # ------------------------------------------------------------------ frames
    def _prepare(self, item: Tuple[Stream, Request]):
        stream, request = item
        try:
            outputs = protocol.outputs_from_wire(request.message.header.get("outputs"))
            return _Frame(stream, request, outputs, *stream.session.prepare(_frame_of(request.message)))
        except Exception as error:  # noqa: BLE001 - answered, counted; the others go on
            return self._refusal(stream, request, error)

    def _track_frames(self, frames: List[Tuple[Stream, Request]]) -> None:
        groups = defaultdict(list)
        for result in self._each(self._prepare, frames):
            if isinstance(result, _Frame):
                groups[result.stream.session.tracker.encode_key].append(result)
            else:
                self.send(result)
        for group in groups.values():
            try:
                features = group[0].stream.session.tracker.encode([item.ready for item in group])
                results = track_together([(item.stream.session, item.ready, item.pixels, f)
                                          for item, f in zip(group, features)])
            except Exception as error:  # noqa: BLE001 - e.g. out of device memory: every frame refused
                for item in group:
                    self.send(self._refusal(item.stream, item.request, error))
                continue
            self.on_batch(len(group))
            for reply in self._each(self._finish, list(zip(group, results))):
                self.send(reply)

    def _start_in_lanes(self, frames: List[Tuple[Stream, Request]]) -> None:
        # Alone on the machine, a frame takes every intra-op thread (as in-process); beside others, one.
        executor = self._solo if len(frames) == 1 and self._in_flight == 0 else self._lanes
        for stream, request in frames:
            future = executor.submit(self._on_lane, (stream, request))
            self._in_flight += 1
            future.add_done_callback(functools.partial(self._lane_done, stream, request))

    def _lane_done(self, stream: Stream, request: Request, future: Future) -> None:
        self._done.append((stream, request, future))
        self._wake()

    def _on_lane(self, item: Tuple[Stream, Request]) -> None:
        """A lane's work (or the solo thread's): one stream's frame by the in-process path (one frame,
        its own encoder pass), counted and answered from here. The answer leaves before
        the frame's tensors are freed: freeing them (the activations' memory going back) took 0.4 ms
        of every answer's 1.7 ms transport, and handing the answer to the model thread 0.1-0.2 ms
        (one stream, 2-core CPU)."""
        frame = self._prepare(item)
        if not isinstance(frame, _Frame):
            self.send(frame)
            return
        session = frame.stream.session
        try:
            features = session.tracker.encode([frame.ready])[0]
            result = track_together([(session, frame.ready, frame.pixels, features)])[0]
        except Exception as error:  # noqa: BLE001 - e.g. out of memory: this frame refused, the others go on
            self.send(self._refusal(frame.stream, frame.request, error))
            return
        reply = self._finish((frame, result))
        self.on_batch(1)  # before the answer: a client asking for statistics next finds the frame counted
        self.send(reply)

    def _finish(self, item) -> Reply:
        frame, result = item

        def summarize(stream: Stream, request: Request):
            stream.frames_tracked += 1
            return protocol.frame_state_to_wire(stream.session.summarize(result, frame.outputs))

        return self._answer(frame.stream, frame.request, summarize)

    # ------------------------------------------------------------------ other requests
    def _operation(self, stream: Stream, request: Request):
        message, session = request.message, stream.session
        op = request.op
        if op == "prompt":
            outputs = protocol.outputs_from_wire(message.header.get("outputs"))
            return protocol.frame_state_to_wire(session.add_prompt(message.value("object_id", int),
                                                                   protocol.prompt_from_wire(message), outputs))
        if op == "current":
            outputs = protocol.outputs_from_wire(message.header.get("outputs"))
            return protocol.frame_state_to_wire(session.current(outputs))
        if op == "remove":
            session.remove_object(message.value("object_id", int))
            return {"object_ids": session.obj_ids}, {}
        if op == "reset":
            session.reset()
            return {}, {}
        if op == "discover":
            return protocol.discovery_to_wire(_discover(session, message))
        raise ProtocolError("bad_request", f"operation {op!r} is not run by the model thread")

    def _answer(self, stream: Stream, request: Request, compute) -> Reply:
        try:
            fields, arrays = compute(stream, request)
        except Exception as error:  # noqa: BLE001 - a request's fault never stops the server
            return self._refusal(stream, request, error)
        # How long the request was in the server (queued and computed): the client's round trip minus
        # this is what the transport and the wire format cost.
        server_ms = (time.monotonic() - request.received_at) * 1000.0
        return request, {"ok": True, "stream_epoch": stream.epoch, "server_ms": server_ms, **fields}, arrays

    @staticmethod
    def _refusal(stream: Stream, request: Request, error: BaseException) -> Reply:
        kind = error_kind(error)
        if kind == "internal":
            LOG.error("stream %s: %s failed unexpectedly", stream.name, request.op, exc_info=error)
        return request, {"ok": False, "kind": kind, "message": str(error) or repr(error),
                         "stream_epoch": stream.epoch}, {}


def _frame_of(message: Message):
    frame = message.arrays.get("frame")
    if frame is None:
        raise ProtocolError("bad_request", "track needs the array 'frame'")
    if frame.dtype != "uint8" or frame.ndim != 3 or frame.shape[2] != 3 or 0 in frame.shape:
        raise sam2_model.FrameError(f"frame must be a non-empty H x W x 3 uint8 RGB image, got {frame.dtype} "
                                    f"{list(frame.shape)}")
    return frame


def _discover(session: TrackingSession, message: Message):
    options = message.value("options", dict, required=False, default={})
    known = {f.name for f in dataclasses.fields(DiscoveryOptions)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ProtocolError("bad_request", f"unknown discovery option(s) {unknown}; known: {sorted(known)}")
    region = message.header.get("region")
    if region is not None and (not isinstance(region, list) or len(region) != 4
                               or not all(isinstance(v, int) and not isinstance(v, bool) for v in region)):
        raise ProtocolError("bad_request", f"region must be [x, y, width, height] integers or null, got {region!r}")
    outputs = message.header.get("outputs")
    return session.discover(DiscoveryOptions(**options), None if region is None else tuple(region),
                            message.value("max_new", int), message.value("first_id", int),
                            None if outputs is None else protocol.outputs_from_wire(outputs))
