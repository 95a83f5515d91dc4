"""The one push adapter: frames to WebSocket connections through API Gateway's management API.

Chalice configures its own client only inside WebSocket handlers and hard-codes AWS's URL;
this one serves every handler, route and the schedule, with the endpoint from configuration
(the local stack's `/local` or `https://{api-id}.execute-api.{region}.amazonaws.com/{stage}`).

Pushes are the hot path of a send (DESIGN.md, "Where a message's time goes"), so this adapter
uses neither boto3's client (1.4 ms of CPU a push here) nor botocore's `SigV4Auth` on urllib3
(0.75 ms): it signs with `sigv4.Signer` (botocore's signature, byte for byte, tested side by
side) and sends on the standard library's keep-alive `http.client` connections, ≈ 0.2 ms.
Credentials still come from botocore's chain.
"""

from __future__ import annotations

import http.client
import json
import os
import random
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


# What a kept-alive connection the server has closed meanwhile raises on its next request.
_STALE_CONNECTION = (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected)


class _HeaderLines:
    """A response's header block as plain lines in a dict (lower-cased names), offering the
    two lookups `http.client` makes of it (`get`, `get_all`)."""

    def __init__(self, lines: list[bytes]) -> None:
        self._values: dict[str, list[str]] = {}
        for line in lines:
            name, colon, value = line.decode("iso-8859-1").partition(":")
            if colon:
                self._values.setdefault(name.strip().lower(), []).append(value.strip())

    def get(self, name: str, default: str | None = None) -> str | None:
        values = self._values.get(name.lower())
        return ", ".join(values) if values else default

    def get_all(self, name: str, failobj: Any = None) -> list[str] | Any:
        return self._values.get(name.lower()) or failobj

    def items(self) -> list[tuple[str, str]]:
        return [(name, value) for name, values in self._values.items() for value in values]


class _ManagementApiResponse(http.client.HTTPResponse):
    """`http.client`'s response, its header block read as plain lines instead of through the
    `email` package's parser, which was a tenth of a push's CPU (py-spy, in the local stack's
    workers). Framing (Content-Length, chunked, Connection: close) is decided as `begin` does.
    """

    def begin(self) -> None:
        if self.headers is not None:
            return
        while True:
            version, status, reason = self._read_status()  # type: ignore[attr-defined]
            if status != http.client.CONTINUE:
                break
            http.client._read_headers(self.fp)  # type: ignore[attr-defined]  # a 100's
        if not version.startswith("HTTP/1."):
            raise http.client.UnknownProtocol(version)
        self.code = self.status = status
        self.reason = reason.strip()
        self.version = 10 if version == "HTTP/1.0" else 11
        headers = _HeaderLines(http.client._read_headers(self.fp))  # type: ignore[attr-defined]
        self.headers = self.msg = headers  # type: ignore[assignment]
        self.chunked = (headers.get("transfer-encoding") or "").lower() == "chunked"
        self.chunk_left = None
        self.will_close = self._check_close()  # type: ignore[attr-defined]
        self.length = None
        length = headers.get("content-length")
        if length and length.isdigit() and not self.chunked:
            self.length = int(length)
        if status in (204, 304) or 100 <= status < 200 or self._method == "HEAD":
            self.length = 0
        if not self.will_close and not self.chunked and self.length is None:
            self.will_close = True  # no framing: the body runs to the close


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
        self._idle: list[http.client.HTTPConnection] = []  # append and pop are atomic

    def start(self, method: str, connection_id: str, body: bytes) -> _Request:
        """Send a request now; its answer is read by `finish()`."""
        return _Request(self, method, connection_id, body)

    def send_request(self, method: str, path: str, body: bytes, headers: dict[str, str],
                     deadline: float) -> tuple[http.client.HTTPConnection, bool]:
        """Write one request: (its connection, whether that was kept alive from before). A
        kept-alive connection the server closed meanwhile is replaced at once."""
        while True:
            connection, reused = self._take(deadline)
            try:
                connection.request(method, path, body=body, headers=headers)
            except BaseException as error:
                connection.close()
                if reused and isinstance(error, _STALE_CONNECTION):
                    continue
                raise
            return connection, reused

    def read_answer(self, connection: http.client.HTTPConnection) -> tuple[int, str]:
        """The answer to the request on `connection`: (status, x-amzn-ErrorType); the
        connection then goes back to the idle pool, unless the server is closing it."""
        try:
            response = connection.getresponse()
            response.read()  # all of it, or the connection cannot carry the next request
        except BaseException:
            connection.close()
            raise
        if response.will_close or len(self._idle) >= POOL_CONNECTIONS:
            connection.close()
        else:
            self._idle.append(connection)
        return response.status, (response.getheader("x-amzn-ErrorType") or "").split(":")[0]

    def _take(self, deadline: float) -> tuple[http.client.HTTPConnection, bool]:
        """An idle connection (reused: True) or a new one, with this attempt's timeouts."""
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("out of time")
        read_timeout = min(self.policy.read_timeout_s, left)
        try:
            connection = self._idle.pop()
        except IndexError:
            pass
        else:
            if connection.sock is not None:
                connection.sock.settimeout(read_timeout)
                return connection, True
        connect_timeout = min(self.policy.connect_timeout_s, left)
        if self._tls is not None:
            connection = http.client.HTTPSConnection(self._hostname, self._port,
                                                     timeout=connect_timeout,
                                                     context=self._tls)
        else:
            connection = http.client.HTTPConnection(self._hostname, self._port,
                                                    timeout=connect_timeout)
        connection.response_class = _ManagementApiResponse
        connection.connect()
        connection.sock.settimeout(read_timeout)
        return connection, False


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
        self._sent: tuple[http.client.HTTPConnection, bool] | None = None
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
        try:
            self._sent = self._transport.send_request(self._method, self._path, self._body,
                                                      headers, self._deadline)
        except (OSError, http.client.HTTPException) as error:  # refused, timeout, reset
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
            except (OSError, http.client.HTTPException) as error:
                raise _Retryable(type(error).__name__) from None
            break
        if status < 300:
            return True
        if status == 410:
            return False
        if status == 429 or status >= 500 or "Throttl" in error_type:
            raise _Retryable(f"HTTP {status} {error_type}".rstrip())
        raise PushFailed(self._method, self._connection_id, f"HTTP {status} {error_type}".rstrip())
