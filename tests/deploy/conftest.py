"""Fixtures for the deploy tests: one shimmed moto server per run (see aws_stack.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.deploy.aws_stack import start_moto_server, stop_moto_server


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a moto server (tests/deploy/moto_server.py) for this run, stopped at the end.
    Its log is `moto.log` in the fixture's temporary directory."""
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    process, endpoint = start_moto_server(log)
    yield endpoint
    stop_moto_server(process)
