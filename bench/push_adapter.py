"""CPU per push: boto3's `apigatewaymanagementapi` client (the adapter before issue 20),
botocore's SigV4Auth on a keep-alive urllib3 pool (the adapter until 2026-12-01) and the
adapter as it is (`sigv4.Signer` and its own HTTP/1.1 on kept-alive sockets), all posting the same
frame to a local management API in another process. CPU is the pushing thread's own
(`time.thread_time`), so the server's work is not counted. BENCH_QUICK=1: a few seconds."""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from collections.abc import Callable

from bench.report import emit
from chalicelib.adapters.push import ApiGatewayPush

PUSHES = 200 if os.environ.get("BENCH_QUICK") else 3_000
WARM_UP = 20
CONNECTION_ID = "L0SM9cOFvHcCIhw="
FRAME = {"type": "message", "conversation_id": "01JCONVERSATION0000000000", "seq": 42,
         "sender_id": "01JSENDER00000000000000000", "body": "hello " * 20,
         "created_at": 1_767_225_600_000}


def _serve(ready: multiprocessing.Queue) -> None:
    from tests.support.management_api import RecordingManagementApi

    api = RecordingManagementApi().start()
    api.live.add(CONNECTION_ID)
    ready.put(api.endpoint)
    while True:
        time.sleep(3600)


def boto3_push(endpoint: str) -> Callable[[], None]:
    """The adapter as it was: one boto3 client per container, same timeouts and retries."""
    import boto3
    from botocore.config import Config

    client = boto3.client("apigatewaymanagementapi", endpoint_url=endpoint,
                          config=Config(connect_timeout=2, read_timeout=5,
                                        retries={"max_attempts": 2, "mode": "standard"}))

    def push() -> None:
        data = json.dumps(FRAME, ensure_ascii=False, separators=(",", ":")).encode()
        client.post_to_connection(ConnectionId=CONNECTION_ID, Data=data)

    return push


def sigv4auth_urllib3_push(endpoint: str) -> Callable[[], None]:
    """The adapter as it was until 2026-12-01 (without its retries: one attempt each)."""
    import botocore.session
    import urllib3
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest

    credentials = botocore.session.get_session().get_credentials()
    http = urllib3.PoolManager(num_pools=1, maxsize=8, retries=False).connection_from_url(
        endpoint)
    url = f"{endpoint}/@connections/{CONNECTION_ID.replace('=', '%3D')}"
    path = url[url.index("/", len("http://")):]

    def push() -> None:
        data = json.dumps(FRAME, ensure_ascii=False, separators=(",", ":")).encode()
        request = AWSRequest(method="POST", url=url, data=data,
                             headers={"Content-Type": "application/json"})
        SigV4Auth(credentials.get_frozen_credentials(), "execute-api",
                  "us-east-1").add_auth(request)
        response = http.urlopen("POST", path, body=data, headers=dict(request.headers.items()),
                                retries=False, redirect=False)
        assert response.status == 200

    return push


def lean_push(endpoint: str) -> Callable[[], None]:
    adapter = ApiGatewayPush(endpoint)

    def push() -> None:
        assert adapter.send(CONNECTION_ID, FRAME)

    return push


def measure(name: str, push: Callable[[], None]) -> dict[str, object]:
    for _ in range(WARM_UP):
        push()
    cpu, wall = time.thread_time(), time.perf_counter()
    for _ in range(PUSHES):
        push()
    cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
    return {"adapter": name, "pushes": PUSHES, "cpu_ms_per_push": round(cpu / PUSHES * 1000, 3),
            "wall_ms_per_push": round(wall / PUSHES * 1000, 3)}


def main() -> None:
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    context = multiprocessing.get_context("spawn")
    ready = context.Queue()
    server = context.Process(target=_serve, args=(ready,), daemon=True)
    server.start()
    try:
        endpoint = ready.get(timeout=30)
        rows = [measure("boto3 client", boto3_push(endpoint)),
                measure("SigV4Auth + urllib3 pool", sigv4auth_urllib3_push(endpoint)),
                measure("sigv4.Signer + own HTTP/1.1 (now)", lean_push(endpoint))]
    finally:
        server.terminate()
        server.join()
    rows.append({"adapter": "ratio (now / boto3)", "pushes": "",
                 "cpu_ms_per_push": round(rows[2]["cpu_ms_per_push"]
                                          / rows[0]["cpu_ms_per_push"], 2),
                 "wall_ms_per_push": round(rows[2]["wall_ms_per_push"]
                                           / rows[0]["wall_ms_per_push"], 2)})
    emit("push adapter, CPU per push to a local management API (one thread, keep-alive)", rows)


if __name__ == "__main__":
    main()
