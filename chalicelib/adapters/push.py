"""The one push adapter: frames to WebSocket connections through API Gateway's management API.

Chalice configures its own client only inside WebSocket handlers and hard-codes AWS's URL;
this one serves every handler, route and the schedule, with the endpoint from configuration
(the local stack's `/local` or `https://{api-id}.execute-api.{region}.amazonaws.com/{stage}`).

Pushes are the hot path of a send (DESIGN.md, "Where a message's time goes"), so this adapter
uses neither boto3's client (1.4 ms of CPU a push here) nor botocore's `SigV4Auth` on urllib3
(0.75 ms): it signs with `sigv4.Signer` (botocore's signature, byte for byte, tested side by
side) and speaks HTTP/1.1 on kept-alive sockets itself (`_KeepAliveConnection`), ≈ 0.15 ms
(`bench/push_adapter.py`).
Credentials still come from botocore's chain.
"""

from __future__ import annotations

import json
import os
import random
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

from chalicelib.adapters.sigv4 import Signer, host_header
from chalicelib.errors import ConfigError

# The IAM action every management-API request needs (the stage's policy must grant it; the
# deploy tests read this constant, since no boto3 client call names it any more).
MANAGE_CONNECTIONS_ACTION = "execute-api:ManageConnections"
SIGNING_SERVICE = "execute-api"
# Sized for delivery.py's rounds of at most 8 pushes in flight: each on a connection of its own.
POOL_CONNECTIONS = 8
# Frames as compact UTF-8 JSON. One encoder for every push: json.dumps with options makes a
# new one on each call.
_FRAME_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


class InFlight(Protocol):
    def finish(self) -> bool:
        """Wait for the push's answer: False when the connection is gone (its row should go
        too); `PushFailed` when it could not be delivered."""


class Push(Protocol):
    def start(self, connection_id: str, frame: dict[str, Any]) -> InFlight:
        """Put one frame on its way and return at once. Frames started to several connections
        before any is finished travel concurrently, from one thread: no hand-off to another."""

    def send(self, connection_id: str, frame: dict[str, Any]) -> bool:
        """`start(...).finish()`: one frame, waiting for its answer."""

    def disconnect(self, connection_id: str) -> bool:
        """Close a connection; False when it was already gone."""


class PushFailed(Exception):
    """A push the management API refused, or did not answer in time. The frame is lost; the
    device catches up with `sync`."""

    def __init__(self, method: str, connection_id: str, reason: str) -> None:
        super().__init__(f"{method} @connections/{connection_id} failed: {reason}")
        self.connection_id = connection_id
        self.reason = reason


@dataclass(frozen=True)
class RetryPolicy:
    """How long one push may take. Throttling, 5xx answers, connect errors and timeouts are
    retried with capped exponential backoff and full jitter, while the attempt can still finish
    within `deadline_s`, well inside the shortest Lambda timeout (10 s)."""

    attempts: int = 3
    connect_timeout_s: float = 2.0
    read_timeout_s: float = 3.0
    deadline_s: float = 6.0
    backoff_base_s: float = 0.05
    backoff_cap_s: float = 1.0

    def backoff_s(self, retry: int) -> float:
        return random.uniform(0, min(self.backoff_cap_s, self.backoff_base_s * 2 ** retry))


class _Closed(ConnectionError):
    """The server closed the connection before its answer was complete."""


class _Malformed(OSError):
    """An answer that is not HTTP/1.1 as the management API speaks it."""


# What a kept-alive connection the server has closed meanwhile raises on its next request.
_STALE_CONNECTION = (ConnectionResetError, BrokenPipeError, _Closed)
_MAX_LINE = 65_536
_MAX_HEADERS = 100


