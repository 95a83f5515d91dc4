"""The log scan: after the whole run, no log line may hold a secret the tests used.

A pytest plugin (tests/conftest.py loads it). During the run it gathers
- the secrets: every login code and refresh token the app made and every access token and
  ticket it signed in this process (wrapped where they are made), every message body and
  secret field of every frame handled here, and what the local stacks' workers note in the
  shared ledger (`LOCAL_SECRETS_LEDGER`, local_stack/ledger.py) — plus the test JWT secret;
- the log lines: everything each test's capture holds (the app's powertools lines, Python
  logging, the local stack run in-process), what the `log_lines` fixture diverted, and the
  log file of every local stack started as a subprocess.

At the end it searches the lines for the secrets and fails the run on any hit. Bodies shorter
than MIN_BODY characters are not searched for: "hi" is in too many innocent lines to mean
anything (the count of those skipped is printed). Nor are bodies that are one of the code's own
string literals: Hypothesis draws those on purpose, so a fuzzed body may be "push failed", which
the code logs as itself.
"""

from __future__ import annotations

import ast
import functools
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from chalicelib.services.auth import OTP_LENGTH
from local_stack.ledger import LEDGER_ENV, SecretLedger, read_ledger, secrets_in_text

MIN_BODY = 8
MIN_TOKEN_PART = 20
# A code stands alone: digits inside a hex id ("…86ceb272296f") or a longer number are not one.
_DIGIT_RUNS = re.compile(r"(?<![0-9A-Za-z])[0-9]{4,10}(?![0-9A-Za-z])")
# Shorter all-digit secrets (a fuzzer's body "4813") are short bodies: counted, not searched.
# Searched as codes, they were found in a request id's group ("…-8df9-4813-a0b7-…").
MIN_CODE = OTP_LENGTH
_TOKEN_RUNS = re.compile(r"[A-Za-z0-9_\-]{" + str(MIN_TOKEN_PART) + ",}")
_TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_\-.]+")


@dataclass(frozen=True)
class Leak:
    secret: str
    source: str
    line: str


@dataclass
class ScanReport:
    secrets: int
    skipped_short_bodies: int
    log_bytes: int
    sources: int
    leaks: list[Leak]


def find_leaks(secrets: Iterable[str], logs: list[tuple[str, str]], *,
               literals: frozenset[str] = frozenset()) -> ScanReport:
    """Every secret found in the logs, each given as (where it came from, its text); a
    secret that is one of `literals` (the code's own strings) is counted, not searched."""
    codes, tokens, bodies, short = _classify(set(secrets) - literals)
    short += len(literals.intersection(secrets))
    leaks: list[Leak] = []
    for source, text in logs:
        found = _codes_in(text, codes) | _tokens_in(text, tokens) | _bodies_in(text, bodies)
        leaks.extend(Leak(secret, source, _line_of(text, secret)) for secret in sorted(found))
    return ScanReport(secrets=len(codes) + len(tokens) + len(bodies), skipped_short_bodies=short,
                      log_bytes=sum(len(text) for _, text in logs), sources=len(logs),
                      leaks=leaks)


def _classify(secrets: Iterable[str]) -> tuple[set[str], dict[str, str], set[str], int]:
    codes: set[str] = set()
    tokens: dict[str, str] = {}  # a distinctive part of a token -> the token
    bodies: set[str] = set()
    short = 0
    for secret in set(secrets):
        if secret.isdigit() and len(secret) >= MIN_CODE:
            codes.add(secret)
        elif len(secret) >= MIN_TOKEN_PART and _TOKEN_SHAPE.fullmatch(secret):
            # A JWT's first part is the same header for every token: its later parts are its own.
            parts = [part for part in secret.split(".") if len(part) >= MIN_TOKEN_PART]
            for part in parts[1:] or parts:
                tokens[part] = secret
        elif len(secret) >= MIN_BODY:
            bodies.add(secret)
        else:
            short += 1
    return codes, tokens, bodies, short


def _codes_in(text: str, codes: set[str]) -> set[str]:
    return codes.intersection(_DIGIT_RUNS.findall(text)) if codes else set()


def _tokens_in(text: str, tokens: dict[str, str]) -> set[str]:
    if not tokens:
        return set()
    return {tokens[run] for run in _TOKEN_RUNS.findall(text) if run in tokens}


def _bodies_in(text: str, bodies: set[str]) -> set[str]:
    """Bodies found in the text: each body's first MIN_BODY characters are looked up at every
    position (one pass, whatever the number of bodies), then the whole body is compared."""
    if not bodies:
        return set()
    by_prefix: dict[str, list[str]] = {}
    for body in bodies:
        by_prefix.setdefault(body[:MIN_BODY], []).append(body)
    found = set()
    for start in range(len(text) - MIN_BODY + 1):
        candidates = by_prefix.get(text[start:start + MIN_BODY])
        if candidates:
            found.update(body for body in candidates if text.startswith(body, start)
                         and _stands_alone(text, start, body)
                         and not _is_field_name(text, start, body))
    return found


