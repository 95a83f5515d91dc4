"""Property tests: whatever a client puts in a query string or a frame field, the answer is a
reply of the protocol (a 4xx with an error body, or an `error` frame with a client error
code), never a 5xx or `internal`. (Finding 9 of the safety review found several of those.)"""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.services.context import Context
from chalicelib.services.limits import NoLimits
from chalicelib.storage import outbox
from tests.integration.messaging_world import World
from tests.support.fakes import TEST_KEYS, RecordingPush

CLIENT_ERRORS = {"bad_request", "not_found", "too_large", "conflict", "forbidden"}
PHONE = "+14155550101"

# Text that breaks naive parsers: other digits, signs, huge numbers, escapes, surrogates.
odd_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["²", "³", "١٢", "-1", "+1", "1e3", "0x10", " 1", "1 ", "", "null",
                     "9" * 5000, str(2**63), str(2**53), "\ud800", "%00", "1.5"]),
    st.integers(min_value=-(10**20), max_value=10**20).map(str),
)
odd_json = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=False), odd_text, st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)
SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture
def token(client, mysql_db) -> str:
    def post(path, body):
        return json.loads(client.http.post(path, headers={"Content-Type": "application/json"},
                                           body=json.dumps(body)).body)

    challenge = post("/auth/otp", {"phone": PHONE})
    code = mysql_db.run_read("t", outbox.sms_for_phone, PHONE)[0].code
    return post("/auth/verify", {"challenge_id": challenge["challenge_id"], "code": code,
                                 "device_name": "fuzz"})["access_token"]


@pytest.fixture
def chat_id(client, token) -> str:
    reply = client.http.post("/conversations", headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        body=json.dumps({"members": ["+14155550102"]}))
    return json.loads(reply.body)["id"]


def assert_client_error_or_ok(response) -> None:
    assert response.status_code < 500, response.body
    if response.status_code >= 400:
        assert json.loads(response.body)["error"]["code"] in CLIENT_ERRORS | {"unauthorized"}


@SETTINGS
@given(after=odd_text, before=odd_text, limit=odd_text,
       which=st.sampled_from(["after_seq", "before_seq", "limit", "both"]))
def test_history_query_strings_never_answer_5xx(client, token, chat_id, after, before, limit,
                                                which):
    params = {"after_seq": after, "before_seq": before, "limit": limit}
    chosen = params if which == "both" else {which: params[which]}
    query = "&".join(f"{k}={quote(v, safe='', errors='surrogatepass')}"
                     for k, v in chosen.items())

    response = client.http.get(f"/conversations/{chat_id}/messages?{query}",
                               headers={"Authorization": f"Bearer {token}"})

    assert_client_error_or_ok(response)


@SETTINGS
@given(limit=odd_text, cursor=odd_text)
def test_conversation_list_query_strings_never_answer_5xx(client, token, limit, cursor):
    query = (f"limit={quote(limit, safe='', errors='surrogatepass')}"
             f"&cursor={quote(cursor, safe='', errors='surrogatepass')}")

    response = client.http.get(f"/conversations?{query}",
                               headers={"Authorization": f"Bearer {token}"})

    assert_client_error_or_ok(response)


@SETTINGS
@given(fields=st.dictionaries(
    st.sampled_from(["display_name", "message_requests", "read_receipts", "user_id",
                     "block", "members", "title", "ttl_seconds"]), odd_json, max_size=4),
       route=st.sampled_from([("PATCH", "/me"), ("POST", "/blocks"),
                              ("POST", "/conversations"), ("POST", "/decline")]))
