"""The one push adapter: frames to WebSocket connections through API Gateway's management API.

Chalice configures its own client only inside WebSocket handlers and hard-codes AWS's URL;
this one serves every handler, route and the schedule, with the endpoint from configuration
(the local stack's `/local` or `https://{api-id}.execute-api.{region}.amazonaws.com/{stage}`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Protocol

from chalicelib.errors import ConfigError


class Push(Protocol):
    def send(self, connection_id: str, frame: dict[str, Any]) -> bool:
        """Deliver one frame; False when the connection is gone (its row should go too)."""

    def disconnect(self, connection_id: str) -> bool:
        """Close a connection; False when it was already gone."""


class ApiGatewayPush:
    """boto3's `apigatewaymanagementapi`, one client per container, made on first use."""

    def __init__(self, endpoint_url: str | None = None, *,
                 resolve_endpoint: Callable[[], str | None] | None = None,
                 client: Any = None) -> None:
        """`endpoint_url`, or `resolve_endpoint` called on the first push (a deployed stage reads
        it from SSM, and a handler that never pushes never asks)."""
        self._endpoint_url = endpoint_url
        self._resolve_endpoint = resolve_endpoint
        self._client = client

    def send(self, connection_id: str, frame: dict[str, Any]) -> bool:
        data = json.dumps(frame, ensure_ascii=False, separators=(",", ":")).encode()
        client = self._management_api()
        try:
            client.post_to_connection(ConnectionId=connection_id, Data=data)
        except client.exceptions.GoneException:
            return False
        return True

    def disconnect(self, connection_id: str) -> bool:
        client = self._management_api()
        try:
            client.delete_connection(ConnectionId=connection_id)
        except client.exceptions.GoneException:
            return False
        return True

    def _management_api(self) -> Any:
        if self._client is None:
            if not self._endpoint_url and self._resolve_endpoint is not None:
                self._endpoint_url = self._resolve_endpoint()
            if not self._endpoint_url:
                raise ConfigError("WS_MANAGEMENT_ENDPOINT or WS_PARAMETER_PREFIX must be set "
                                  "to push to connections")
            import boto3
            from botocore.config import Config

            self._client = boto3.client(
                "apigatewaymanagementapi",
                endpoint_url=self._endpoint_url,
                # A push is one short request: fail fast, and let `sync` recover what is lost.
                config=Config(connect_timeout=2, read_timeout=5,
                              retries={"max_attempts": 2, "mode": "standard"}),
            )
        return self._client
