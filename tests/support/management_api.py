"""A stand-in for API Gateway's management API on a real local port, for the push adapter.

moto's version accepts posts to unknown ids and never answers GoneException, so it cannot
prove Gone handling; this one records every request and answers 410 + GoneException for ids
it does not hold, as AWS does. It speaks HTTP/1.1 keep-alive (as API Gateway does), counts the
client ports it was reached from, and can be told to fail chosen calls the way API Gateway
does: `fail(connection_id, status=429, times=2)` or stall past a read timeout with `delay_s`.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

PREFIX = "/local/@connections/"
# The x-amzn-ErrorType API Gateway sends with each status a fault may answer.
ERROR_TYPES = {410: "GoneException", 429: "LimitExceededException",
               500: "InternalServerErrorException", 502: "BadGatewayException",
               403: "ForbiddenException", 400: "BadRequestException"}


@dataclass(frozen=True)
class ManagementCall:
    method: str
    connection_id: str
    body: bytes
    signed: bool
    authorization: str = ""
    status: int = 200
    client_port: int = 0
    path: str = ""  # as requested, percent-encoding and all
    headers: tuple[tuple[str, str], ...] = ()  # as received, for checking the signature


@dataclass
class Fault:
    """The next `times` calls to `connection_id` wait `delay_s`, then answer `status` (or
    normally, when `status` is None)."""

    status: int | None
    times: int
    delay_s: float


class RecordingManagementApi:
    def __init__(self) -> None:
        self.live: set[str] = set()
        self.calls: list[ManagementCall] = []  # answered 2xx, to live connections
        self.attempts: list[ManagementCall] = []  # every request, whatever its answer
        self._faults: dict[str, Fault] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}/local"

    def start(self) -> RecordingManagementApi:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def fail(self, connection_id: str, *, status: int | None, times: int = 1,
             delay_s: float = 0.0) -> None:
        with self._lock:
            self._faults[connection_id] = Fault(status, times, delay_s)

    def calls_to(self, connection_id: str, method: str | None = None) -> list[ManagementCall]:
        with self._lock:
            return [c for c in self.calls if c.connection_id == connection_id
                    and (method is None or c.method == method)]

    def attempts_to(self, connection_id: str) -> list[ManagementCall]:
        with self._lock:
            return [c for c in self.attempts if c.connection_id == connection_id]

    def client_ports(self) -> set[int]:
        """The distinct client ports requests came from: one per TCP connection."""
        with self._lock:
            return {c.client_port for c in self.attempts}

    def _take_fault(self, connection_id: str) -> Fault | None:
        with self._lock:
            fault = self._faults.get(connection_id)
            if fault is None:
                return None
            fault.times -= 1
            if fault.times <= 0:
                del self._faults[connection_id]
            return fault

    def _answer(self, method: str, connection_id: str, call: ManagementCall) -> int:
        """The status to answer. The call is recorded when it arrives, then a fault's delay
        holds the answer back."""
        fault = self._take_fault(connection_id)
        with self._lock:
            if fault is not None and fault.status is not None:
                status = fault.status
            elif connection_id not in self.live:
                status = 410
            else:
                status = {"GET": 200, "POST": 200, "DELETE": 204}[method]
                self.calls.append(call)
                if method == "DELETE":
                    self.live.discard(connection_id)
            self.attempts.append(replace(call, status=status))
        if fault is not None:
            time.sleep(fault.delay_s)
        return status

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, so connection reuse can be counted

            def log_message(self, *args: object) -> None:
                pass

            def _handle(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if not self.path.startswith(PREFIX):
                    self._reply(404, b"")
                    return
                connection_id = unquote(self.path[len(PREFIX):])
                authorization = self.headers.get("Authorization", "")
                call = ManagementCall(method, connection_id, body,
                                      authorization.startswith("AWS4-HMAC-SHA256"),
                                      authorization, client_port=self.client_address[1],
                                      path=self.path, headers=tuple(self.headers.items()))
                status = api._answer(method, connection_id, call)
                try:
                    if status == 200 and method == "GET":
                        self._reply(200, json.dumps({"connectedAt": "2026-01-01T00:00:00Z"})
                                    .encode())
                    elif status < 300:
                        self._reply(status, b"")
                    else:
                        self._reply(status, json.dumps({"message": None}).encode(),
                                    ERROR_TYPES.get(status, "UnknownError"))
                except OSError:
                    pass  # the client gave up waiting (a stalled call)

            def _reply(self, status: int, payload: bytes, error_type: str = "") -> None:
                self.send_response(status)
                if error_type:
                    self.send_header("x-amzn-ErrorType", error_type)
                if payload:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_POST(self) -> None:
                self._handle("POST")

            def do_DELETE(self) -> None:
                self._handle("DELETE")

            def do_GET(self) -> None:
                self._handle("GET")

        return Handler