def _stands_alone(text: str, start: int, body: str) -> bool:
    # A body that begins (ends) with a letter or digit is not one inside a longer word: random
    # ids in log lines would otherwise hold a fuzzer's short random bodies by chance.
    before, after = text[start - 1:start], text[start + len(body):start + len(body) + 1]
    return not (body[0].isalnum() and before.isalnum()) and not (body[-1].isalnum()
                                                                 and after.isalnum())


def _is_field_name(text: str, start: int, body: str) -> bool:
    # A fuzzer's body may be a word such as "access_token", which a log line holds as the name
    # of a (redacted) field: a name is not the value.
    end = start + len(body)
    return text[start - 1:start] == '"' and text[end:end + 2] == '":'



def _line_of(text: str, secret: str) -> str:
    at = text.find(secret)
    if at < 0:  # a token found by one of its parts
        at = max(text.find(part) for part in secret.split("."))
    start, end = text.rfind("\n", 0, at) + 1, text.find("\n", at)
    return text[start:end if end >= 0 else len(text)][:300]


# --- gathering, during a pytest run ----------------------------------------------------------


class LogScan:
    def __init__(self, workdir: Path) -> None:
        self.ledger_path = workdir / "secrets.ledger"
        self.ledger = SecretLedger(str(self.ledger_path))
        self.captured: list[tuple[str, str]] = []
        self.log_files: list[Path] = []
        self.report: ScanReport | None = None

    def note(self, values: Iterable[str]) -> None:
        self.ledger.note(value for value in values if value)

    def wrap_makers(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Note every code, token and ticket this process makes, and every frame's secrets."""
        from chalicelib.services import auth, frames, tokens

        def noting(make: Callable[..., str]) -> Callable[..., str]:
            def made(*args: Any, **kwargs: Any) -> str:
                value = make(*args, **kwargs)
                self.note([value])
                return value
            return made

        def handle_frame(raw: Any, *args: Any, **kwargs: Any) -> Any:
            self.note(secrets_in_text(raw))
            return original_handle_frame(raw, *args, **kwargs)

        original_handle_frame = frames.handle_frame
        monkeypatch.setattr(auth, "random_digits", noting(auth.random_digits))
        monkeypatch.setattr(auth, "random_token", noting(auth.random_token))
        monkeypatch.setattr(tokens.Tokens, "_encode", noting(tokens.Tokens._encode))
        monkeypatch.setattr(frames, "handle_frame", handle_frame)

    def scan(self) -> ScanReport:
        logs = list(self.captured)
        for path in self.log_files:
            try:
                logs.append((f"local stack log {path}", path.read_text(errors="replace")))
            except FileNotFoundError:
                continue
        return find_leaks(read_ledger(str(self.ledger_path)) | _fixed_secrets, logs,
                          literals=code_literals())


@functools.cache
def code_literals() -> frozenset[str]:
    """Every string literal in the code that writes the logs (chalicelib, local_stack)."""
    root = Path(__file__).resolve().parents[2]
    found: set[str] = set()
    for package in ("chalicelib", "local_stack"):
        for path in (root / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    found.add(node.value)
    return frozenset(found)


_scan: LogScan | None = None
_fixed_secrets: set[str] = set()


def add_secret(value: str) -> None:
    """A secret the tests hold from the start (the test JWT secret)."""
    _fixed_secrets.add(value)


def add_log_text(source: str, text: str) -> None:
    """Log lines a test diverted from the capture (the `log_lines` fixture does)."""
    if _scan is not None and text:
        _scan.captured.append((source, text))


def add_log_file(path: Path) -> None:
    """A local stack's log file, read at the end of the run."""
    if _scan is not None:
        _scan.log_files.append(path)


def pytest_configure(config: pytest.Config) -> None:
    global _scan
    workdir = Path(tempfile.mkdtemp(prefix="ephemera-log-scan-"))
    _scan = LogScan(workdir)
    os.environ[LEDGER_ENV] = str(_scan.ledger_path)  # the stacks' workers inherit it
    config._log_scan_patch = pytest.MonkeyPatch()  # type: ignore[attr-defined]
    _scan.wrap_makers(config._log_scan_patch)  # type: ignore[attr-defined]


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    # Each phase's report repeats the sections of the phases before it: the teardown's has all.
    if _scan is not None and report.when == "teardown":
        for title, content in report.sections:
            if content:
                _scan.captured.append((f"{report.nodeid} ({title})", content))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _scan is None:
        return
    session.config._log_scan_patch.undo()  # type: ignore[attr-defined]
    _scan.report = _scan.scan()
    if _scan.report.leaks:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    else:
        shutil.rmtree(_scan.ledger_path.parent, ignore_errors=True)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    report = _scan.report if _scan is not None else None
    if report is None:
        return
    terminalreporter.write_line(
        f"log scan: {report.secrets} secrets searched for in {report.log_bytes:,} characters of"
        f" log from {report.sources} tests and stacks ({report.skipped_short_bodies} bodies"
        f" under {MIN_BODY} characters or the code's own strings, not searched):"
        f" {len(report.leaks)} found",
        red=bool(report.leaks), bold=bool(report.leaks))
    for leak in report.leaks[:50]:
        terminalreporter.write_line(
            f"  LEAK in {leak.source}: {json.dumps(leak.secret)[:80]} in: {leak.line}", red=True)
