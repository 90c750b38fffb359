"""Real ``sam2-server`` processes for the tests: ``python -m sam2_server`` started from the working tree."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, List

import pytest

from sam2_server.client import TrackerClient

from child_process import FAULT_HANDLER, stop_process

REPO = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 60.0
LONG_STREAM_TIMEOUT_S = 600.0


SERVER_TORCH_THREADS = 1


@pytest.fixture
def torch_threads_as_the_server():
    """This process's torch on the test servers' thread count for the test: a reference computed
    here equals the server's bit for bit only then, whatever an earlier test left the count at."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(SERVER_TORCH_THREADS)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class ServerProcess:
    """``python -m sam2_server --bind <endpoint> <args>`` in its own process, its output in ``log_path``."""

    def __init__(self, endpoint: str, args: List[str], log_path: Path):
        self.endpoint, self.args, self.log_path = endpoint, list(args), log_path
        self.arguments = ["--bind", endpoint, *self.args]
        self.process: subprocess.Popen = None  # type: ignore[assignment]

    @classmethod
    def from_command_line(cls, arguments: List[str], log_path: Path) -> "ServerProcess":
        """The server with a given command line, ``--bind`` among it (e.g. the one a launch file builds)."""
        arguments = list(arguments)
        server = cls(arguments[arguments.index("--bind") + 1], [], log_path)
        server.arguments = arguments
        return server

    def launch(self) -> "ServerProcess":
        """Start the process without waiting for it to answer."""
        # One torch thread, as the tests' in-process references use (torch_threads_as_the_server):
        # results are bit-identical only at the same thread count.
        env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
                   PYTHONUNBUFFERED="1", OMP_NUM_THREADS=str(SERVER_TORCH_THREADS), **FAULT_HANDLER)
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen([sys.executable, "-m", "sam2_server", *self.arguments],
                                        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        return self

    def start(self, curve=None) -> "ServerProcess":
        """Launch and wait until it answers a heartbeat (with ``curve`` keys for a CURVE server)."""
        self.launch()
        self.wait_ready(curve)
        return self

    def wait_ready(self, curve=None) -> None:
        probe = TrackerClient(self.endpoint, "probe", timeout_s=0.5, curve=curve)
        deadline = time.monotonic() + START_TIMEOUT_S
        try:
            while not probe.heartbeat():
                if self.process.poll() is not None:
                    raise RuntimeError(f"sam2-server exited with {self.process.returncode}:\n{self.log()}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"sam2-server not answering after {START_TIMEOUT_S} s:\n{self.log()}")
                time.sleep(0.1)
        finally:
            probe.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def rss_bytes(self) -> int:
        """Resident memory of the server process (Linux /proc)."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")

    def kill(self) -> None:
        """SIGKILL: a crash, nothing cleaned up."""
        self.process.kill()
        self.process.wait(timeout=30)

    def stop(self) -> int:
        return stop_process(self.process, signal.SIGTERM, 30.0)


@contextmanager
def running_server(tmp_path: Path, *args: str, endpoint: str = "") -> Iterator[ServerProcess]:
    """A server on ``ipc://<tmp>/sam2.sock`` (or ``endpoint``) with the bundled model unless ``args`` say
    otherwise; stopped afterwards, failing the test if it died on the way."""
    endpoint = endpoint or f"ipc://{tmp_path}/sam2.sock"
    args = list(args)
    if "--stream-timeout" not in args:
        # The tests send no heartbeats, and on a loaded machine the in-process reference can take
        # longer than the default timeout between two requests of a stream.
        args += ["--stream-timeout", str(LONG_STREAM_TIMEOUT_S)]
    server = ServerProcess(endpoint, args, tmp_path / "server.log").start()
    try:
        yield server
        assert server.alive, f"the server died:\n{server.log()}"
    finally:
        code = server.stop()
        if code not in (0, -signal.SIGKILL):
            raise AssertionError(f"server exited with {code}:\n{server.log()}")