def test_account_and_conversation_bodies_never_answer_5xx(client, token, chat_id, fields,
                                                          route):
    method, path = route
    if path == "/decline":
        path = f"/conversations/{chat_id}/decline"
    body = json.dumps(fields)

    response = client.http.request(method, path, body=body, headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json"})

    assert_client_error_or_ok(response)


# --- frames -----------------------------------------------------------------------------------


@pytest.fixture
def world(db, clock) -> World:
    push = RecordingPush()
    return World(Context(db=db, push=push, clock=clock, limiter=NoLimits(), keys=TEST_KEYS),
                 push)


@SETTINGS
@given(action=st.sampled_from(["send", "ack", "read", "sync", "ping", "nope", None]),
       fields=st.dictionaries(st.sampled_from(["seq", "body", "client_msg_id", "cursors",
                                               "limit", "req", "conversation_id"]),
                              odd_json, max_size=4),
       keep_chat=st.booleans())
def test_frames_with_odd_fields_never_answer_internal(world, action, fields, keep_chat):
    alice, bob = world.person(), world.person()
    phone = world.device(alice)
    chat = world.chat(alice, bob)
    frame = {"action": action, **fields}
    if keep_chat:
        frame["conversation_id"] = chat
    world.forget_frames()

    world.raw(phone, json.dumps(frame))

    codes = {reply.get("code") for reply in world.received(phone) if reply["type"] == "error"}
    assert codes <= CLIENT_ERRORS


def test_a_body_nested_past_the_parsers_depth_answers_bad_request(client, token):
    response = client.http.post("/conversations", body='{"members":' + "[" * 5000
                                + "]" * 5000 + "}", headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json"})

    assert response.status_code == 400, response.body
    assert json.loads(response.body)["error"]["code"] == "bad_request"


# --- what the frame fuzzer found (tests/integration/test_frame_fuzz.py) -----------------------


@pytest.mark.parametrize("raw", ["[" * 5000 + "]" * 5000, '{"a":' * 1200 + "1" + "}" * 1200,
                                 '{"action":"send","body":' + "[" * 3000 + "]" * 3000 + "}"],
                         ids=["arrays", "objects", "inside a field"])
def test_a_frame_nested_deeper_than_the_parser_goes_is_a_bad_request(world, raw):
    phone = world.device(world.person())
    world.forget_frames()

    world.raw(phone, raw)

    assert [reply["code"] for reply in world.received(phone)] == ["bad_request"]


@pytest.mark.parametrize("action", [[], ["send"], {}, {"send": 1}], ids=repr)
def test_an_action_that_is_not_a_string_is_a_bad_request(world, action):
    phone = world.device(world.person())
    world.forget_frames()

    world.raw(phone, json.dumps({"action": action, "req": 7}))

    assert world.received(phone) == [
        {"type": "error", "code": "bad_request", "req": 7,
         "message": "action must be one of send, ack, read, sync, ping, unsend, typing"}]


@pytest.mark.parametrize("action", ["ping", "send", "nope"])
def test_a_req_that_is_not_text_is_refused_and_the_error_can_be_pushed(world, action):
    phone = world.device(world.person())
    world.forget_frames()

    world.raw(phone, json.dumps({"action": action, "req": "r\ud800"}))  # an escape

    replies = world.received(phone)
    assert [(reply["code"], "req" in reply) for reply in replies] == [("bad_request", False)]
    json.dumps(replies[0], ensure_ascii=False).encode()  # as the push adapter sends it


@pytest.mark.parametrize("client_msg_id", ["abcdefgh\n", "a" * 64 + "\n"])
def test_a_client_msg_id_ending_in_a_newline_is_a_bad_request(world, client_msg_id):
    """Python's `$` matches before a final newline: such an id was stored with its newline,
    or (64 characters and the newline) cut to 64 by MariaDB, so that a later send of the
    64 characters alone was answered as a duplicate of it."""
    alice, bob = world.person(), world.person()
    phone = world.device(alice)
    chat = world.chat(alice, bob)
    world.forget_frames()

    world.send(phone, chat, client_msg_id=client_msg_id)

    assert [reply["code"] for reply in world.received(phone)] == ["bad_request"]
    assert world.count("messages") == world.count("idempotency_keys") == 0
