"""Lambda containers as worker processes: each imports `app.py` once and runs one event at a
time, as a warm Lambda container does.

Processes, not threads: Chalice keeps `app.current_request` on the one shared `app`, so two
events at once in one interpreter read each other's requests. Workers reach the front process
(the management API) over HTTP through the app's push adapter, exactly like a deployed Lambda.

Each worker is a process with one pipe to the front process, whose event loop reads the
answers itself (`add_reader`). Not `ProcessPoolExecutor`: its manager and feeder threads cost
0.5–0.9 ms of CPU per event and a thread hop each way (measured: 0.18–0.22 ms on pipes).
"""

from __future__ import annotations

import asyncio
import importlib
import multiprocessing
import signal
import time
import uuid
from multiprocessing.connection import Connection
from typing import Any

from local_stack.ledger import SecretLedger, secrets_in_event, secrets_in_reply

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
    """Import the app once, as a Lambda cold start does."""
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


class WorkerDied(Exception):
    """The worker running an event exited (or was stopped) before answering."""


_READY = "ready"  # a worker's first message: the app is imported


def _serve(pipe: Connection, module_name: str) -> None:
    """A worker: import the app, say so, then run each event the pipe brings, one at a time."""
    # Ctrl-C reaches the whole process group; the front process stops the workers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _load_app(module_name)
    ledger = SecretLedger.from_env()
    pipe.send(_READY)
    while True:
        try:
            request = pipe.recv()
        except (EOFError, OSError):  # the front process is gone
            return
        if request is None:
            return
        try:
            answer: tuple[str, Any] = ("ok", _invoke(*request))
        except Exception as exc:  # noqa: BLE001 - raised again in the front process
            answer = ("raised", exc)
        if ledger is not None:
            ledger.note(secrets_in_event(request[1]) + secrets_in_reply(answer[1]))
        try:
            pipe.send(answer)
        except Exception as exc:  # noqa: BLE001 - an answer or exception that cannot pickle
            pipe.send(("raised", RuntimeError(f"unpicklable answer: {exc!r}")))



class _Container:
    """One worker process, its pipe, and the event it runs (if any)."""

    def __init__(self, module_name: str) -> None:
        context = multiprocessing.get_context("spawn")  # not fork: this process has threads
        self.pipe, child_end = context.Pipe()
        self.process = context.Process(target=_serve, args=(child_end, module_name),
                                       daemon=True)
        self.process.start()
        child_end.close()
        self.ready = False
        self.dead = False
        self.running: asyncio.Future[Any] | None = None


class LambdaPool:
    """A fixed pool of warm "containers" fed by the event loop; a worker that dies fails only
    the event it ran and is replaced by a fresh one."""

    def __init__(self, workers: int, module_name: str = "app") -> None:
        self._module_name = module_name
        # Started now: they import the app while the rest starts up.
        self._containers = [_Container(module_name) for _ in range(workers)]
        self._loop: asyncio.AbstractEventLoop | None = None
        self._idle: asyncio.Queue[_Container] | None = None

    def warm_up(self) -> None:
        """Wait until every worker has imported the app (before the event loop runs)."""
        assert self._loop is None, "warm_up() is for before the event loop takes the pool"
        for container in self._containers:
            if not container.ready:
                if container.pipe.recv() != _READY:
                    raise RuntimeError("a worker spoke before it was ready")
                container.ready = True

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Let `loop` read the workers' answers (once, from inside it)."""
        if self._loop is not None:
            return
        self._loop, self._idle = loop, asyncio.Queue()
        for container in self._containers:
            self._watch(container)

    def _watch(self, container: _Container) -> None:
        assert self._loop is not None and self._idle is not None
        if container.ready:
            self._idle.put_nowait(container)
        self._loop.add_reader(container.pipe.fileno(), self._answered, container)

    def _answered(self, container: _Container) -> None:
        assert self._idle is not None
        try:
            # The selector is level-triggered: a loop iteration cut short (Ctrl-C's graceful
            # exit is raised from a callback) leaves a readiness event queued twice, and a
            # blocking recv on a pipe already read would hang the loop.
            if not container.pipe.poll():
                return
            message = container.pipe.recv()
        except (EOFError, OSError):
            self._replace(container)
            return
        if message == _READY:
            container.ready = True
        else:
            outcome, value = message
            running, container.running = container.running, None
            if running is not None and not running.done():
                if outcome == "ok":
                    running.set_result(value)
                else:
                    running.set_exception(value)
        self._idle.put_nowait(container)

    def _replace(self, dead: _Container) -> None:
        """A worker that died: fail its event, and start another in its place."""
        assert self._loop is not None
        if dead.dead:
            return
        dead.dead = True  # it may still wait in the idle queue: invoke skips it
        self._loop.remove_reader(dead.pipe.fileno())
        dead.pipe.close()
        if dead.running is not None and not dead.running.done():
            dead.running.set_exception(WorkerDied(f"worker {dead.process.pid} died"))
        if dead in self._containers:
            fresh = _Container(self._module_name)
            self._containers[self._containers.index(dead)] = fresh
            self._watch(fresh)

    async def invoke(self, function: str, event: dict[str, Any]) -> Any:
        """Run `function` on `event` in the next free worker; its answer, or what it raised."""
        self.attach(asyncio.get_running_loop())
        assert self._loop is not None and self._idle is not None
        container = await self._idle.get()
        while container.dead:
            container = await self._idle.get()
        container.running = running = self._loop.create_future()
        try:
            container.pipe.send((function, event))
        except OSError:
            self._replace(container)
        return await running

    def invoke_blocking(self, function: str, event: dict[str, Any]) -> Any:
        """`invoke` from a thread other than the event loop's (REST requests run in one)."""
        if self._loop is None:
            raise RuntimeError("the pool is not attached to an event loop yet")
        return asyncio.run_coroutine_threadsafe(self.invoke(function, event), self._loop).result()

    def shutdown(self) -> None:
        """Stops the workers once the events they are running end."""
        containers, self._containers = self._containers, []
        for container in containers:
            try:
                container.pipe.send(None)
            except OSError:
                pass
        for container in containers:
            container.process.join(timeout=10)
            if container.process.is_alive():
                container.process.terminate()

    def stop_now(self) -> None:
        """Stops the workers at once, cutting short what they run (as a Lambda timeout would):
        for a scheduled function's container, whose run may wait most of a minute."""
        containers, self._containers = self._containers, []
        for container in containers:
            container.process.terminate()
        for container in containers:
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(container.pipe.fileno())
            if container.running is not None and not container.running.done():
                container.running.set_exception(WorkerDied("stopped"))
            container.process.join(timeout=5)
            container.pipe.close()
