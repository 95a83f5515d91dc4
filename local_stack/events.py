"""API Gateway's event shapes, built from real HTTP requests and WebSocket frames.

REST events start from Chalice's own `chalice.local` converter and add what API Gateway
sends and it leaves out (request id, stage, the caller's real address). WebSocket events
follow AWS's documented `$connect` / `$default` / `$disconnect` examples.
"""

from __future__ import annotations

import os
import time
import uuid
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from chalice.local import LambdaEventConverter

STAGE = "api"
API_ID = "local"


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@lru_cache(maxsize=4)
def _request_time_of_second(epoch_s: int) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%d/%b/%Y:%H:%M:%S +0000")


def _request_time(epoch_ms: int) -> str:
    # Formatted once per second, not once per event: the string only changes that often.
    return _request_time_of_second(epoch_ms // 1000)


# The caller's address travels from the front to the converter in this header, which the
# gateway strips from anything a client sends, so nobody can choose their own sourceIp.
SOURCE_IP_HEADER = "x-ephemera-local-source-ip"


class RestEventConverter(LambdaEventConverter):
    """Chalice's converter, plus the request context fields API Gateway fills in."""

    def __init__(self, *args: Any, domain_name: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._domain_name = domain_name

    def create_lambda_event(self, method: str, path: str, headers: dict[str, str],
                            body: bytes | None = None) -> dict[str, Any]:
        headers = dict(headers)
        source_ip = headers.pop(SOURCE_IP_HEADER, self.LOCAL_SOURCE_IP)
        event = super().create_lambda_event(method, path, headers, body)
        now = _now_ms()
        event["requestContext"].update({
            "requestId": str(uuid.uuid4()), "stage": STAGE, "apiId": API_ID,
            "domainName": self._domain_name, "requestTimeEpoch": now,
            "requestTime": _request_time(now),
            "identity": {"sourceIp": source_ip,
                         "userAgent": event["headers"].get("user-agent")},
        })
        query = event.get("multiValueQueryStringParameters")
        event["queryStringParameters"] = (
            {key: values[-1] for key, values in query.items()} if query else None)
        return event


class WebsocketEventConverter:
    """`$connect`, `$default` and `$disconnect` events for one API."""

    def __init__(self, domain_name: str) -> None:
        self._domain_name = domain_name

    def connect(self, connection_id: str, connected_at: int, *, headers: dict[str, str],
                query: dict[str, list[str]], source_ip: str) -> dict[str, Any]:
        context = self._context("$connect", "CONNECT", connection_id, connected_at, source_ip,
                                headers.get("user-agent"))
        return {
            "headers": headers,
            "multiValueHeaders": {key: [value] for key, value in headers.items()},
            "queryStringParameters": {k: v[-1] for k, v in query.items()} if query else None,
            "multiValueQueryStringParameters": query or None,
            "requestContext": context,
            "isBase64Encoded": False,
        }

    def message(self, connection_id: str, connected_at: int, body: str, *,
                source_ip: str) -> dict[str, Any]:
        context = self._context("$default", "MESSAGE", connection_id, connected_at, source_ip)
        context["messageId"] = os.urandom(8).hex()
        return {"requestContext": context, "body": body, "isBase64Encoded": False}

    def disconnect(self, connection_id: str, connected_at: int, *, status_code: int,
                   reason: str, source_ip: str) -> dict[str, Any]:
        context = self._context("$disconnect", "DISCONNECT", connection_id, connected_at,
                                source_ip)
        context.update({"disconnectStatusCode": status_code, "disconnectReason": reason})
        return {"headers": {"Host": self._domain_name}, "requestContext": context,
                "isBase64Encoded": False}

    def _context(self, route_key: str, event_type: str, connection_id: str, connected_at: int,
                 source_ip: str, user_agent: str | None = None) -> dict[str, Any]:
        now = _now_ms()
        return {
            "routeKey": route_key, "eventType": event_type, "messageDirection": "IN",
            "extendedRequestId": os.urandom(16).hex(), "requestId": str(uuid.uuid4()),
            "requestTime": _request_time(now), "requestTimeEpoch": now,
            "connectedAt": connected_at, "connectionId": connection_id,
            "domainName": self._domain_name, "stage": STAGE, "apiId": API_ID,
            "identity": {"sourceIp": source_ip, "userAgent": user_agent},
        }


def scheduled_event(rule_name: str) -> dict[str, Any]:
    """An EventBridge "Scheduled Event", as a `Rate(...)` schedule delivers it."""
    return {
        "version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event",
        "source": "aws.events", "account": "000000000000",
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "region": "local",
        "resources": [f"arn:aws:events:local:000000000000:rule/{rule_name}"], "detail": {},
    }
