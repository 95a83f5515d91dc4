"""The log scan finds what it is meant to find: the run-wide check after the suite (see
tests/support/log_scan.py) is only as good as these."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from local_stack.ledger import SecretLedger, read_ledger, secrets_in_event, secrets_in_reply
from tests.support.log_scan import code_literals, find_leaks

JWT = ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIwMUhZWFpCREZHIiwiZXhwIjoxNzY0NTgyMDAwfQ"
       ".q8y2VkOQpZ5rB6m9qk8t1xB3fJx0nY2hT4cL7wEaR1s")
REFRESH = "tS4m0c9QvJ2rK7xW1pL8eB3nF6hD0aY5uG2iZ9oC4jM"
CODE = "493817"
ROOT = Path(__file__).resolve().parents[2]
BODY = "meet me at the usual place"


def leaked(secrets: list[str], line: str) -> list[str]:
    return [leak.secret for leak in find_leaks(secrets, [("a test", line)]).leaks]


def test_a_logged_token_ticket_code_or_body_is_found() -> None:
    line = json.dumps({"level": "INFO", "message": "oops", "token": JWT, "refresh": REFRESH,
                       "sms": f"your code is {CODE}", "text": BODY})
    assert sorted(leaked([JWT, REFRESH, CODE, BODY], line)) == sorted([JWT, REFRESH, CODE, BODY])


def test_a_token_is_found_by_its_own_part_even_when_cut_short() -> None:
    payload_and_signature = JWT.split(".", 1)[1]
    assert leaked([JWT], f"Bearer {payload_and_signature}") == [JWT]


def test_the_header_every_jwt_shares_is_not_taken_for_a_leak() -> None:
    assert leaked([JWT], "alg header " + JWT.split(".")[0]) == []


def test_a_code_inside_a_longer_number_or_a_hex_id_is_not_a_leak() -> None:
    assert leaked([CODE], '{"timestamp": 17645493817112, "took_ms": 4938170}') == []
    assert leaked([CODE], '{"request_id": "df77b95b-b308-4d80-8b0b-86ceb493817f"}') == []
    assert leaked([CODE], '{"request_id": "493817d8-b37e-48a2-8ebd-52ef396edf17"}') == []
    assert leaked([CODE], "code=493817") == [CODE]


def test_a_short_all_digit_body_is_not_searched_as_a_code() -> None:
    line = '{"request_id": "ebc76d3a-8df9-4813-a0b7-bd65f99df814"}'
    report = find_leaks(["4813"], [("a test", line)])
    assert report.leaks == [] and report.skipped_short_bodies == 1


def test_a_body_inside_other_text_is_found_and_a_clean_log_is_clean() -> None:
    assert leaked([BODY], "ws frame: meet me at the usual place!") == [BODY]
    assert leaked([BODY, CODE, JWT], "ws 4VQk frame 312 B -> $default ok (2.1 ms)") == []


def test_a_body_inside_a_longer_word_such_as_a_random_id_is_not_a_leak() -> None:
    assert leaked(["Zq0wTvA9"], '{"connection_id": "MJ5Zq0wTvA9GKV4="}') == []
    assert leaked(["Zq0wTvA9"], '{"text": "Zq0wTvA9"}') == ["Zq0wTvA9"]
    assert leaked(["!!hey you!!"], "x!!hey you!!x") == ["!!hey you!!"]


def test_a_body_that_is_only_a_field_name_of_the_line_is_not_a_leak() -> None:
    assert leaked(["access_token"], '{"access_token":"[redacted]"}') == []
    assert leaked(["access_token"], '{"note":"access_token"}') == ["access_token"]


def test_short_bodies_are_counted_not_searched() -> None:
    report = find_leaks(["hi", "ok", BODY], [("a test", "hi ok")])
    assert report.leaks == [] and report.skipped_short_bodies == 2


def test_a_body_that_is_one_of_the_codes_own_strings_is_counted_not_searched() -> None:
    # Hypothesis draws string literals of the code under test: a fuzzed body "push failed" is
    # in the log because the code logs it, not because a body leaked.
    line = json.dumps({"level": "WARNING", "message": "push failed", "text": BODY})
    report = find_leaks(["push failed", BODY], [("a test", line)],
                        literals=frozenset({"push failed"}))
    assert [leak.secret for leak in report.leaks] == [BODY]
    assert report.skipped_short_bodies == 1


def test_the_codes_own_strings_are_read_from_the_code_that_logs() -> None:
    assert {"push failed", "presence watch"} <= code_literals()
    assert BODY not in code_literals()


def test_the_stack_notes_the_secrets_of_events_and_replies(tmp_path) -> None:
    event = {"headers": {"Authorization": f"Bearer {JWT}"},
             "queryStringParameters": {"ticket": "T" * 30},
             "body": json.dumps({"action": "send", "messages": [{"body": BODY}],
                                 "code": "bad_request"})}
    reply = {"statusCode": 200, "body": json.dumps({"access_token": JWT,
                                                    "refresh_token": REFRESH})}
    ledger = SecretLedger(str(tmp_path / "ledger"))

    ledger.note(secrets_in_event(event) + secrets_in_reply(reply))
    ledger.note(secrets_in_event({"body": json.dumps({"phone": "+1415", "code": CODE})}))

    # an error code is not a secret; a login code is
    assert read_ledger(str(tmp_path / "ledger")) == {JWT, "T" * 30, BODY, REFRESH, CODE}


def test_odd_events_note_nothing() -> None:
    assert secrets_in_event({"body": "not json {"}) == []
    assert secrets_in_event(None) == []
    assert secrets_in_reply({"body": None}) == []


RUN_CONFTEST = """
from tests.support.log_scan import (  # noqa: F401
    pytest_configure, pytest_runtest_logreport, pytest_sessionfinish, pytest_terminal_summary)
"""
RUN_TEST = """
import json
from tests.support import log_scan

def test_handles_a_message():
    log_scan._scan.note(["meet me at the usual place"])
    print(json.dumps({"level": "INFO", "message": "frame handled", "text": %r}))
"""


def run_suite(tmp_path, logged_text: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "conftest.py").write_text(RUN_CONFTEST)
    (tmp_path / "test_one.py").write_text(RUN_TEST % logged_text)
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           str(tmp_path)], cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)


def test_a_run_whose_logs_hold_a_secret_fails_though_its_tests_pass(tmp_path) -> None:
    finished = run_suite(tmp_path, "meet me at the usual place")

    assert finished.returncode == 1, finished.stdout + finished.stderr
    assert "1 passed" in finished.stdout and "1 found" in finished.stdout
    assert "LEAK in test_one.py::test_handles_a_message" in finished.stdout


def test_a_run_whose_logs_hold_no_secret_passes(tmp_path) -> None:
    finished = run_suite(tmp_path, "a message of 26 characters")

    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert "0 found" in finished.stdout
