"""The local stack's address, taken before anything else: `make run` checks it before it installs
anything (`python3 -m local_stack.port`, standard library only, so before the venv exists), and
`python -m local_stack` binds it before it migrates or starts a worker and serves on the very
sockets it bound, so nothing can take the port in between. A port that cannot be had is one
sentence saying what to do, never a traceback."""

from __future__ import annotations

import errno
import os
import resource
import socket
import sys

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
# How far past a taken port to look for a free one to suggest.
NEARBY_PORTS = 20


class PortUnavailable(Exception):
    """HOST:PORT cannot be served on; the message is the sentence to show."""


def address_from_env() -> tuple[str, int]:
    """HOST and PORT from the environment, as `make run` passes them."""
    host = os.environ.get("HOST") or DEFAULT_HOST
    raw = os.environ.get("PORT") or str(DEFAULT_PORT)
    try:
        port = int(raw)
    except ValueError:
        raise PortUnavailable(f"PORT={raw} is not a port number: run with PORT=8000.") from None
    if not 1 <= port <= 65535:
        raise PortUnavailable(f"PORT={raw} is not a port number (1 to 65535): run with PORT=8000.")
    return host, port


def bind(host: str, port: int) -> list[socket.socket]:
    """Bound (not yet listening) sockets for every address `host` names, as aiohttp would bind
    them; `PortUnavailable` when one cannot be bound. A bound socket already holds the port;
    connections are refused until the server listens on it."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror:
        raise PortUnavailable(
            f"HOST={host} is not a name this machine knows: run with HOST=127.0.0.1.") from None
    bound: list[socket.socket] = []
    for family, kind, proto, _, address in dict.fromkeys(infos):
        sock = socket.socket(family, kind, proto)
        if os.name == "posix":  # as asyncio does: a port whose old connections linger is free
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        try:
            sock.bind(address)
        except OSError as error:
            for taken in [sock, *bound]:
                taken.close()
            raise PortUnavailable(_why(error, host, port)) from None
        bound.append(sock)
    return bound


def raise_open_file_limit() -> int:
    """Lift this process's soft limit on open files to its hard limit, and return the limit
    now. Every socket is a file: at a soft limit of 1,024 (a common default) the stack refuses
    its thousandth socket while the hard limit would allow far more. A hard limit the kernel
    will not grant as a soft one (unlimited) leaves the soft limit as it was."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def check(host: str, port: int) -> None:
    """`PortUnavailable` unless HOST:PORT can be bound now; holds nothing afterwards."""
    for sock in bind(host, port):
        sock.close()


def _why(error: OSError, host: str, port: int) -> str:
    if error.errno == errno.EADDRINUSE:
        return (f"Port {port} on {host} is in use: stop what uses it, or run with "
                f"PORT={_free_port_near(host, port)}.")
    if error.errno == errno.EACCES:
        return f"Port {port} on {host} needs root here: run with PORT=8000 or another above 1023."
    if error.errno == errno.EADDRNOTAVAIL:
        return f"HOST={host} is not an address of this machine: run with HOST=127.0.0.1."
    return f"Cannot listen on {host}:{port} ({error.strerror}): run with another HOST or PORT."


def _free_port_near(host: str, port: int) -> int:
    """The first port after `port` that is free now (the next one if none of them is)."""
    for candidate in range(port + 1, min(port + NEARBY_PORTS, 65535) + 1):
        try:
            check(host, candidate)
        except PortUnavailable:
            continue
        return candidate
    return min(port + 1, 65535)


def main() -> None:
    """`python3 -m local_stack.port`: silent and 0 when HOST:PORT is free, else one sentence."""
    try:
        check(*address_from_env())
    except PortUnavailable as unavailable:
        sys.exit(str(unavailable))


if __name__ == "__main__":
    main()
