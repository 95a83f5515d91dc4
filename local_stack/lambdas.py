"""Lambda containers as worker processes: each imports `app.py` once and runs one event at a
time, as a warm Lambda container does.

Processes, not threads: Chalice keeps `app.current_request` on the one shared `app`, so two
events at once in one interpreter read each other's requests. Workers reach the front process
(the management API) over HTTP through the app's push adapter, exactly like a deployed Lambda.
"""

from __future__ import annotations

import asyncio
import importlib
import multiprocessing
import signal
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

# Role names, as `.chalice/config.json` calls the functions Chalice makes.
API_HANDLER = "api_handler"
WEBSOCKET_ROUTES = {"$connect", "$default", "$disconnect"}

_handlers: dict[str, Any] = {}


class LocalLambdaContext:
    """What a handler may ask of its Lambda context."""

    def __init__(self, function_name: str, timeout_s: int = 30) -> None:
        self.function_name = function_name
        self.aws_request_id = str(uuid.uuid4())
        self.memory_limit_in_mb = 512
        self.invoked_function_arn = f"arn:aws:lambda:local:000000000000:function:{function_name}"
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def _load_app(module_name: str) -> None:
    """Worker initializer: import the app once, as a Lambda cold start does."""
    # Ctrl-C reaches the whole process group; the front process stops the workers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    module = importlib.import_module(module_name)
    app = module.app
    _handlers[API_HANDLER] = app
    for route_key, config in app.websocket_handlers.items():
        _handlers[route_key] = getattr(module, config.handler_string.rsplit(".", 1)[1])
    for source in app.event_sources:
        _handlers[source.name] = getattr(module, source.handler_string.rsplit(".", 1)[1])


def _invoke(function: str, event: dict[str, Any]) -> Any:
    return _handlers[function](event, LocalLambdaContext(function))


def scheduled_functions(module_name: str = "app") -> list[str]:
    """Names of the app's scheduled functions (read in the front process)."""
    app = importlib.import_module(module_name).app
    return [source.name for source in app.event_sources if hasattr(source, "schedule_expression")]


class LambdaPool:
    """A fixed pool of warm "containers"; a crashed one is replaced by a fresh pool."""

    def __init__(self, workers: int, module_name: str = "app") -> None:
        self._workers = workers
        self._module_name = module_name
        self._executor = self._new_executor()

    def _new_executor(self) -> ProcessPoolExecutor:
        # spawn, not fork: the front process runs an event loop and threads.
        return ProcessPoolExecutor(
            max_workers=self._workers, mp_context=multiprocessing.get_context("spawn"),
            initializer=_load_app, initargs=(self._module_name,),
        )

    def warm_up(self) -> None:
        """Start every worker now (their imports), not on the first request."""
        futures = [self._executor.submit(time.sleep, 0.05) for _ in range(self._workers)]
        for future in futures:
            future.result()

    def invoke_blocking(self, function: str, event: dict[str, Any]) -> Any:
        executor = self._executor
        try:
            return executor.submit(_invoke, function, event).result()
        except BrokenProcessPool:
            self._replace_broken(executor)
            raise

    async def invoke(self, function: str, event: dict[str, Any]) -> Any:
        # The worker's future awaited as it is: no thread of this process sits waiting on it
        # (one thread hop less per event than run_in_executor).
        executor = self._executor
        try:
            return await asyncio.wrap_future(executor.submit(_invoke, function, event))
        except BrokenProcessPool:
            self._replace_broken(executor)
            raise

    def _replace_broken(self, broken: ProcessPoolExecutor) -> None:
        """A fresh pool, once: every event in flight on the broken one fails the same way."""
        if self._executor is broken:
            self._executor = self._new_executor()

    def shutdown(self) -> None:
        """Stops the workers once the events they are running end."""
        self._executor.shutdown(wait=True, cancel_futures=True)

    def stop_now(self) -> None:
        """Stops the workers at once, cutting short what they run (as a Lambda timeout would):
        for a scheduled function's container, whose run may wait most of a minute."""
        executor = self._executor
        # (Python 3.14 has ProcessPoolExecutor.terminate_workers(); here, its processes, taken
        # before shutdown forgets them)
        processes = list((getattr(executor, "_processes", None) or {}).values())
        executor.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            process.terminate()
