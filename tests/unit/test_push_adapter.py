"""The push adapter speaks API Gateway's management API: signed posts, deletes, GoneException."""

from __future__ import annotations

import json

import pytest

from chalicelib.adapters.push import ApiGatewayPush
from chalicelib.errors import ConfigError

# Shaped like API Gateway's ids: base64-ish, with '=' (and case that matters).
CONNECTION_ID = "L0SM9cOFvHcCIhw="


def test_a_frame_reaches_the_connection_signed_and_utf8(management_api):
    management_api.live.add(CONNECTION_ID)
    push = ApiGatewayPush(management_api.endpoint)

    delivered = push.send(CONNECTION_ID, {"type": "message", "body": "héllo 👋"})

    assert delivered is True
    (call,) = management_api.calls_to(CONNECTION_ID, "POST")
    assert call.signed
    assert call.body.decode() == '{"type":"message","body":"héllo 👋"}'
    assert json.loads(call.body) == {"type": "message", "body": "héllo 👋"}


def test_a_gone_connection_is_reported_not_raised(management_api):
    push = ApiGatewayPush(management_api.endpoint)

    assert push.send("gone-connection=", {"type": "pong"}) is False
    assert push.disconnect("gone-connection=") is False


def test_disconnect_closes_a_live_connection_once(management_api):
    management_api.live.add(CONNECTION_ID)
    push = ApiGatewayPush(management_api.endpoint)

    assert push.disconnect(CONNECTION_ID) is True
    assert push.disconnect(CONNECTION_ID) is False
    assert len(management_api.calls_to(CONNECTION_ID, "DELETE")) == 1


def test_pushing_without_an_endpoint_names_the_missing_variable():
    with pytest.raises(ConfigError, match="WS_MANAGEMENT_ENDPOINT"):
        ApiGatewayPush(None).send(CONNECTION_ID, {"type": "pong"})
