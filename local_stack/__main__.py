"""`python -m local_stack`: take HOST:PORT, migrate the database, start the workers, serve.

The console carries one line per request, frame, connect and close. `EPHEMERA_DEBUG=1` (`make run
DEBUG=1`) adds what the workers say themselves: their JSON logs from INFO, their metrics as the
EMF lines CloudWatch would get, and library warnings."""

from __future__ import annotations

import logging
import os
import secrets
import socket
import sys
import time
import warnings
from pathlib import Path

from local_stack.port import PortUnavailable, address_from_env, bind, raise_open_file_limit

STATE_DIR = Path(".ephemera")
DEBUG_OFF = frozenset({"", "0", "false", "no", "off"})


def debug_enabled() -> bool:
    return os.environ.get("EPHEMERA_DEBUG", "").strip().lower() not in DEBUG_OFF


def _env_int(name: str, default: int, *, minimum: int = 0) -> int:
    try:
        value = int(os.environ.get(name) or default)
    except ValueError:
        sys.exit(f"{name} must be a whole number")
    if value < minimum:
        sys.exit(f"{name} must be at least {minimum}")
    return value


def _schedule_on() -> bool:
    """LOCAL_SCHEDULE=off starts the stack without its scheduled functions: nothing expires,
    which is how a test proves that `ephemera smoke` notices a broken cleanup."""
    value = os.environ.get("LOCAL_SCHEDULE", "on").strip().lower()
    if value not in ("on", "off"):
        sys.exit("LOCAL_SCHEDULE must be on or off")
    return value == "on"


def _local_jwt_secret() -> str:
    """The local stage's signing secret: JWT_SECRET, or one made once and kept out of git."""
    if os.environ.get("JWT_SECRET"):
        return os.environ["JWT_SECRET"]
    path = STATE_DIR / "jwt_secret"
    if not path.exists():
        STATE_DIR.mkdir(exist_ok=True)
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()


def _default(name: str, value: str) -> None:
    """`name` = `value` unless set to something (an empty value counts as unset)."""
    if not os.environ.get(name):
        os.environ[name] = value


def prepare_environment(host: str, port: int, *, debug: bool = False) -> None:
    """What the deployed functions get from their configuration, pointed at this stack, and how
    much the workers say on the console. The worker processes inherit it."""
    from chalicelib.services import fanout
    from local_stack import queue

    env = os.environ
    env["STAGE"] = "local"
    env.setdefault("DATABASE_URL", f"sqlite:///{STATE_DIR / 'local.db'}")
    env["JWT_SECRET"] = _local_jwt_secret()
    env["WS_PUBLIC_URL"] = f"ws://{host}:{port}/ws"
    env["WS_MANAGEMENT_ENDPOINT"] = f"http://{host}:{port}/local"
    env["FANOUT_QUEUE_URL"] = (f"http://{host}:{port}/local/sqs/{queue.ACCOUNT}/"
                               f"{fanout.queue_name('local')}")
    env.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    env.setdefault("AWS_ACCESS_KEY_ID", "local")
    env.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    # The stack prints one line per event; the workers only their errors, unless debugging.
    _default("POWERTOOLS_LOG_LEVEL", "INFO" if debug else "ERROR")
    _default("POWERTOOLS_METRICS_DISABLED", "false" if debug else "true")
    _default("PYTHONWARNINGS", "default" if debug else "ignore")


def trace_memory_if_asked() -> None:
    """EPHEMERA_TRACEMALLOC=<frames> (a profiling aid, slow): trace every allocation, and on
    SIGUSR1 print the lines of code holding the most memory now, with the call paths of the
    biggest (bench/sockets_held.py --tracemalloc sends it while the sockets are held). Sizes and
    places only: no allocated value is ever printed."""
    frames = os.environ.get("EPHEMERA_TRACEMALLOC", "").strip()
    if not frames:
        return
    import signal
    import tracemalloc

    tracemalloc.start(int(frames))

    def report(_signal: int, _frame: object) -> None:
        snapshot = tracemalloc.take_snapshot()
        print("tracemalloc: the 30 lines holding the most memory", flush=True)
        for stat in snapshot.statistics("lineno")[:30]:
            print(f"tracemalloc: {stat}", flush=True)
        for stat in snapshot.statistics("traceback")[:5]:
            print(f"tracemalloc: {stat.size // 1024} KiB in {stat.count} blocks from", flush=True)
            for line in stat.traceback.format():
                print(f"tracemalloc:   {line}", flush=True)

    signal.signal(signal.SIGUSR1, report)


def take_address() -> tuple[str, int, list[socket.socket]]:
    """HOST:PORT, bound before anything else happens, or the process ends with one sentence."""
    try:
        host, port = address_from_env()
        return host, port, bind(host, port)
    except PortUnavailable as unavailable:
        sys.exit(str(unavailable))


def set_up_console() -> bool:
    """One line per event; True when EPHEMERA_DEBUG asks for everything else too."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    debug = debug_enabled()
    if not debug:
        warnings.simplefilter("ignore")  # this process's; the workers' through PYTHONWARNINGS
    return debug


def main() -> None:
    started = time.monotonic()
    trace_memory_if_asked()
    host, port, sockets = take_address()
    raise_open_file_limit()  # one file per socket held; the workers inherit the limit
    prepare_environment(host, port, debug=set_up_console())
    workers = _env_int("LOCAL_WORKERS", 4)
    log = logging.getLogger("local_stack")
    database_kind = os.environ["DATABASE_URL"].split(":", 1)[0]  # never the rest: a password
    log.info("starting: database %s, %d workers", database_kind, workers)

    from aiohttp import web

    from chalicelib import bootstrap
    from chalicelib.storage.migrate import migrate
    from local_stack.lambdas import LambdaPool
    from local_stack.server import StackSettings, build_app
    from local_stack.websocket import MAX_QUEUED_FRAMES

    config = bootstrap.get_config()
    applied = migrate(bootstrap.get_db().engine)
    settings = StackSettings(
        host=host, port=port, workers=workers,
        expiry_interval_s=config.expiry_interval_s, idle_timeout_s=config.ws_idle_timeout_s,
        max_connection_s=config.ws_max_connection_s,
        max_queued_frames=_env_int("LOCAL_MAX_QUEUED_FRAMES", MAX_QUEUED_FRAMES, minimum=1),
        schedule=_schedule_on(),
        fanout_workers=_env_int("LOCAL_FANOUT_WORKERS", 2, minimum=1),
        queue_visibility_s=_env_int("LOCAL_QUEUE_VISIBILITY_S", 30, minimum=1),
    )
    pool = LambdaPool(settings.workers)
    pool.warm_up()
    log.info("ready in %.1f s (%d migration(s) applied)", time.monotonic() - started,
             len(applied))
    if not settings.schedule:
        log.info("LOCAL_SCHEDULE=off: no expiry cleanup, presence sweep or timers")

    def announce(_aiohttp_banner: str) -> None:
        # run_app calls this once every socket listens: the URL is never shown before.
        print(f"\n  Ephemera is running at {settings.base_url}/  (WebSocket {settings.ws_url})\n"
              "  Ctrl-C stops it.\n", flush=True)

    try:  # on the sockets taken first: nothing else can have the port by now
        web.run_app(build_app(settings, pool), sock=sockets, print=announce,
                    handle_signals=True)
    finally:
        pool.shutdown()


if __name__ == "__main__":
    main()
