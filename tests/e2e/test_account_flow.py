"""The account on the real local stack (`make run`'s): a deletion code read from the outbox as a
person reads the text, `DELETE /me` with a JSON body through the stack's gateway, the open
socket closes, the partner is told, and the phone logs in again as a new user."""

from __future__ import annotations

import pytest
from websockets.exceptions import ConnectionClosed

from tests.e2e.test_messaging_flow import Socket

LEAVER = "+14155550161"
PARTNER = "+14155550162"


def test_a_user_deletes_the_account_and_the_phone_comes_back_as_someone_new(stack):
    leaver, partner = stack.login(LEAVER), stack.login(PARTNER)
    status, chat, _ = stack.request("POST", "/conversations", {"members": [PARTNER]},
                                    token=leaver.access_token)
    assert status == 201
    assert stack.request("POST", f"/conversations/{chat['id']}/accept",
                         token=partner.access_token)[0] == 200
    leaver_socket = Socket(stack.open_socket(leaver))
    partner_socket = Socket(stack.open_socket(partner))
    leaver_socket.send(action="send", conversation_id=chat["id"], client_msg_id="e2e-gone-01",
                       body="this goes with my account", req="s1")
    leaver_socket.wait_for("sent", req="s1")
    partner_socket.wait_for("message", conversation_id=chat["id"])
    status, export, _ = stack.request("GET", "/me/export", token=leaver.access_token)
    assert status == 200 and [m["body"] for m in export["messages"]] == [
        "this goes with my account"]

    status, challenge, _ = stack.request("POST", "/me/delete-challenge",
                                         token=leaver.access_token)
    assert status == 202
    (text, *_) = stack.outbox(LEAVER)
    assert "DELETE" in text["text"]
    status, reply, _ = stack.request("DELETE", "/me", {"challenge_id": challenge["challenge_id"],
                                                       "code": text["code"]},
                                     token=leaver.access_token)
    assert status == 204, reply

    with pytest.raises(ConnectionClosed):
        while True:  # whatever was on its way, then the close
            leaver_socket.connection.recv(timeout=5)
    partner_socket.wait_for("member", conversation_id=chat["id"], user_id=leaver.user_id,
                            change="left")
    assert partner_socket.wait_for("expired", conversation_id=chat["id"])["ranges"] == [[1, 1]]
    assert stack.request("GET", "/me", token=leaver.access_token)[0] == 401
    status, history, _ = stack.request("GET", f"/conversations/{chat['id']}/messages",
                                       token=partner.access_token)
    assert status == 200 and history["messages"] == []

    again = stack.login(LEAVER)
    assert again.user_id != leaver.user_id
    status, listed, _ = stack.request("GET", "/conversations", token=again.access_token)
    assert status == 200 and listed["conversations"] == []
