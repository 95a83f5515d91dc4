"""`python -m local_stack`: migrate the database, start the workers, serve on HOST:PORT."""

from __future__ import annotations

import logging
import os
import secrets
import sys
from pathlib import Path

from aiohttp import web

STATE_DIR = Path(".ephemera")


def _env_int(name: str, default: int, *, minimum: int = 0) -> int:
    try:
        value = int(os.environ.get(name) or default)
    except ValueError:
        sys.exit(f"{name} must be a whole number")
    if value < minimum:
        sys.exit(f"{name} must be at least {minimum}")
    return value


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


def prepare_environment(host: str, port: int) -> None:
    """What the deployed functions get from their configuration, pointed at this stack. The
    worker processes inherit it."""
    env = os.environ
    env["STAGE"] = "local"
    env.setdefault("DATABASE_URL", f"sqlite:///{STATE_DIR / 'local.db'}")
    env["JWT_SECRET"] = _local_jwt_secret()
    env["WS_PUBLIC_URL"] = f"ws://{host}:{port}/ws"
    env["WS_MANAGEMENT_ENDPOINT"] = f"http://{host}:{port}/local"
    env.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    env.setdefault("AWS_ACCESS_KEY_ID", "local")
    env.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    env.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    env.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")  # the stack prints one line per event


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    host = os.environ.get("HOST", "127.0.0.1")
    port = _env_int("PORT", 8000)
    prepare_environment(host, port)

    from chalicelib import bootstrap
    from chalicelib.storage.migrate import migrate
    from local_stack.lambdas import LambdaPool
    from local_stack.server import StackSettings, build_app
    from local_stack.websocket import MAX_QUEUED_FRAMES

    config = bootstrap.get_config()
    applied = migrate(bootstrap.get_db().engine)
    settings = StackSettings(
        host=host, port=port, workers=_env_int("LOCAL_WORKERS", 4),
        expiry_interval_s=config.expiry_interval_s, idle_timeout_s=config.ws_idle_timeout_s,
        max_connection_s=config.ws_max_connection_s,
        max_queued_frames=_env_int("LOCAL_MAX_QUEUED_FRAMES", MAX_QUEUED_FRAMES, minimum=1),
    )
    pool = LambdaPool(settings.workers)
    pool.warm_up()
    logging.getLogger("local_stack").info(
        "database %s (%d migration(s) applied); %d workers", config.database.engine,
        len(applied), settings.workers)
    print(f"\n  Ephemera is running at {settings.base_url}/  (WebSocket {settings.ws_url})\n"
          "  Ctrl-C stops it.\n", flush=True)
    try:
        web.run_app(build_app(settings, pool), host=host, port=port, print=None,
                    handle_signals=True)
    finally:
        pool.shutdown()


if __name__ == "__main__":
    main()
