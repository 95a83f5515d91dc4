"""A stand-in for `app.py` that local_stack/lambdas.py workers can import: its one handler
does what the event asks (answer, raise, die, or sleep), to test the worker pool itself."""

from __future__ import annotations

import os
import time
from typing import Any


class FakeApp:
    websocket_handlers: dict[str, Any] = {}
    event_sources: list[Any] = []

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        if event.get("raise"):
            raise ValueError(event["raise"])
        if event.get("die"):
            os._exit(3)
        time.sleep(event.get("sleep_s", 0))
        return {"pid": os.getpid(), "echo": event.get("echo")}


app = FakeApp()
