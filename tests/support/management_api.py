"""A stand-in for API Gateway's management API on a real local port, for the push adapter.

moto's version accepts posts to unknown ids and never answers GoneException, so it cannot
prove Gone handling; this one records every request and answers 410 + GoneException for ids
it does not hold, as AWS does.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

PREFIX = "/local/@connections/"


@dataclass(frozen=True)
class ManagementCall:
    method: str
    connection_id: str
    body: bytes
    signed: bool


class RecordingManagementApi:
    def __init__(self) -> None:
        self.live: set[str] = set()
        self.calls: list[ManagementCall] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}/local"

    def start(self) -> RecordingManagementApi:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def calls_to(self, connection_id: str, method: str | None = None) -> list[ManagementCall]:
        with self._lock:
            return [c for c in self.calls if c.connection_id == connection_id
                    and (method is None or c.method == method)]

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _answer(self, method: str) -> None:
                if not self.path.startswith(PREFIX):
                    self.send_response(404)
                    self.end_headers()
                    return
                connection_id = unquote(self.path[len(PREFIX):])
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                signed = self.headers.get("Authorization", "").startswith("AWS4-HMAC-SHA256")
                with api._lock:
                    live = connection_id in api.live
                    if live:
                        api.calls.append(ManagementCall(method, connection_id, body, signed))
                        if method == "DELETE":
                            api.live.discard(connection_id)
                if not live:
                    self._gone()
                elif method == "GET":
                    self._json(200, {"connectedAt": "2026-01-01T00:00:00Z"})
                else:
                    self.send_response(204 if method == "DELETE" else 200)
                    self.send_header("Content-Length", "0")
                    self.end_headers()

            def _gone(self) -> None:
                payload = json.dumps({"message": "Gone"}).encode()
                self.send_response(410)
                self.send_header("x-amzn-ErrorType", "GoneException")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def _json(self, status: int, value: object) -> None:
                payload = json.dumps(value).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_POST(self) -> None:
                self._answer("POST")

            def do_DELETE(self) -> None:
                self._answer("DELETE")

            def do_GET(self) -> None:
                self._answer("GET")

        return Handler
