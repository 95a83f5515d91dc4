"""Conversations over REST, as a client sees them (Chalice's test client, real MariaDB)."""

from __future__ import annotations

import json

import pytest

from chalicelib.storage import outbox

ALICE, BOB, CAROL, NEWCOMER = "+14155550101", "+14155550102", "+14155550103", "+14155550199"


class Api:
    def __init__(self, client, db) -> None:
        self.client = client
        self.db = db

    def call(self, method: str, path: str, body=None, token: str | None = None):
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        response = self.client.http.request(method, path, headers=headers,
                                            body=json.dumps(body) if body is not None else b"")
        return response.status_code, json.loads(response.body) if response.body else None

    def login(self, phone: str) -> dict:
        _, challenge = self.call("POST", "/auth/otp", {"phone": phone})
        code = self.db.run_read("t", outbox.sms_for_phone, phone)[0].code
        status, session = self.call("POST", "/auth/verify", {
            "challenge_id": challenge["challenge_id"], "code": code, "device_name": "phone"})
        assert status == 200, session
        return session


@pytest.fixture
def api(client, mysql_db) -> Api:
    return Api(client, mysql_db)


def test_a_direct_chat_is_created_once_per_pair(api):
    alice, bob = api.login(ALICE), api.login(BOB)

    created_status, created = api.call("POST", "/conversations", {"members": [BOB]},
                                       alice["access_token"])
    again_status, again = api.call("POST", "/conversations", {"members": ["+1 415 555 0101"]},
                                   bob["access_token"])

    assert (created_status, again_status) == (201, 200)
    assert created["id"] == again["id"]
    assert created["kind"] == "direct"
    assert {m["phone"] for m in created["members"]} == {ALICE, BOB}
    assert (created["ttl_seconds"], created["last_seq"], created["unread_count"]) == (86400, 0, 0)
    assert created["last_message"] is None


def test_a_phone_without_an_account_becomes_a_pending_member_with_the_same_reply(api):
    alice = api.login(ALICE)
    api.login(BOB)

    _, with_account = api.call("POST", "/conversations", {"members": [BOB]},
                               alice["access_token"])
    _, without = api.call("POST", "/conversations", {"members": [NEWCOMER]},
                          alice["access_token"])
    newcomer = api.login(NEWCOMER)
    _, listed = api.call("GET", "/conversations", token=newcomer["access_token"])

    assert set(with_account) == set(without)
    assert [c["id"] for c in listed["conversations"]] == [without["id"]]
    assert newcomer["user"]["id"] in {m["user_id"] for m in without["members"]}


def test_a_group_has_its_title_and_ttl_and_lists_for_every_member(api):
    alice, bob = api.login(ALICE), api.login(BOB)

    status, group = api.call("POST", "/conversations", {
        "members": [BOB, CAROL], "title": "Trip", "ttl_seconds": 3600}, alice["access_token"])
    _, listed = api.call("GET", "/conversations", token=bob["access_token"])

    assert status == 201
    assert (group["kind"], group["title"], group["ttl_seconds"]) == ("group", "Trip", 3600)
    (seen,) = listed["conversations"]
    assert seen["id"] == group["id"] and isinstance(listed["server_time"], int)
    assert len(seen["members"]) == 3


@pytest.mark.parametrize("body", [
    {}, {"members": []}, {"members": "+14155550102"}, {"members": ["nonsense"]},
    {"members": [ALICE]}, {"members": [BOB], "ttl_seconds": 5},
    {"members": [BOB], "ttl_seconds": 2_592_001}, {"members": [BOB], "ttl_seconds": "60"},
    {"members": [BOB], "title": "x" * 201},
])
def test_bad_conversation_requests_are_400_and_create_nothing(api, body):
    alice = api.login(ALICE)

    status, reply = api.call("POST", "/conversations", body, alice["access_token"])
    _, listed = api.call("GET", "/conversations", token=alice["access_token"])

    assert status == 400 and reply["error"]["code"] == "bad_request"
    assert listed["conversations"] == []


def test_only_group_owners_change_a_group_and_either_side_a_direct_chat(api):
    alice, bob = api.login(ALICE), api.login(BOB)
    _, group = api.call("POST", "/conversations", {"members": [BOB, CAROL], "title": "A"},
                        alice["access_token"])
    _, direct = api.call("POST", "/conversations", {"members": [BOB]}, alice["access_token"])
    for chat in (group, direct):  # bob knows alice: he accepts both
        api.call("POST", f"/conversations/{chat['id']}/accept", token=bob["access_token"])

    member_status, member_reply = api.call("PATCH", f"/conversations/{group['id']}",
                                           {"title": "B"}, bob["access_token"])
    owner_status, owner_reply = api.call("PATCH", f"/conversations/{group['id']}",
                                         {"title": "B", "ttl_seconds": 60},
                                         alice["access_token"])
    direct_status, direct_reply = api.call("PATCH", f"/conversations/{direct['id']}",
                                           {"ttl_seconds": 120}, bob["access_token"])

    assert (member_status, member_reply["error"]["code"]) == (403, "forbidden")
    assert (owner_status, owner_reply["title"], owner_reply["ttl_seconds"]) == (200, "B", 60)
    assert (direct_status, direct_reply["ttl_seconds"]) == (200, 120)


def test_a_non_member_gets_404_for_everything_about_a_conversation(api):
    alice, mallory = api.login(ALICE), api.login(CAROL)
    _, chat = api.call("POST", "/conversations", {"members": [BOB]}, alice["access_token"])

    answers = [
        api.call("GET", f"/conversations/{chat['id']}/messages", token=mallory["access_token"]),
        api.call("PATCH", f"/conversations/{chat['id']}", {"title": "mine"},
                 mallory["access_token"]),
        api.call("GET", "/conversations/no-such-id/messages", token=mallory["access_token"]),
    ]

    assert [(status, reply["error"]["code"]) for status, reply in answers] == [
        (404, "not_found")] * 3


def test_conversation_routes_need_a_session(api):
    status, reply = api.call("GET", "/conversations")

    assert (status, reply["error"]["code"]) == (401, "unauthorized")


@pytest.mark.parametrize("query", ["?limit=0", "?limit=201", "?after_seq=-1", "?limit=ten"])
def test_bad_history_queries_are_400(api, query):
    alice = api.login(ALICE)
    _, chat = api.call("POST", "/conversations", {"members": [BOB]}, alice["access_token"])

    status, reply = api.call("GET", f"/conversations/{chat['id']}/messages{query}",
                             token=alice["access_token"])

    assert (status, reply["error"]["code"]) == (400, "bad_request")


@pytest.mark.parametrize("cursor", ["1764582000000.01ARZ3NDEKTSV4RRFFQ69G5FAV%0A", "x", "1.2"])
def test_a_list_cursor_the_server_never_gave_is_400(api, cursor):
    alice = api.login(ALICE)

    status, reply = api.call("GET", f"/conversations?cursor={cursor}",
                             token=alice["access_token"])

    assert (status, reply["error"]["code"]) == (400, "bad_request")
