"""Schemathesis against `docs/openapi.yaml`: every operation, called with generated and mutated
input (schemathesis's examples, coverage and fuzzing phases, valid and invalid data) against
the real local stack on MariaDB, signed in with a real access token. No answer is a 5xx, every
status is documented, every body has the documented content type and matches the documented
schema (headers too), input the document forbids is refused with a 4xx, and no authenticated
operation answers without the token.

Random ids find nothing but 404s, so the fuzz user starts with conversations of each kind
(direct, a group they own, a request from someone else) holding messages, and about half the
generated `conversation_id`s and `user_id`s are swapped for those real ones."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from bench.stack import running_stack
from tests.e2e.conftest import RunningStack, Session, StackClient, migrated_database

ROOT = Path(__file__).resolve().parents[2]
schema = schemathesis.openapi.from_path(ROOT / "docs" / "openapi.yaml")

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, ignored_auth, negative_data_rejection,
          response_headers_conformance]
# With the examples and coverage phases, ~45 cases an operation (1,167 in all), 45-70 s.
EXAMPLES_PER_OPERATION = 20

# Operations that end the session they are called with: each case gets a user of its own, so
# the fuzz user stays signed in for the rest of the run.
SESSION_ENDING = {("POST", "/auth/logout"), ("DELETE", "/devices/{device_id}"),
                  ("DELETE", "/me")}
REAL_ID_FIELDS = ("conversation_id", "user_id")

phones = (f"+1415555{n:04d}" for n in itertools.count(1))


@dataclass
class FuzzWorld:
    """The fuzz user, the real ids generated ids are swapped for, and the cases run."""

    client: StackClient
    user: Session
    real_ids: dict[str, list[str]] = field(default_factory=dict)
    cases_run: Counter[str] = field(default_factory=Counter)
    status_classes: Counter[str] = field(default_factory=Counter)
    succeeded: Counter[str] = field(default_factory=Counter)


# The hooks below run inside schemathesis's strategies, which pytest builds before any
# fixture: the module-scoped fixture puts the world here.
worlds: list[FuzzWorld] = []


@pytest.fixture(scope="module")
def fuzzed_stack(mysql_server) -> Iterator[RunningStack]:
    """A stack of its own with every rate limit lifted: the fuzzer tests the routes, not the
    limiter."""
    with migrated_database(mysql_server, "ephemera_fuzz") as url, running_stack(url) as stack:
        yield stack


@pytest.fixture(scope="module")
def world(fuzzed_stack, pytestconfig) -> Iterator[FuzzWorld]:
    client = StackClient(fuzzed_stack)
    fuzz_world = seed_world(client)
    worlds.append(fuzz_world)
    yield fuzz_world
    worlds.remove(fuzz_world)
    client.close_sockets()
    # The figure the run is worth, in the output even when pytest captures it.
    plugins = pytestconfig.pluginmanager
    with plugins.get_plugin("capturemanager").global_and_fixture_disabled():
        reporter = plugins.get_plugin("terminalreporter")
        reporter.ensure_newline()
        reporter.write_line(summary(fuzz_world))


def summary(world: FuzzWorld) -> str:
    answers = ", ".join(f"{n} {status}" for status, n in sorted(world.status_classes.items()))
    return (f"schemathesis {schemathesis.__version__}: {sum(world.cases_run.values())} cases "
            f"over {len(world.cases_run)} operations, answered {answers}")


def seed_world(client: StackClient) -> FuzzWorld:
    """The fuzz user with a direct conversation, a group they own and a request from someone
    else, each holding a message."""
    user_phone, friend_phone, stranger_phone = (next(phones) for _ in range(3))
    user, friend, stranger = (client.login(p) for p in (user_phone, friend_phone, stranger_phone))
    direct = create(client, user, [friend_phone])
    group = create(client, user, [friend_phone, stranger_phone], title="fuzz")
    request = create(client, stranger, [user_phone])
    for session, conversation_id in ((user, direct), (user, group), (stranger, request)):
        send_message(client, session, conversation_id)
    return FuzzWorld(client, user, {
        "conversation_id": [direct, group, request],
        "user_id": [user.user_id, friend.user_id, stranger.user_id]})


def create(client: StackClient, owner: Session, members: list[str], **fields: Any) -> str:
    status, conversation, _ = client.request("POST", "/conversations",
                                             {"members": members, **fields},
                                             token=owner.access_token)
    assert status == 201, conversation
    return conversation["id"]


def send_message(client: StackClient, session: Session, conversation_id: str) -> None:
    socket = client.open_socket(session)
    socket.send(json.dumps({"action": "send", "conversation_id": conversation_id,
                            "client_msg_id": f"fuzz-{conversation_id}", "body": "seed",
                            "req": "seed"}))
    while json.loads(socket.recv(timeout=10)).get("type") != "sent":
        pass


def swapped_for_real_ids(case: schemathesis.Case, location: ParameterLocation,
                         generated: Any) -> st.SearchStrategy[Any]:
    """`generated`, each id field in it kept or swapped for one of the world's real ids;
    kept as generated where the case is negative, so it stays the invalid input it says."""
    component = case.meta.components.get(location) if case.meta else None
    negative = component is not None and component.mode == GenerationMode.NEGATIVE
    if not worlds or negative or not isinstance(generated, dict):
        return st.just(generated)
    real_ids = worlds[0].real_ids
    return st.fixed_dictionaries({
        name: st.one_of(st.just(value), st.sampled_from(real_ids[name]))
        if name in REAL_ID_FIELDS else st.just(value)
        for name, value in generated.items()})


@schema.hook
def flatmap_case(context, case):
    def with_real_ids(parts: tuple[Any, Any]) -> schemathesis.Case:
        case.path_parameters, case.body = parts
        return case

    return st.tuples(
        swapped_for_real_ids(case, ParameterLocation.PATH, case.path_parameters),
        swapped_for_real_ids(case, ParameterLocation.BODY, case.body)).map(with_real_ids)


def session_for(case: schemathesis.Case, world: FuzzWorld) -> Session:
    operation = case.operation
    if (operation.method.upper(), operation.path) in SESSION_ENDING:
        return world.client.login(next(phones))
    return world.user


# schemathesis draws from `random` in its strategies; Hypothesis seeds it for every example
# (derandomized), so the run stays the same from one run to the next.
@pytest.mark.filterwarnings("ignore:Do not use the `random` module inside strategies")
@schema.parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION, derandomize=True, database=None, deadline=None,
          suppress_health_check=list(HealthCheck))
def test_every_operation_answers_as_documented(case, world):
    session = session_for(case, world)
    world.cases_run[case.operation.label] += 1
    response = case.call_and_validate(
        base_url=world.client.base_url, checks=CHECKS,
        headers={"Authorization": f"Bearer {session.access_token}"})
    world.status_classes[f"{response.status_code // 100}xx"] += 1
    if response.status_code < 300 and case.method.upper() == case.operation.method.upper():
        world.succeeded[case.operation.label] += 1


def test_the_fuzzer_called_every_operation_and_reached_real_resources(world):
    """Runs after the fuzzer (pytest keeps the file's order): a run that skipped operations,
    or met only 404s on the ones that name a conversation or a user, would prove little."""
    if not world.cases_run:
        pytest.skip("the fuzzer was not selected in this run")
    operations = {result.ok().label for result in schema.get_all_operations()}

    assert set(world.cases_run) == operations
    on_real_ids = [label for label in world.succeeded if "_id}" in label]
    assert len(on_real_ids) >= 2, world.succeeded
