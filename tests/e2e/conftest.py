"""The local stack started as a subprocess on a free port, against the run's MariaDB database,
and a small client that talks to it over real HTTP and WebSockets."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import urllib3
from websockets.sync.client import ClientConnection, connect

from chalicelib.config import parse_database_url
from chalicelib.storage.database import Database
from chalicelib.storage.engines import create_engine
from chalicelib.storage.migrate import migrate
from tests.conftest import TEST_JWT_SECRET, empty_tables
from tests.support import log_scan
from tests.support.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
IDLE_TIMEOUT_S = 3
EXPIRY_INTERVAL_S = 1



class RunningStack:
    """`python -m local_stack` in a subprocess; its output goes to a file shown on failure."""

    def __init__(self, env_overrides: dict[str, str], port: int | None = None) -> None:
        self.env_overrides = env_overrides
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(tempfile.mkstemp(prefix="local-stack-", suffix=".log")[1])
        env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(self.port),
               "JWT_SECRET": TEST_JWT_SECRET, "LOCAL_WORKERS": "2",
               "POWERTOOLS_LOG_LEVEL": "INFO", **env_overrides}
        self._log = self.log_path.open("w")
        log_scan.add_log_file(self.log_path)
        self.process = subprocess.Popen([sys.executable, "-m", "local_stack"], cwd=ROOT,
                                        env=env, stdout=self._log, stderr=subprocess.STDOUT)

    def wait_until_ready(self, timeout_s: float = 60) -> None:
        http = urllib3.PoolManager()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the local stack exited early:\n{self.output()}")
            try:
                reply = http.request("GET", f"{self.base_url}/health", timeout=5, retries=False)
                if reply.status == 200:
                    return
            except urllib3.exceptions.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the local stack did not get ready:\n{self.output()}")

    def stop(self, timeout_s: float = 15) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode

    def restarted(self) -> RunningStack:
        """Stops this stack and starts another on the same port and environment (so on the same
        database), ready: what a client sees of a redeploy."""
        self.stop()
        again = RunningStack(self.env_overrides, port=self.port)
        again.wait_until_ready()
        return again

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text()


@dataclass
class Session:
    user_id: str
    device_id: str
    access_token: str
    refresh_token: str


class StackClient:
    """What a client of the protocol does, over real HTTP and WebSockets."""

    def __init__(self, stack: RunningStack) -> None:
        self.stack = stack
        self.base_url = stack.base_url
        self._http = urllib3.PoolManager()
        self._sockets: list[ClientConnection] = []

    def request(self, method: str, path: str, body: Any = None, *, token: str | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, Any, dict[str, str]]:
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        if token:
            all_headers["Authorization"] = f"Bearer {token}"
        data = body if isinstance(body, bytes | str) or body is None else json.dumps(body)
        response = self._http.request(method, self.base_url + path, body=data,
                                      headers=all_headers, timeout=10)
        text = response.data.decode()
        try:
            parsed = json.loads(text) if text else None
        except ValueError:
            parsed = text
        return response.status, parsed, dict(response.headers)

    def login(self, phone: str, device: str = "phone") -> Session:
        status, challenge, _ = self.request("POST", "/auth/otp", {"phone": phone})
        assert status == 202, challenge
        code = self.outbox(phone)[0]["code"]
        status, reply, _ = self.request("POST", "/auth/verify", {
            "challenge_id": challenge["challenge_id"], "code": code, "device_name": device})
        assert status == 200, reply
        return Session(reply["user"]["id"], reply["device_id"], reply["access_token"],
                       reply["refresh_token"])

    def outbox(self, phone: str) -> list[dict[str, Any]]:
        status, reply, _ = self.request("GET", f"/dev/outbox?phone={phone.replace('+', '%2B')}")
        assert status == 200, reply
        return reply["messages"]

    def ticket(self, session: Session) -> dict[str, Any]:
        status, reply, _ = self.request("POST", "/ws/ticket", token=session.access_token)
        assert status == 200, reply
        return reply

    def open_socket(self, session: Session) -> ClientConnection:
        ticket = self.ticket(session)
        client_socket = connect(f"{ticket['url']}?ticket={ticket['ticket']}", open_timeout=10,
                                legacy=True)
        self._sockets.append(client_socket)
        return client_socket

    def close_sockets(self) -> None:
        for client_socket in self._sockets:
            client_socket.close()


@pytest.fixture(scope="session")
def stack_database(mysql_server) -> Iterator[str]:
    """The stack's own database: its schedule deletes and sweeps every second, so it must not
    share a database with tests that plant old rows on purpose."""
    name = mysql_server.create_database("ephemera_e2e")
    migrate(create_engine(parse_database_url(mysql_server.url(name))))
    yield name
    mysql_server.drop_database(name)


@pytest.fixture(scope="session")
def running_stack(mysql_server, stack_database) -> Iterator[RunningStack]:
    stack = RunningStack({
        "DATABASE_URL": mysql_server.url(stack_database),
        "WS_IDLE_TIMEOUT_S": str(IDLE_TIMEOUT_S),
        "EXPIRY_INTERVAL_S": str(EXPIRY_INTERVAL_S),
    })
    try:
        stack.wait_until_ready()
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def stack_db(mysql_server, stack_database) -> Iterator[Database]:
    """The stack's database, every table emptied before the test."""
    db = Database(create_engine(parse_database_url(mysql_server.url(stack_database))))
    empty_tables(db)
    yield db
    db.close()


@pytest.fixture
def stack(running_stack, stack_db) -> Iterator[StackClient]:
    """A client of the session's stack, on a database emptied for this test."""
    client = StackClient(running_stack)
    yield client
    client.close_sockets()


@contextmanager
def migrated_database(mysql_server, prefix: str) -> Iterator[str]:
    """A migrated database of its own (its URL), dropped after."""
    name = mysql_server.create_database(prefix)
    url = mysql_server.url(name)
    migrate(create_engine(parse_database_url(url)))
    yield url
    mysql_server.drop_database(name)


@pytest.fixture
def fresh_database_url(mysql_server) -> Iterator[str]:
    """A migrated database of its own, for a test that starts a stack of its own."""
    with migrated_database(mysql_server, "ephemera_e2e_own") as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    from tests.e2e.web_client import launch_chromium

    yield from launch_chromium()


@pytest.fixture
def open_window(browser, stack):
    """Opens a new browser window (its own context) for a phone; all are closed after the test,
    and a script error in any of them fails it."""
    from tests.e2e.web_client import browser_windows

    with browser_windows(browser, stack.base_url) as open_for:
        yield open_for
