"""`.chalice/config.json` names only functions that exist and keeps the schedule single-file."""

from __future__ import annotations

import json
from pathlib import Path

from app import app

CONFIG = json.loads((Path(__file__).parents[2] / ".chalice" / "config.json").read_text())
# Chalice's names for the functions it makes itself; the WebSocket ones arrive with issue 3.
CHALICE_FUNCTIONS = {"api_handler", "websocket_connect", "websocket_message",
                     "websocket_disconnect"}


def test_stages_are_local_dev_and_prod_on_the_api_stage():
    assert set(CONFIG["stages"]) == {"local", "dev", "prod"}
    assert CONFIG["api_gateway_stage"] == "api"
    for name, stage in CONFIG["stages"].items():
        assert stage["environment_variables"]["STAGE"] == name


def test_per_function_settings_name_real_functions():
    known = CHALICE_FUNCTIONS | set(app.handler_map)
    for stage in ("dev", "prod"):
        assert set(CONFIG["stages"][stage]["lambda_functions"]) <= known


def test_the_scheduled_functions_never_run_twice_at_once():
    for stage in ("dev", "prod"):
        for name in ("scheduled_cleanup", "presence_watch"):
            scheduled = CONFIG["stages"][stage]["lambda_functions"][name]
            assert scheduled["reserved_concurrency"] == 1
