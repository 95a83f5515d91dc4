"""ExpiryLagSeconds: how long the oldest expired message still stored has been past its expiry,
emitted by every scheduled cleanup after its deletions. It is what the expiry alarm watches
(infra/operate.yaml: over 300 s, or missing, for two minutes), so it must be right on a real
database, be 0 when nothing expired is left, and reach the EMF document with the dimensions
the alarm names."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest

from chalicelib.observability import metrics
from chalicelib.services import expiry
from chalicelib.services.context import Context
from chalicelib.services.expiry import purge_expired, report_expiry_lag, run_cleanup
from chalicelib.services.limits import NoLimits
from tests.integration.messaging_world import World
from tests.integration.test_expiry import count, insert_messages
from tests.support.fakes import TEST_KEYS, RecordingPush

ONE_DAY_S = 86_400


@pytest.fixture
def world(db, clock) -> World:
    push = RecordingPush()
    return World(Context(db=db, push=push, clock=clock, limiter=NoLimits(), keys=TEST_KEYS), push)


@pytest.fixture
def emitted() -> Iterator[Callable[[str], list[float]]]:
    """The values of a metric added since the test began (powertools' pending metric set)."""
    metrics.clear_metrics()
    yield lambda name: list(metrics.metric_set.get(name, {}).get("Value", []))
    metrics.clear_metrics()


def cleanup(world: World) -> dict:
    return run_cleanup(world.ctx, idle_timeout_s=600, max_connection_s=7200)


def test_a_cleanup_that_deleted_every_expired_message_reports_a_lag_of_zero(
        world, db, clock, emitted):
    alice, bob = world.person(), world.person()
    chat = world.chat(alice, bob)
    now = clock.now_ms()
    insert_messages(db, chat, alice.id, [now - 600_000, now - 1, now, now + 60_000])

    cleanup(world)

    assert count(db) == 1  # only the live one is left
    assert emitted("ExpiryLagSeconds") == [0.0]


def test_a_cleanup_with_nothing_stored_reports_a_lag_of_zero(world, emitted):
    cleanup(world)

    assert emitted("ExpiryLagSeconds") == [0.0]


def test_the_lag_is_the_age_of_the_oldest_expired_message_still_stored(world, db, clock,
                                                                        emitted):
    """A run whose time budget ran out leaves expired rows: the lag is measured from the oldest
    of them, not the newest, and messages that have not expired do not count."""
    alice, bob = world.person(), world.person()
    chat = world.chat(alice, bob)
    now = clock.now_ms()
    insert_messages(db, chat, alice.id, [now - 5_000, now - 412_500, now - 90_000,
                                         now + ONE_DAY_S * 1000])

    lag_s = report_expiry_lag(purge_expired(world.ctx, time_budget_s=0))

    assert lag_s == 412.5
    assert emitted("ExpiryLagSeconds") == [412.5]
    assert count(db) == 4  # nothing was deleted: the lag is of rows still stored


def test_the_lag_is_emitted_even_when_a_later_step_of_the_run_fails(world, db, clock, emitted,
                                                                     monkeypatch):
    alice, bob = world.person(), world.person()
    chat = world.chat(alice, bob)
    insert_messages(db, chat, alice.id, [clock.now_ms() - 1])

    def sweep_fails(**_: object) -> int:
        raise RuntimeError("the sweep broke")

    monkeypatch.setattr(expiry, "sweep_stale_connections", sweep_fails)
    with pytest.raises(RuntimeError, match="the sweep broke"):
        cleanup(world)

    assert emitted("ExpiryLagSeconds") == [0.0]


def test_the_scheduled_function_flushes_the_lag_in_seconds_with_the_alarms_dimension(
        client, mysql_db, capsys):
    """The alarm reads namespace/ExpiryLagSeconds with dimension service=ephemera (EMF as
    powertools writes it; the deployed namespace is Ephemera, set in .chalice/config.json)."""
    capsys.readouterr()

    client.lambda_.invoke("scheduled_cleanup", client.events.generate_cw_event(
        source="aws.events", detail_type="Scheduled Event", detail={}, resources=[]))

    documents = [json.loads(line) for line in capsys.readouterr().out.splitlines()
                 if '"ExpiryLagSeconds"' in line]
    (document,) = documents
    (directive,) = [d for d in document["_aws"]["CloudWatchMetrics"]
                    if any(m["Name"] == "ExpiryLagSeconds" for m in d["Metrics"])]
    assert directive["Dimensions"] == [["service"]]
    assert document["service"] == "ephemera"
    assert {"Name": "ExpiryLagSeconds", "Unit": "Seconds"} in directive["Metrics"]
    assert document["ExpiryLagSeconds"] == [0.0]
