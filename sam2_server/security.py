"""Who may talk to a ``sam2_server``: loopback-only binding by default, CURVE keys otherwise (torch-free).

Without keys the server binds only to ``ipc://``, ``inproc://`` or a loopback ``tcp://`` address,
so nothing off the machine can reach it. To serve another machine (a robot talking to a base
station's GPU), the server needs a CURVE key directory made by ``sam2-server keygen DIR``:

    DIR/server.key                  the server's public key (copy it to every client machine)
    DIR/server.key_secret           the server's secret key (stays on the server)
    DIR/authorized_clients/*.key    public keys of the clients allowed in (one per robot)
    DIR/clients/NAME.key_secret     a client's key pair (move it to that robot, then delete it here)

A client without an authorized key never completes the handshake: it gets nothing, and the
server carries on. Traffic of authorized clients is encrypted.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple

import zmq
import zmq.auth

SERVER_KEY_NAME = "server"
AUTHORIZED_DIR = "authorized_clients"
CLIENTS_DIR = "clients"


class SecurityError(ValueError):
    """A bind the security rules refuse, or a key directory that is incomplete."""


@dataclass(frozen=True)
class CurveClientKeys:
    """What a client needs for CURVE: the server's public key and its own key pair (z85 bytes).

    Args:
        server_public: the server's public key (``DIR/server.key``).
        client_public: this client's public key (its copy is in ``DIR/authorized_clients``).
        client_secret: this client's secret key.
    """

    server_public: bytes
    client_public: bytes
    client_secret: bytes

    @classmethod
    def load(cls, server_public_file: str, client_secret_file: str) -> "CurveClientKeys":
        """From ``server.key`` and the client's ``NAME.key_secret`` (which holds both its keys)."""
        server_public, _ = zmq.auth.load_certificate(os.path.expanduser(server_public_file))
        client_public, client_secret = zmq.auth.load_certificate(os.path.expanduser(client_secret_file))
        if client_secret is None:
            raise SecurityError(f"{client_secret_file} holds no secret key: give the client's .key_secret file")
        return cls(server_public, client_public, client_secret)

    def apply(self, sock: zmq.Socket) -> None:
        sock.curve_serverkey = self.server_public
        sock.curve_publickey = self.client_public
        sock.curve_secretkey = self.client_secret


@dataclass(frozen=True)
class ServerKeys:
    """The server's key pair and the directory of authorized client public keys."""

    public: bytes
    secret: bytes
    authorized_dir: str

    @classmethod
    def load(cls, directory: str) -> "ServerKeys":
        directory = os.path.expanduser(directory)
        secret_file = os.path.join(directory, f"{SERVER_KEY_NAME}.key_secret")
        authorized = os.path.join(directory, AUTHORIZED_DIR)
        if not os.path.isfile(secret_file):
            raise SecurityError(f"{secret_file} is missing: create the keys with `sam2-server keygen {directory}`")
        if not os.path.isdir(authorized):
            raise SecurityError(f"{authorized} is missing: it holds the public keys of the clients allowed in")
        public, secret = zmq.auth.load_certificate(secret_file)
        return cls(public, secret, authorized)

    def apply(self, sock: zmq.Socket) -> None:
        sock.curve_secretkey = self.secret
        sock.curve_publickey = self.public
        sock.curve_server = True


def _is_loopback_host(host: str) -> bool:
    host = host.strip("[]")
    if host in ("*", ""):
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:  # a name (localhost) or an interface name: loopback only if every address it has is
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:
        return False
    return bool(addresses) and all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses)


def split_tcp(endpoint: str) -> Optional[Tuple[str, str]]:
    """``tcp://host:port`` -> (host, port); None for other transports."""
    if not endpoint.startswith("tcp://"):
        return None
    host, _, port = endpoint[len("tcp://"):].rpartition(":")
    return host, port


def check_bind(endpoint: str, curve: bool) -> None:
    """Refuse a bind that would let other machines in without CURVE."""
    if endpoint.startswith(("ipc://", "inproc://")):
        return
    tcp = split_tcp(endpoint)
    if tcp is None:
        raise SecurityError(f"cannot bind {endpoint!r}: use ipc://PATH or tcp://HOST:PORT")
    host, port = tcp
    if not host or not port:
        raise SecurityError(f"cannot bind {endpoint!r}: give tcp://HOST:PORT")
    if not curve and not _is_loopback_host(host):
        raise SecurityError(f"refusing to bind {endpoint} without CURVE: {host} is not a loopback address, so "
                            "other machines could use the server. Bind ipc:// or tcp://127.0.0.1:PORT, or create "
                            "keys with `sam2-server keygen DIR` and pass --curve-keys DIR (docs/server.md)")


def keygen(directory: str, client_name: str = "client") -> dict:
    """Create the server key pair (unless it exists) and a client key pair ``client_name``, whose
    public key is authorized. Returns the files written, by role."""
    root = Path(os.path.expanduser(directory))
    if not client_name or "/" in client_name or client_name.startswith(".") or client_name == SERVER_KEY_NAME:
        raise SecurityError(f"client name {client_name!r} must be a plain file name other than {SERVER_KEY_NAME!r}")
    authorized, clients = root / AUTHORIZED_DIR, root / CLIENTS_DIR
    for folder in (root, authorized, clients):
        folder.mkdir(parents=True, exist_ok=True)
    written = {}
    server_secret = root / f"{SERVER_KEY_NAME}.key_secret"
    if not server_secret.exists():
        zmq.auth.create_certificates(str(root), SERVER_KEY_NAME)
        os.chmod(server_secret, 0o600)
        written["server_secret"] = str(server_secret)
    written["server_public"] = str(root / f"{SERVER_KEY_NAME}.key")
    if (clients / f"{client_name}.key_secret").exists():
        raise SecurityError(f"client {client_name!r} already has keys in {clients}: choose another name")
    public_file, secret_file = zmq.auth.create_certificates(str(clients), client_name)
    os.chmod(secret_file, 0o600)
    shutil.copy(public_file, authorized / f"{client_name}.key")
    os.remove(public_file)  # the secret file holds both keys; the public one lives in authorized_clients
    written["client_secret"] = str(secret_file)
    written["client_authorized"] = str(authorized / f"{client_name}.key")
    return written
