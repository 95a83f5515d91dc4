"""A bare aiohttp WebSocket server, the yardstick of bench/sockets_held.py: sockets opened as the
local stack's gateway opens them (same frame cap, autoping, no compression), each `ping` frame
answered with PROTOCOL's `pong`, nothing else. It imports aiohttp and the standard library only,
so its memory is aiohttp's and Python's, not ours.

    python -m bench.bare_websocket PORT     (serves ws://127.0.0.1:PORT/ws until stopped)
"""

from __future__ import annotations

import json
import resource
import sys
import time

from aiohttp import WSMsgType, web

MAX_FRAME_BYTES = 32 * 1024  # local_stack.websocket.MAX_FRAME_BYTES (not imported: see above)


async def socket_answering_pings(request: web.Request) -> web.WebSocketResponse:
    socket = web.WebSocketResponse(max_msg_size=MAX_FRAME_BYTES, autoping=True, compress=False)
    await socket.prepare(request)
    async for frame in socket:
        if frame.type == WSMsgType.TEXT:
            req = json.loads(frame.data).get("req")
            await socket.send_str(json.dumps({"type": "pong", "req": req,
                                              "server_time": time.time_ns() // 1_000_000}))
    return socket


def serve(port: int) -> None:
    # As local_stack.port.raise_open_file_limit does for the stack: one file per socket.
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    application = web.Application()
    application.router.add_get("/ws", socket_answering_pings)
    web.run_app(application, host="127.0.0.1", port=port, print=None, access_log=None)


if __name__ == "__main__":
    serve(int(sys.argv[1]))