class _KeepAliveConnection:
    """One HTTP/1.1 connection to the management API, kept alive between requests.

    The standard library's `http.client` cost twice this per push: it validates each header,
    writes a request's head and body in two sends, and makes a new reader and a header parser
    for every answer. Here a request is one write of bytes made by `request_bytes`, and each
    answer is read from one buffered reader kept for the connection's life, framed as HTTP/1.1
    frames it: by Content-Length, chunked, or by the connection's close."""

    def __init__(self, host: str, port: int | None, tls: ssl.SSLContext | None,
                 timeout_s: float) -> None:
        sock = socket.create_connection((host, port or (443 if tls else 80)), timeout_s)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if tls is not None:
                sock = tls.wrap_socket(sock, server_hostname=host)
        except BaseException:
            sock.close()
            raise
        self.sock: socket.socket | None = sock
        self._answers = sock.makefile("rb")

    def send(self, request: bytes, timeout_s: float) -> None:
        assert self.sock is not None, "a closed connection is never reused"
        self.sock.settimeout(timeout_s)
        self.sock.sendall(request)

    def read_answer(self) -> tuple[int, dict[str, str]]:
        """(status, headers by lower-case name), the body read and dropped; the connection is
        closed if the server closes it."""
        status, headers = self._head()
        while 100 <= status < 200:  # an interim answer (100 Continue): the real one follows
            status, headers = self._head()
        if status in (204, 304):
            pass  # never a body
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            self._read_chunks()
        elif headers.get("content-length", "").isdigit():
            self._read_exactly(int(headers["content-length"]))
        else:  # no framing: the body runs to the close
            self._answers.read()
            self.close()
        if "close" in headers.get("connection", "").lower():
            self.close()
        return status, headers

    def close(self) -> None:
        if self.sock is not None:
            self._answers.close()
            self.sock.close()
            self.sock = None

    def _head(self) -> tuple[int, dict[str, str]]:
        version, _, rest = self._line().partition(" ")
        code = rest[:3]
        if not version.startswith("HTTP/1.") or not code.isdigit():
            raise _Malformed(f"status line {version!r}")
        headers: dict[str, str] = {}
        for _ in range(_MAX_HEADERS):
            line = self._line()
            if not line:
                return int(code), headers
            name, colon, value = line.partition(":")
            if colon:
                name = name.strip().lower()
                value = value.strip()
                headers[name] = f"{headers[name]}, {value}" if name in headers else value
        raise _Malformed("too many headers")

    def _line(self) -> str:
        line = self._answers.readline(_MAX_LINE + 1)
        if not line:
            raise _Closed("the server closed the connection")
        if len(line) > _MAX_LINE:
            raise _Malformed("line too long")
        return line.decode("iso-8859-1").rstrip("\r\n")

    def _read_chunks(self) -> None:
        while True:
            size = self._line().split(";", 1)[0].strip()
            try:
                left = int(size, 16)
            except ValueError:
                raise _Malformed(f"chunk size {size!r}") from None
            if left == 0:
                while self._line():  # trailers, to the blank line
                    pass
                return
            self._read_exactly(left)
            self._line()  # the chunk's CRLF

    def _read_exactly(self, length: int) -> None:
        if len(self._answers.read(length)) < length:
            raise _Closed("the server closed the connection mid-answer")


def request_bytes(method: str, path: str, headers: dict[str, str], body: bytes) -> bytes:
    """A request as it goes on the wire (the values are ours, or the signer's)."""
    head = [f"{method} {path} HTTP/1.1"]
    head += [f"{name}: {value}" for name, value in headers.items()]
    head.append(f"Content-Length: {len(body)}\r\n\r\n")
    return "\r\n".join(head).encode("latin-1") + body


class _Retryable(Exception):
    """One attempt failed in a way a later attempt may not."""


def region_of(endpoint_url: str) -> str:
    """The signing region: from `{api}.execute-api.{region}.amazonaws.com`, else the Lambda's
    own region (AWS_REGION, or AWS_DEFAULT_REGION), as boto3 would pick it."""
    labels = (urlsplit(endpoint_url).hostname or "").split(".")
    if len(labels) >= 4 and labels[1] == "execute-api":
        return labels[2]
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


class ApiGatewayPush:
    """Signed management-API requests on one keep-alive connection pool per container, both
    made on first use."""

    def __init__(self, endpoint_url: str | None = None, *,
                 resolve_endpoint: Callable[[], str | None] | None = None,
                 policy: RetryPolicy = RetryPolicy()) -> None:
        """`endpoint_url`, or `resolve_endpoint` called on the first push (a deployed stage reads
        it from SSM, and a handler that never pushes never asks)."""
        self._endpoint_url = endpoint_url
        self._resolve_endpoint = resolve_endpoint
        self._policy = policy
        self._first_use = threading.Lock()  # handlers may push from several threads at once
        self._transport: _SignedTransport | None = None

    def start(self, connection_id: str, frame: dict[str, Any]) -> InFlight:
        data = _FRAME_ENCODER.encode(frame).encode()
        return self._management_api().start("POST", connection_id, data)

    def send(self, connection_id: str, frame: dict[str, Any]) -> bool:
        return self.start(connection_id, frame).finish()

    def disconnect(self, connection_id: str) -> bool:
        return self._management_api().start("DELETE", connection_id, b"").finish()

    def _management_api(self) -> _SignedTransport:
        if self._transport is None:
            with self._first_use:
                if self._transport is None:
                    self._transport = _SignedTransport(self._endpoint(), self._policy)
        return self._transport

    def _endpoint(self) -> str:
        if not self._endpoint_url and self._resolve_endpoint is not None:
            self._endpoint_url = self._resolve_endpoint()
        if not self._endpoint_url:
            raise ConfigError("WS_MANAGEMENT_ENDPOINT or WS_PARAMETER_PREFIX must be set "
                              "to push to connections")
        return self._endpoint_url.rstrip("/")


