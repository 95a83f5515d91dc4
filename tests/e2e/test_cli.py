"""The `ephemera` console script against the real local stack, run as a person or a shell
script would run it: one process per command, a session file per profile."""

from __future__ import annotations

import json
import os
import queue
import random
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ephemera_client.exits import REFUSED, SIGNED_OUT
from tests.support.polling import eventually

EPHEMERA = str(Path(sys.executable).parent / "ephemera")
Run = Callable[..., subprocess.CompletedProcess]


def random_phone() -> str:
    return f"+1415555{random.randint(0, 9999):04d}"


@pytest.fixture
def cli_env(stack, tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "EPHEMERA_CONFIG_DIR": str(tmp_path), "EPHEMERA_URL": stack.base_url}


@pytest.fixture
def ephemera(cli_env: dict[str, str]) -> Run:
    """Runs `ephemera --profile PROFILE ARGS...` to the end; its output as text."""

    def run(profile: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([EPHEMERA, "--profile", profile, *args], input=stdin,
                              capture_output=True, text=True, env=cli_env, timeout=30)

    return run


@pytest.fixture
def alice_and_bob(ephemera: Run) -> tuple[str, str]:
    """Two profiles, `alice` and `bob`, signed in through the local stack's outbox."""
    phones = random_phone(), random_phone()
    for profile, phone in zip(("alice", "bob"), phones, strict=True):
        signed_in = ephemera(profile, "login", phone, "--outbox")
        assert signed_in.returncode == 0, signed_in.stderr
    return phones


@pytest.fixture
def chat(ephemera: Run, alice_and_bob: tuple[str, str]) -> str:
    """A 1:1 that alice started with bob; its id."""
    created = ephemera("alice", "new", alice_and_bob[1])
    assert created.returncode == 0, created.stderr
    return created.stdout.strip()


class Tail:
    """`ephemera tail --json` running in the background, its lines collected as they come."""

    def __init__(self, env: dict[str, str], profile: str) -> None:
        self.process = subprocess.Popen([EPHEMERA, "--profile", profile, "tail", "--json"],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True, env=env)
        self.lines: queue.Queue[dict] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.put(json.loads(line))

    def wait_for(self, event: str, timeout_s: float = 10, **fields: object) -> dict:
        deadline = time.monotonic() + timeout_s
        while True:
            line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            if line["event"] == event and all(line.get(k) == v for k, v in fields.items()):
                return line

    def stop(self, how: signal.Signals) -> int:
        self.process.send_signal(how)
        return self.process.wait(10)


def test_login_from_the_outbox_signs_in_and_whoami_names_the_phone(
        ephemera: Run, tmp_path: Path) -> None:
    phone = random_phone()
    signed_in = ephemera("alice", "login", phone, "--outbox")
    assert signed_in.returncode == 0, signed_in.stderr
    assert signed_in.stdout.startswith(f"signed in as {phone} (user ")
    whoami = ephemera("alice", "whoami", "--json")
    assert whoami.returncode == 0, whoami.stderr
    me = json.loads(whoami.stdout)
    assert me["phone"] == phone and me["device_id"] in signed_in.stdout


def test_the_session_file_is_readable_by_its_owner_only(
        alice_and_bob: tuple[str, str], tmp_path: Path) -> None:
    mode = stat.S_IMODE((tmp_path / "alice.json").stat().st_mode)
    assert mode == 0o600


def test_a_short_chat_from_the_shell_reaches_the_other_tail_and_back(
        ephemera: Run, cli_env: dict[str, str], chat: str) -> None:
    bobs_tail = Tail(cli_env, "bob")
    try:
        bobs_tail.wait_for("connected")
        sent = ephemera("alice", "send", chat, "hello", "bob")
        assert sent.returncode == 0, sent.stderr
        assert sent.stdout == "sent seq=1\n"
        shown = bobs_tail.wait_for("message", body="hello bob")
        assert shown["conversation_id"] == chat and shown["seq"] == 1
        replied = ephemera("bob", "send", chat, "hi alice")
        assert replied.returncode == 0, replied.stderr
    finally:
        assert bobs_tail.stop(signal.SIGTERM) == 0, bobs_tail.process.stderr.read()
    history = ephemera("alice", "history", chat, "--json")
    bodies = [json.loads(line)["body"] for line in history.stdout.splitlines()]
    assert bodies == ["hello bob", "hi alice"]


def test_a_stopped_tail_keeps_its_cursors_and_reads_so_the_next_shows_only_what_is_new(
        ephemera: Run, cli_env: dict[str, str], chat: str, tmp_path: Path) -> None:
    first_tail = Tail(cli_env, "bob")
    first_tail.wait_for("connected")
    ephemera("alice", "send", chat, "first")
    first_tail.wait_for("message", body="first")
    assert first_tail.stop(signal.SIGINT) == 0  # at once: within the second reads coalesce
    assert json.loads((tmp_path / "bob.json").read_text())["cursors"] == {chat: 1}
    # The server handles each frame on its own: a read sent just before the socket closed is
    # stored a moment later.
    assert eventually(lambda: json.loads(
        ephemera("bob", "conversations", "--json").stdout)["unread_count"] == 0)
    ephemera("alice", "send", chat, "second")
    second_tail = Tail(cli_env, "bob")
    try:
        assert second_tail.wait_for("message")["body"] == "second"
    finally:
        second_tail.stop(signal.SIGINT)


def test_sending_from_a_pipeline_keeps_the_order_of_its_lines(ephemera: Run, chat: str) -> None:
    lines = [f"line {n}" for n in range(1, 9)]
    sent = ephemera("alice", "send", chat, stdin="\n".join(lines) + "\n")
    assert sent.returncode == 0, sent.stderr
    assert sent.stdout.splitlines() == [f"sent seq={n}" for n in range(1, 9)]
    history = ephemera("bob", "history", chat, "--json")
    messages = [json.loads(line) for line in history.stdout.splitlines()]
    assert [(m["seq"], m["body"]) for m in messages] == list(enumerate(lines, start=1))


def test_history_reads_as_lines_and_pages_back_with_before(ephemera: Run, chat: str) -> None:
    ephemera("alice", "send", chat, stdin="one\ntwo\nthree\n")
    newest = ephemera("bob", "history", chat, "--limit", "2")
    assert [line.split(": ", 1)[1] for line in newest.stdout.splitlines()] == ["two", "three"]
    assert "--before 2" in newest.stderr
    older = ephemera("bob", "history", chat, "--before", "2")
    assert older.stdout.rstrip().endswith(": one")


def test_a_conversation_can_be_named_by_the_other_members_phone_or_its_title(
        ephemera: Run, alice_and_bob: tuple[str, str], chat: str) -> None:
    by_phone = ephemera("alice", "send", alice_and_bob[1], "by phone")
    assert by_phone.returncode == 0, by_phone.stderr
    group = ephemera("alice", "new", alice_and_bob[1], random_phone(), "--title", "general",
                     "--ttl", "1h").stdout.strip()
    by_title = ephemera("alice", "send", "#general", "by title")
    assert by_title.returncode == 0, by_title.stderr
    by_prefix = ephemera("alice", "history", group[:-2], "--json")
    assert json.loads(by_prefix.stdout)["body"] == "by title"


def test_conversations_lists_each_with_the_other_member_and_its_timer(
        ephemera: Run, alice_and_bob: tuple[str, str], chat: str) -> None:
    listed = ephemera("alice", "conversations")
    assert listed.returncode == 0, listed.stderr
    row = listed.stdout.strip()
    assert row.startswith(chat) and alice_and_bob[1] in row and "ttl 1d" in row
    as_json = json.loads(ephemera("bob", "conversations", "--json").stdout)
    assert as_json["id"] == chat and as_json["request"] is True


def test_devices_marks_the_one_in_use(ephemera: Run, alice_and_bob: tuple[str, str]) -> None:
    device_id = json.loads(ephemera("alice", "whoami", "--json").stdout)["device_id"]
    listed = ephemera("alice", "devices").stdout.splitlines()
    assert listed == [line for line in listed if line.startswith(f"* {device_id}")]


def test_after_logout_whoami_exits_as_signed_out(
        ephemera: Run, alice_and_bob: tuple[str, str], tmp_path: Path) -> None:
    assert ephemera("alice", "logout").returncode == 0
    assert not (tmp_path / "alice.json").exists()
    whoami = ephemera("alice", "whoami")
    assert whoami.returncode == SIGNED_OUT
    assert whoami.stderr == "ephemera: not signed in: run `ephemera login`\n"


def test_sending_to_an_unknown_conversation_is_refused(
        ephemera: Run, alice_and_bob: tuple[str, str]) -> None:
    sent = ephemera("alice", "send", "no-such-chat", "hello")
    assert sent.returncode == REFUSED
    assert sent.stderr.startswith("ephemera: no conversation of yours matches 'no-such-chat'")


def test_an_action_the_server_refuses_exits_as_refused(ephemera: Run, chat: str) -> None:
    added = ephemera("alice", "members", "add", chat, random_phone())
    assert added.returncode == REFUSED
    assert "(bad_request)" in added.stderr
