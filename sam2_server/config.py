"""``ServerConfig``: how a ``sam2-server`` runs, the single source of its defaults (the CLI's flags are its view)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

from .protocol import DEFAULT_MAX_MESSAGE_BYTES

DTYPES = ("float32", "bfloat16", "float16")
# How a round's frames of several streams are computed (engine.Engine): ``batched`` through the model
# together, ``threaded`` each stream on its own thread; ``auto``: batched on a GPU, threaded on a CPU.
EXECUTIONS = ("auto", "batched", "threaded")


class ServerConfigError(ValueError):
    """Invalid server settings; the message names every bad one."""


@dataclass(frozen=True)
class ServerConfig:
    """Args:
        bind: where clients connect: ``ipc:///path`` (same machine) or ``tcp://HOST:PORT``
            (loopback only, unless ``curve_keys`` is given).
        model: the SAM 2 model: ``default`` (bundled), a released name, or an official YAML path.
        checkpoint: its official-format checkpoint; None: the bundled weights for ``default``,
            random weights otherwise (tests only).
        device: ``auto`` (``cuda`` when PyTorch sees a GPU, else ``cpu``), ``cpu``, ``cuda`` or ``cuda:N``.
        dtype: the weights' dtype (``float32``, ``bfloat16``, ``float16``).
        max_streams: most streams (cameras) at once.
        stream_timeout_s: a stream with no request or heartbeat for this long is freed.
        curve_keys: CURVE key directory (``sam2-server keygen``); required to bind off loopback.
        max_message_bytes: largest request accepted (larger parts are dropped by ZeroMQ, larger
            multipart messages refused).
        max_batch: most frames (of different streams) through the image encoder at once
            (``batched``) or tracked at once (``threaded``: at most one per core PyTorch uses).
        batch_wait_ms: ``batched``: longest a round waits for the next frames of the streams that
            were in the previous round, so that their frames are encoded together (0: take what is
            waiting). ``threaded`` starts each frame as it comes (on a free lane) and never waits.
            A client sends its next frame a millisecond or two after its answer (ipc, the node's
            publishing in between); a stream that misses the wait is not waited for again until
            its next frame.
        execution: ``batched``: a round's frames go through the model together (a GPU's way to
            use its width); ``threaded``: each stream's frame on its own thread with one intra-op
            thread, so a CPU's cores stay busy between the model's operations (measured on 2 cores:
            1.2x the frames per second of ``batched``); ``auto``: batched on CUDA, threaded on a CPU.
            A round of one frame runs the in-process path either way.
    """

    bind: str = "ipc:///tmp/sam2.sock"
    model: str = "default"
    checkpoint: Optional[str] = None
    device: str = "auto"
    dtype: str = "float32"
    max_streams: int = 16
    stream_timeout_s: float = 10.0
    curve_keys: Optional[str] = None
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    max_batch: int = 8
    batch_wait_ms: float = 5.0
    execution: str = "auto"

    def problems(self) -> List[str]:
        found = []
        if self.dtype not in DTYPES:
            found.append(f"dtype {self.dtype!r} must be one of {', '.join(DTYPES)}")
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            found.append(f"device {self.device!r} must be auto, cpu, cuda or cuda:N")
        for name in ("max_streams", "max_batch"):
            if getattr(self, name) < 1:
                found.append(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.execution not in EXECUTIONS:
            found.append(f"execution {self.execution!r} must be one of {', '.join(EXECUTIONS)}")
        if not 0 <= self.batch_wait_ms <= 1000:
            found.append(f"batch_wait_ms must be between 0 and 1000, got {self.batch_wait_ms}")
        if not self.stream_timeout_s > 0:
            found.append(f"stream_timeout_s must be > 0, got {self.stream_timeout_s}")
        if self.max_message_bytes < 1024:
            found.append(f"max_message_bytes must be at least 1024, got {self.max_message_bytes}")
        return found

    def check(self) -> "ServerConfig":
        problems = self.problems()
        if problems:
            raise ServerConfigError("invalid server settings: " + "; ".join(problems))
        return self
