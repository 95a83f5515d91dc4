"""The local stack's Lambda containers: worker processes the event loop feeds over pipes, one
event at a time each; what a handler raises reaches the caller, and a worker that dies fails
only the event it ran and is replaced."""

from __future__ import annotations

import asyncio
import os
import threading
import time

import pytest

from local_stack.lambdas import API_HANDLER, LambdaPool, WorkerDied

FAKE_APP = "tests.support.fake_lambda_app"


@pytest.fixture
def pool():
    pool = LambdaPool(1, module_name=FAKE_APP)
    pool.warm_up()
    yield pool
    pool.stop_now()


def run(coroutine):
    """Run a scenario; one that would hang (no worker ever free again) fails instead."""
    return asyncio.run(asyncio.wait_for(coroutine, 20))


def test_an_event_runs_in_a_worker_process_and_its_answer_comes_back(pool):
    answer = run(pool.invoke(API_HANDLER, {"echo": "hello"}))

    assert answer["echo"] == "hello"
    assert answer["pid"] != os.getpid()


def test_what_the_handler_raises_is_raised_to_the_caller(pool):
    with pytest.raises(ValueError, match="no such thing"):
        run(pool.invoke(API_HANDLER, {"raise": "no such thing"}))


def test_a_worker_that_dies_fails_only_its_event_and_a_fresh_one_takes_the_next():
    async def scenario(pool: LambdaPool):
        first = await pool.invoke(API_HANDLER, {})
        with pytest.raises(WorkerDied):
            await pool.invoke(API_HANDLER, {"die": True})
        after = await pool.invoke(API_HANDLER, {"echo": "still here"})
        return first, after

    pool = LambdaPool(1, module_name=FAKE_APP)
    try:
        first, after = run(scenario(pool))
    finally:
        pool.stop_now()
    assert after["echo"] == "still here"
    assert after["pid"] != first["pid"]


def test_events_beyond_the_workers_wait_for_a_free_one_and_all_are_answered():
    async def scenario(pool: LambdaPool):
        return await asyncio.gather(*[pool.invoke(API_HANDLER, {"echo": n, "sleep_s": 0.05})
                                      for n in range(6)])

    pool = LambdaPool(2, module_name=FAKE_APP)
    try:
        answers = run(scenario(pool))
    finally:
        pool.stop_now()
    assert [a["echo"] for a in answers] == list(range(6))
    assert len({a["pid"] for a in answers}) == 2


def test_a_thread_invokes_through_the_event_loop(pool):
    async def scenario():
        pool.attach(asyncio.get_running_loop())
        return await asyncio.to_thread(pool.invoke_blocking, API_HANDLER, {"echo": "from REST"})

    assert run(scenario())["echo"] == "from REST"


def test_stop_now_cuts_a_running_event_short(pool):
    async def scenario():
        running = asyncio.ensure_future(pool.invoke(API_HANDLER, {"sleep_s": 30}))
        await asyncio.sleep(0.2)
        started = time.monotonic()
        pool.stop_now()
        with pytest.raises(WorkerDied):
            await running
        return time.monotonic() - started

    assert run(scenario()) < 5


def test_a_readiness_event_with_nothing_to_read_does_not_block_the_loop(pool):
    """Ctrl-C's graceful exit is raised from inside a loop iteration, which can leave one
    answer's readiness event queued twice: the second must find nothing and return."""
    async def scenario():
        await pool.invoke(API_HANDLER, {})  # attached, and the only answer already read
        (container,) = pool._containers
        reading = threading.Thread(target=pool._answered, args=(container,), daemon=True)
        reading.start()
        reading.join(timeout=5)
        return reading.is_alive()

    assert run(scenario()) is False