class _SignedTransport:
    """`@connections` requests, SigV4-signed, with retries; True when answered 2xx, False
    when the connection is gone (410). Keep-alive connections wait in a small idle pool: a
    push takes one (or opens one), and puts it back once its answer is read."""

    def __init__(self, endpoint_url: str, policy: RetryPolicy) -> None:
        # Imported here, not at the top: a handler that never pushes never pays for it.
        import botocore.session

        self.policy = policy
        parts = urlsplit(endpoint_url)
        self._tls = ssl.create_default_context() if parts.scheme == "https" else None
        self._hostname, self._port = parts.hostname or "", parts.port
        # The usual chain (in Lambda: the role's credentials from the environment); frozen
        # per request by the signer, so credentials that rotate are picked up when they do.
        credentials = botocore.session.get_session().get_credentials()
        if credentials is None:
            raise ConfigError("no AWS credentials found to sign pushes with")
        self.signer = Signer(credentials, region=region_of(endpoint_url),
                             service=SIGNING_SERVICE,
                             host=host_header(parts.scheme, self._hostname, parts.port))
        self.path_prefix = parts.path + "/@connections/"
        self._idle: list[_KeepAliveConnection] = []  # append and pop are atomic

    def start(self, method: str, connection_id: str, body: bytes) -> _Request:
        """Send a request now; its answer is read by `finish()`."""
        return _Request(self, method, connection_id, body)

    def send_request(self, request: bytes,
                     deadline: float) -> tuple[_KeepAliveConnection, bool]:
        """Write one request: (its connection, whether that was kept alive from before). A
        kept-alive connection the server closed meanwhile is replaced at once."""
        while True:
            connection, reused, timeout_s = self._take(deadline)
            try:
                connection.send(request, timeout_s)
            except BaseException as error:
                connection.close()
                if reused and isinstance(error, _STALE_CONNECTION):
                    continue
                raise
            return connection, reused

    def read_answer(self, connection: _KeepAliveConnection) -> tuple[int, str]:
        """The answer to the request on `connection`: (status, x-amzn-ErrorType); the
        connection then goes back to the idle pool, unless the server closed it."""
        try:
            status, headers = connection.read_answer()
        except BaseException:
            connection.close()
            raise
        if connection.sock is not None and len(self._idle) < POOL_CONNECTIONS:
            self._idle.append(connection)
        else:
            connection.close()
        return status, headers.get("x-amzn-errortype", "").split(":")[0]

    def _take(self, deadline: float) -> tuple[_KeepAliveConnection, bool, float]:
        """An idle connection (reused: True) or a new one, and this attempt's read timeout."""
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("out of time")
        read_timeout = min(self.policy.read_timeout_s, left)
        try:
            return self._idle.pop(), True, read_timeout
        except IndexError:
            pass
        connection = _KeepAliveConnection(self._hostname, self._port, self._tls,
                                          min(self.policy.connect_timeout_s, left))
        return connection, False, read_timeout


class _Request:
    """One management-API request: its first attempt is sent when it is made, its answer read
    by `finish`, which makes the further attempts (after a backoff) when that one failed in a
    way a later one may not. Each attempt is signed anew (a fresh X-Amz-Date)."""

    def __init__(self, transport: _SignedTransport, method: str, connection_id: str,
                 body: bytes) -> None:
        self._transport = transport
        self._method, self._connection_id, self._body = method, connection_id, body
        self._path = transport.path_prefix + quote(connection_id, safe="")
        self._deadline = time.monotonic() + transport.policy.deadline_s
        self._sent: tuple[_KeepAliveConnection, bool] | None = None
        self._failure = ""
        self._send()

    def finish(self) -> bool:
        policy = self._transport.policy
        for attempt in range(policy.attempts):
            try:
                return self._answer()
            except _Retryable as failure:
                reason = str(failure)
            if attempt + 1 == policy.attempts:
                break
            pause = policy.backoff_s(attempt)
            if time.monotonic() + pause >= self._deadline:
                break
            time.sleep(pause)
            self._send()
        raise PushFailed(self._method, self._connection_id,
                         f"{reason} (gave up after {attempt + 1} attempt(s))")

    def _send(self) -> None:
        headers = self._transport.signer.headers(
            self._method, self._path, self._body,
            content_type="application/json" if self._body else None)
        request = request_bytes(self._method, self._path, headers, self._body)
        try:
            self._sent = self._transport.send_request(request, self._deadline)
        except OSError as error:  # refused, timeout, reset
            self._sent, self._failure = None, type(error).__name__

    def _answer(self) -> bool:
        """This attempt's verdict: True (2xx), False (410 gone), or `_Retryable`/`PushFailed`."""
        while True:
            if self._sent is None:
                raise _Retryable(self._failure)
            connection, reused = self._sent
            try:
                status, error_type = self._transport.read_answer(connection)
            except _STALE_CONNECTION as error:
                if not reused:
                    raise _Retryable(type(error).__name__) from None
                self._send()  # the server had closed it before our request: again, at once
                continue
            except OSError as error:  # timeout, reset, malformed
                raise _Retryable(type(error).__name__) from None
            break
        if status < 300:
            return True
        if status == 410:
            return False
        if status == 429 or status >= 500 or "Throttl" in error_type:
            raise _Retryable(f"HTTP {status} {error_type}".rstrip())
        raise PushFailed(self._method, self._connection_id, f"HTTP {status} {error_type}".rstrip())
