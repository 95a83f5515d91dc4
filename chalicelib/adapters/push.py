"""The one push adapter: frames to WebSocket connections through API Gateway's management API.

Chalice configures its own client only inside WebSocket handlers and hard-codes AWS's URL;
this one serves every handler, route and the schedule, with the endpoint from configuration
(the local stack's `/local` or `https://{api-id}.execute-api.{region}.amazonaws.com/{stage}`).

Pushes are the hot path of a send (DESIGN.md, "Where a message's time goes"), so this adapter
does not use boto3's client: it signs each request with botocore's `SigV4Auth` and sends it on
one keep-alive urllib3 pool, which costs half the CPU per push. Both libraries are in the
Lambda runtime already.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

from chalicelib.errors import ConfigError

# The IAM action every management-API request needs (the stage's policy must grant it; the
# deploy tests read this constant, since no boto3 client call names it any more).
MANAGE_CONNECTIONS_ACTION = "execute-api:ManageConnections"
SIGNING_SERVICE = "execute-api"
# Sized for delivery.py's pool of 8 push threads: each keeps its own connection alive.
POOL_CONNECTIONS = 8


class Push(Protocol):
    def send(self, connection_id: str, frame: dict[str, Any]) -> bool:
        """Deliver one frame; False when the connection is gone (its row should go too)."""

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
        self._first_use = threading.Lock()  # delivery pushes from several threads at once
        self._transport: _SignedTransport | None = None

    def send(self, connection_id: str, frame: dict[str, Any]) -> bool:
        data = json.dumps(frame, ensure_ascii=False, separators=(",", ":")).encode()
        return self._management_api().request("POST", connection_id, data)

    def disconnect(self, connection_id: str) -> bool:
        return self._management_api().request("DELETE", connection_id, b"")

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
    when the connection is gone (410)."""

    def __init__(self, endpoint_url: str, policy: RetryPolicy) -> None:
        # Imported here, not at the top: a handler that never pushes never pays for them.
        import botocore.session
        import urllib3
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        self._urllib3, self._sigv4, self._aws_request = urllib3, SigV4Auth, AWSRequest
        self._region = region_of(endpoint_url)
        self._policy = policy
        # The usual chain (in Lambda: the role's credentials from the environment); frozen
        # per request below, so credentials that rotate are picked up when they do.
        self._credentials = botocore.session.get_session().get_credentials()
        if self._credentials is None:
            raise ConfigError("no AWS credentials found to sign pushes with")
        # The manager's one pool for the endpoint's host, asked for once: each request then
        # skips the manager's URL parsing and pool lookup.
        self._http = urllib3.PoolManager(num_pools=1, maxsize=POOL_CONNECTIONS, retries=False,
                                         ).connection_from_url(endpoint_url)
        parts = urlsplit(endpoint_url)
        self._origin = f"{parts.scheme}://{parts.netloc}"
        self._path_prefix = parts.path + "/@connections/"

    def request(self, method: str, connection_id: str, body: bytes) -> bool:
        path = self._path_prefix + quote(connection_id, safe="")
        policy = self._policy
        deadline = time.monotonic() + policy.deadline_s
        for attempt in range(policy.attempts):
            try:
                return self._attempt(method, connection_id, path, body, deadline)
            except _Retryable as failure:
                reason = str(failure)
            if attempt + 1 == policy.attempts:
                break
            pause = policy.backoff_s(attempt)
            if time.monotonic() + pause >= deadline:
                break
            time.sleep(pause)
        raise PushFailed(method, connection_id, f"{reason} (gave up after {attempt + 1} "
                                                "attempt(s))")

    def _attempt(self, method: str, connection_id: str, path: str, body: bytes,
                 deadline: float) -> bool:
        left = deadline - time.monotonic()
        if left <= 0:
            raise _Retryable("out of time")
        timeout = self._urllib3.Timeout(connect=min(self._policy.connect_timeout_s, left),
                                        read=min(self._policy.read_timeout_s, left))
        try:
            response = self._http.urlopen(
                method, path, body=body, headers=self._signed(method, self._origin + path, body),
                timeout=timeout, retries=False, redirect=False)
        except self._urllib3.exceptions.HTTPError as error:  # connect error, timeout, reset
            raise _Retryable(type(error).__name__) from None
        status = response.status
        if status < 300:
            return True
        error_type = response.headers.get("x-amzn-ErrorType", "").split(":")[0]
        if status == 410:
            return False
        if status == 429 or status >= 500 or "Throttl" in error_type:
            raise _Retryable(f"HTTP {status} {error_type}".rstrip())
        raise PushFailed(method, connection_id, f"HTTP {status} {error_type}".rstrip())

    def _signed(self, method: str, url: str, body: bytes) -> dict[str, str]:
        headers = {"Content-Type": "application/json"} if body else {}
        request = self._aws_request(method=method, url=url, data=body, headers=headers)
        self._sigv4(self._credentials.get_frozen_credentials(), SIGNING_SERVICE,
                    self._region).add_auth(request)
        return dict(request.headers.items())
