"""``sam2-server``: serve one SAM 2 model to tracker nodes over ZeroMQ; ``sam2-server keygen DIR`` makes CURVE keys.

    sam2-server --bind ipc:///tmp/sam2.sock --model default --device cpu
    sam2-server --bind tcp://0.0.0.0:5555 --model sam2.1_hiera_tiny --checkpoint tiny.pt --device cuda \\
                --curve-keys ~/sam2_keys
    sam2-server keygen ~/sam2_keys --client robot1

Flags are a view of ``ServerConfig`` (defaults and meanings live there). See docs/server.md.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from typing import List, Optional

from .config import DTYPES, EXECUTIONS, ServerConfig, ServerConfigError
from .protocol import DEFAULT_MAX_MESSAGE_BYTES
from .security import SecurityError, keygen

DEFAULTS = ServerConfig()


def serve_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sam2-server", description=__doc__.split("\n\n")[0],
                                     epilog="`sam2-server keygen DIR [--client NAME]` creates CURVE keys.")
    parser.add_argument("--bind", default=DEFAULTS.bind,
                        help="ipc:///PATH or tcp://HOST:PORT (off loopback only with --curve-keys)")
    parser.add_argument("--model", default=DEFAULTS.model,
                        help="default (bundled), a released name (sam2.1_hiera_tiny, ...) or an official YAML path")
    parser.add_argument("--checkpoint", default=DEFAULTS.checkpoint,
                        help="official-format checkpoint; unset: the bundled weights of 'default', else RANDOM")
    parser.add_argument("--device", default=DEFAULTS.device,
                        help="auto (cuda when PyTorch sees a GPU, else cpu), cpu, cuda or cuda:N")
    parser.add_argument("--dtype", default=DEFAULTS.dtype, choices=DTYPES, help="weights' dtype")
    parser.add_argument("--max-streams", type=int, default=DEFAULTS.max_streams, help="most streams at once")
    parser.add_argument("--stream-timeout", type=float, default=DEFAULTS.stream_timeout_s,
                        help="seconds without a request or heartbeat after which a stream is freed")
    parser.add_argument("--curve-keys", default=DEFAULTS.curve_keys,
                        help="CURVE key directory from `sam2-server keygen` (required off loopback)")
    parser.add_argument("--max-batch", type=int, default=DEFAULTS.max_batch,
                        help="most frames of different streams encoded together (batched) or tracked at once "
                             "(threaded: at most one per core PyTorch uses)")
    parser.add_argument("--batch-wait-ms", type=float, default=DEFAULTS.batch_wait_ms,
                        help="batched: longest a round waits for the next frames of the previous round's "
                             "streams (0: take what is waiting); threaded never waits")
    parser.add_argument("--execution", default=DEFAULTS.execution, choices=EXECUTIONS,
                        help="a round's frames through the model together (batched) or each stream on its own "
                             "thread (threaded); auto: batched on CUDA, threaded on a CPU")
    parser.add_argument("--max-message-mb", type=float, default=DEFAULT_MAX_MESSAGE_BYTES / 2 ** 20,
                        help="largest request accepted, in MiB")
    parser.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    return parser


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    """The settings a parsed command line asks for (not checked yet)."""
    return ServerConfig(bind=args.bind, model=args.model, checkpoint=args.checkpoint, device=args.device,
                        dtype=args.dtype, max_streams=args.max_streams, stream_timeout_s=args.stream_timeout,
                        curve_keys=args.curve_keys, max_message_bytes=int(args.max_message_mb * 2 ** 20),
                        max_batch=args.max_batch, batch_wait_ms=args.batch_wait_ms, execution=args.execution)


def _keygen(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(prog="sam2-server keygen",
                                     description="Create the server's CURVE key pair (if missing) and an "
                                                 "authorized client key pair in DIR (docs/server.md).")
    parser.add_argument("directory")
    parser.add_argument("--client", default="client", help="name of the client key pair (e.g. the robot)")
    args = parser.parse_args(argv)
    try:
        written = keygen(args.directory, args.client)
    except (SecurityError, OSError) as error:
        print(f"sam2-server keygen: {error}", file=sys.stderr)
        return 2
    for role, path in written.items():
        print(f"{role}: {path}")
    print(f"Copy server.key and clients/{args.client}.key_secret to the client machine, then delete "
          f"clients/{args.client}.key_secret here.")
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "keygen":
        return _keygen(argv[1:])
    args = serve_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, format="[sam2-server] %(levelname)s %(message)s")
    config = config_from_args(args)
    from .server import BindError, InferenceServer  # after parsing: --help and keygen need no model
    try:
        server = InferenceServer(config)
    except (ServerConfigError, SecurityError, BindError, ValueError, OSError) as error:  # settings, keys, model
        print(f"sam2-server: {error}", file=sys.stderr)
        return 2
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: server.stop())
    try:
        server.serve()
    except BindError as error:
        print(f"sam2-server: {error}", file=sys.stderr)
        return 2
    return 1 if server.failed else 0


if __name__ == "__main__":
    sys.exit(main())
