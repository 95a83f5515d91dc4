"""Managing a group over the local stack, with real sockets: adding, removing, leaving, roles,
and the `member` and `conversation` frames each socket gets (PROTOCOL "Safety, management and
the account")."""

from __future__ import annotations

from tests.e2e.test_messaging_flow import Socket

OLIVE, ADAM, MIA, DAVE = "+14155550401", "+14155550402", "+14155550403", "+14155550404"


def group_of_three(stack):
    """Olive's group with Adam and Mia, both of whom accepted it."""
    olive, adam, mia = stack.login(OLIVE), stack.login(ADAM), stack.login(MIA)
    status, group, _ = stack.request("POST", "/conversations",
                                     {"members": [ADAM, MIA], "title": "Trip"},
                                     token=olive.access_token)
    assert status == 201, group
    for person in (adam, mia):
        status, _, _ = stack.request("POST", f"/conversations/{group['id']}/accept",
                                     token=person.access_token)
        assert status == 200
    return olive, adam, mia, group["id"]


def send(socket: Socket, chat: str, client_msg_id: str, body: str = "hi") -> int:
    socket.send(action="send", conversation_id=chat, client_msg_id=client_msg_id, body=body,
                req=client_msg_id)
    return socket.wait_for("sent", req=client_msg_id)["seq"]


def test_a_removed_members_open_socket_gets_nothing_more_and_their_history_is_gone(stack):
    olive, adam, mia, chat = group_of_three(stack)
    olive_socket, adam_socket = Socket(stack.open_socket(olive)), Socket(stack.open_socket(adam))
    mia_socket = Socket(stack.open_socket(mia))
    send(olive_socket, chat, "before-removal")
    mia_socket.wait_for("message", client_msg_id="before-removal")

    status, _, _ = stack.request("DELETE", f"/conversations/{chat}/members/{mia.user_id}",
                                 token=olive.access_token)

    assert status == 204
    for socket in (olive_socket, adam_socket, mia_socket):
        frame = socket.wait_for("member", user_id=mia.user_id)
        assert (frame["change"], frame["by"]) == ("removed", olive.user_id)
    send(olive_socket, chat, "after-removal")
    adam_socket.wait_for("message", client_msg_id="after-removal")
    olive_socket.send(action="typing", conversation_id=chat, active=True)
    assert [f for f in mia_socket.drain(1.0) if f.get("conversation_id") == chat] == []
    status, error, _ = stack.request("GET", f"/conversations/{chat}/messages",
                                     token=mia.access_token)
    assert (status, error["error"]["code"]) == (404, "not_found")
    mia_socket.send(action="sync", cursors={}, req="s")
    assert mia_socket.wait_for("sync", req="s")["conversations"] == []


def test_a_new_member_learns_of_the_chat_at_once_and_gets_only_what_follows(stack):
    olive, adam, mia, chat = group_of_three(stack)
    olive_socket = Socket(stack.open_socket(olive))
    send(olive_socket, chat, "before-dave")
    dave = stack.login(DAVE)
    dave_socket = Socket(stack.open_socket(dave))

    status, view, _ = stack.request("POST", f"/conversations/{chat}/members",
                                    {"members": ["+1 (415) 555-0404"]}, token=olive.access_token)

    assert status == 200 and DAVE in {m["phone"] for m in view["members"]}
    created = dave_socket.wait_for("conversation")
    assert (created["change"], created["by"], created["conversation"]["id"]) == (
        "created", olive.user_id, chat)
    assert created["conversation"]["request"] is True  # Dave shares nothing with Olive
    assert olive_socket.wait_for("member", user_id=dave.user_id)["change"] == "added"
    assert dave_socket.wait_for("member", user_id=dave.user_id)["change"] == "added"
    status, page, _ = stack.request("GET", f"/conversations/{chat}/messages",
                                    token=dave.access_token)
    assert (status, page["messages"]) == (200, [])
    send(olive_socket, chat, "after-dave")
    assert dave_socket.wait_for("message", client_msg_id="after-dave")["seq"] == 2


def test_the_owner_leaves_an_admin_takes_over_and_the_last_one_out_deletes_all(stack,
                                                                               stack_db):
    olive, adam, mia, chat = group_of_three(stack)
    status, _, _ = stack.request("PATCH", f"/conversations/{chat}/members/{adam.user_id}",
                                 {"role": "admin"}, token=olive.access_token)
    assert status == 200
    mia_socket = Socket(stack.open_socket(mia))
    send(mia_socket, chat, "soon-gone")

    assert stack.request("DELETE", f"/conversations/{chat}/members/{olive.user_id}",
                         token=olive.access_token)[0] == 204
    assert mia_socket.wait_for("member", user_id=olive.user_id)["change"] == "left"
    handed = mia_socket.wait_for("member", user_id=adam.user_id)
    assert (handed["change"], handed["role"], handed["by"]) == ("role", "owner", olive.user_id)
    for person in (mia, adam):
        status, _, _ = stack.request("DELETE",
                                     f"/conversations/{chat}/members/{person.user_id}",
                                     token=person.access_token)
        assert status == 204

    def rows(txn):
        counts = {}
        for table, column in (("conversations", "id"), ("participants", "conversation_id"),
                              ("messages", "conversation_id"),
                              ("idempotency_keys", "conversation_id")):
            txn.execute(f"SELECT COUNT(*) AS n FROM {table} WHERE {column} = %s", (chat,))
            counts[table] = txn.fetchone()["n"]
        return counts

    assert set(stack_db.run_read("t", rows).values()) == {0}


def test_a_timer_change_reaches_the_others_sockets_not_the_changers(stack):
    olive, adam, mia, chat = group_of_three(stack)
    olive_socket, mia_socket = Socket(stack.open_socket(olive)), Socket(stack.open_socket(mia))

    status, _, _ = stack.request("PATCH", f"/conversations/{chat}", {"ttl_seconds": 10},
                                 token=olive.access_token)

    assert status == 200
    frame = mia_socket.wait_for("conversation")
    assert (frame["change"], frame["by"], frame["conversation"]["ttl_seconds"]) == (
        "updated", olive.user_id, 10)
    assert [f for f in olive_socket.drain(1.0) if f["type"] == "conversation"] == []
