"""Consent, blocks and read receipts over the local stack, as clients of the protocol see them
(PROTOCOL "Safety, management and the account")."""

from __future__ import annotations

from tests.e2e.test_messaging_flow import Socket

ALICE, BOB, CAROL = "+14155550101", "+14155550102", "+14155550103"


def listed(stack, session, conversation_id: str) -> dict:
    status, page, _ = stack.request("GET", "/conversations", token=session.access_token)
    assert status == 200, page
    return next(c for c in page["conversations"] if c["id"] == conversation_id)


def accepted_chat(stack, starter, other, other_phone: str) -> dict:
    """A direct chat that both have accepted (people who know each other)."""
    status, chat, _ = stack.request("POST", "/conversations", {"members": [other_phone]},
                                    token=starter.access_token)
    assert status == 201, chat
    status, _, _ = stack.request("POST", f"/conversations/{chat['id']}/accept",
                                 token=other.access_token)
    assert status == 200
    return chat


def member(conversation: dict, user_id: str) -> dict:
    return next(m for m in conversation["members"] if m["user_id"] == user_id)


def test_a_requests_starter_sees_nothing_until_it_is_accepted_then_everything(stack):
    alice, bob = stack.login(ALICE), stack.login(BOB)
    alice_socket = Socket(stack.open_socket(alice))
    stack.request("PATCH", "/me", {"display_name": "Bob"}, token=bob.access_token)
    bob_socket = Socket(stack.open_socket(bob))
    status, chat, _ = stack.request("POST", "/conversations", {"members": [BOB]},
                                    token=alice.access_token)
    assert status == 201

    seen = member(listed(stack, alice, chat["id"]), bob.user_id)
    assert [seen[k] for k in ("display_name", "online", "last_seen_at", "read_seq",
                              "delivered_seq")] == [None] * 5
    assert listed(stack, bob, chat["id"])["request"] is True
    bob_socket.connection.close()
    bob_socket = Socket(stack.open_socket(bob))
    assert [f for f in alice_socket.drain(1.0) if f["type"] == "presence"] == []

    status, accepted, _ = stack.request("POST", f"/conversations/{chat['id']}/accept",
                                        token=bob.access_token)

    assert status == 200 and accepted["request"] is False
    revealed = alice_socket.wait_for("presence", user_id=bob.user_id)
    assert revealed["online"] is True
    seen = member(listed(stack, alice, chat["id"]), bob.user_id)
    assert (seen["display_name"], seen["online"], seen["delivered_seq"]) == ("Bob", True, 0)
    bob_socket.send(action="ping", req="p")
    bob_socket.wait_for("pong", req="p")


def test_decline_with_block_silences_the_starter(stack):
    bob, carol = stack.login(BOB), stack.login(CAROL)
    bob_socket, carol_socket = Socket(stack.open_socket(bob)), Socket(stack.open_socket(carol))
    _, chat, _ = stack.request("POST", "/conversations", {"members": [BOB]},
                               token=carol.access_token)

    status, _, _ = stack.request("POST", f"/conversations/{chat['id']}/decline",
                                 {"block": True}, token=bob.access_token)
    carol_socket.send(action="send", conversation_id=chat["id"], client_msg_id="after-block",
                      body="why?", req="s")

    assert status == 204
    assert carol_socket.wait_for("error", req="s")["code"] == "forbidden"
    assert [f for f in bob_socket.drain(1.0) if f["type"] == "message"] == []
    _, page, _ = stack.request("GET", "/conversations", token=bob.access_token)
    assert page["conversations"] == [] and page["next_cursor"] is None
    _, blocks, _ = stack.request("GET", "/blocks", token=bob.access_token)
    assert [b["user_id"] for b in blocks["blocks"]] == [carol.user_id]
    status, again, _ = stack.request("POST", "/conversations", {"members": [BOB, ALICE]},
                                     token=carol.access_token)
    assert (status, again["error"]["code"]) == (403, "forbidden")


def test_block_then_unblock_over_rest(stack):
    alice, bob = stack.login(ALICE), stack.login(BOB)
    chat = accepted_chat(stack, alice, bob, BOB)
    alice_socket = Socket(stack.open_socket(alice))

    status, blocked, _ = stack.request("POST", "/blocks", {"user_id": alice.user_id},
                                       token=bob.access_token)
    assert status == 200 and blocked["user_id"] == alice.user_id
    assert blocked["display_name"] is None and blocked["blocked_at"] > 0
    alice_socket.send(action="send", conversation_id=chat["id"], client_msg_id="blocked-01",
                      body="hello?", req="1")
    assert alice_socket.wait_for("error", req="1")["code"] == "forbidden"

    status, _, _ = stack.request("DELETE", f"/blocks/{alice.user_id}", token=bob.access_token)
    alice_socket.send(action="send", conversation_id=chat["id"], client_msg_id="unblocked1",
                      body="hello again", req="2")

    assert status == 204
    assert alice_socket.wait_for("sent", req="2")["seq"] == 1
    _, blocks, _ = stack.request("GET", "/blocks", token=bob.access_token)
    assert blocks == {"blocks": []}
    status, reply, _ = stack.request("DELETE", f"/blocks/{alice.user_id}",
                                     token=bob.access_token)
    assert (status, reply["error"]["code"]) == (404, "not_found")


def test_read_receipts_off_hides_reads_both_ways(stack):
    alice, bob = stack.login(ALICE), stack.login(BOB)
    chat = accepted_chat(stack, alice, bob, BOB)
    status, me, _ = stack.request("PATCH", "/me", {"read_receipts": False},
                                  token=bob.access_token)
    assert status == 200 and me["settings"] == {"message_requests": True,
                                                "read_receipts": False}
    alice_socket, bob_socket = Socket(stack.open_socket(alice)), Socket(stack.open_socket(bob))
    alice_socket.send(action="send", conversation_id=chat["id"], client_msg_id="to-bob-001",
                      body="one", req="a")
    alice_socket.wait_for("sent", req="a")
    bob_socket.wait_for("message")
    bob_socket.send(action="send", conversation_id=chat["id"], client_msg_id="to-alice-1",
                    body="two", req="b")
    bob_socket.wait_for("sent", req="b")
    alice_socket.wait_for("message")

    bob_socket.send(action="read", conversation_id=chat["id"], seq=1)
    alice_socket.send(action="read", conversation_id=chat["id"], seq=2)

    assert {r["kind"] for r in alice_socket.drain(1.5) if r["type"] == "receipt"} == {
        "delivered"}
    assert {r["kind"] for r in bob_socket.drain(0.5) if r["type"] == "receipt"} == {
        "delivered"}
    assert member(listed(stack, alice, chat["id"]), bob.user_id)["read_seq"] is None
    assert member(listed(stack, bob, chat["id"]), alice.user_id)["read_seq"] is None
