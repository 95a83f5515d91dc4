"""The storage contract, run identically on MariaDB and SQLite (each test runs on both)."""

from __future__ import annotations

import pytest

from chalicelib.errors import Conflict
from chalicelib.ids import new_id
from chalicelib.storage import conversations, messages, users
from chalicelib.storage.conversations import Conversation, Participant
from chalicelib.storage.messages import DeletedMessage, Message
from chalicelib.storage.users import Device, User

NOW = 1_767_225_600_000


def make_user(db, phone: str) -> User:
    user = User(id=new_id(), phone=phone, created_at=NOW, activated_at=NOW, last_seen_at=None)
    db.run_transaction("test.insert_user", users.insert_user, user)
    return user


def make_conversation(db, *members: User, kind: str = "group", key: str | None = None):
    conversation = Conversation(
        id=new_id(), kind=kind, direct_key=key, title="friends", ttl_seconds=60, last_seq=0,
        created_by=members[0].id, created_at=NOW, updated_at=NOW, activity_at=NOW,
    )

    def create(txn):
        conversations.insert_conversation(txn, conversation)
        conversations.insert_participants(txn, [
            Participant(conversation.id, m.id, "owner" if i == 0 else "member", 0, 0, 0, NOW)
            for i, m in enumerate(members)
        ])

    db.run_transaction("test.create_conversation", create)
    return conversation


def make_message(conversation, sender, seq: int, *, expires_at: int, body: str = "hi") -> Message:
    return Message(
        id=new_id(), conversation_id=conversation.id, seq=seq, sender_id=sender.id,
        sender_device_id=new_id(), client_msg_id=f"client-{seq:04d}", body=body,
        created_at=NOW, expires_at=expires_at,
    )


def send(db, conversation, sender, *, expires_at: int, body: str = "hi") -> Message | None:
    """What a send does in one transaction: take the next seq as a member, insert."""

    def txn_send(txn):
        seq = conversations.allocate_seq(txn, conversation.id, sender.id, NOW)
        if seq is None:
            return None
        message = make_message(conversation, sender, seq, expires_at=expires_at, body=body)
        messages.insert_message(txn, message)
        return message

    return db.run_transaction("test.send", txn_send)


def test_users_and_devices_read_back_as_written(db):
    alice = make_user(db, "+14155550101")
    device = Device(id=new_id(), user_id=alice.id, name="phone", token_version=0,
                    created_at=NOW, last_used_at=NOW, revoked_at=None)
    db.run_transaction("test.insert_device", users.insert_device, device)

    assert db.run_read("t", users.get_user, alice.id) == alice
    assert db.run_read("t", users.get_user_by_phone, "+14155550101") == alice
    assert db.run_read("t", users.get_device, device.id) == device
    assert db.run_read("t", users.get_user, "no-such-user") is None


def test_a_phone_belongs_to_one_user_only(db):
    make_user(db, "+14155550101")

    with pytest.raises(Conflict):
        make_user(db, "+14155550101")


def test_conversation_and_participants_read_back_as_written(db):
    alice, bob = make_user(db, "+14155550101"), make_user(db, "+14155550102")
    chat = make_conversation(db, alice, bob)

    assert db.run_read("t", conversations.get_conversation, chat.id) == chat
    members = db.run_read("t", conversations.list_participants, chat.id)
    assert {(p.user_id, p.role) for p in members} == {(alice.id, "owner"), (bob.id, "member")}
    assert [c.id for c, _ in db.run_read("t", conversations.conversations_of_user, bob.id)] == [
        chat.id]


def test_one_direct_conversation_per_pair_whichever_side_asks(db):
    alice, bob = make_user(db, "+14155550101"), make_user(db, "+14155550102")
    key = conversations.direct_key(alice.id, bob.id)
    chat = make_conversation(db, alice, bob, kind="direct", key=key)

    assert conversations.direct_key(bob.id, alice.id) == key
    assert db.run_read("t", conversations.get_direct_conversation, key) == chat
    with pytest.raises(Conflict):
        make_conversation(db, bob, alice, kind="direct", key=key)


def test_many_groups_coexist_without_a_direct_key(db):
    alice = make_user(db, "+14155550101")

    make_conversation(db, alice)
    make_conversation(db, alice)

    assert len(db.run_read("t", conversations.conversations_of_user, alice.id)) == 2


def test_allocate_seq_counts_up_for_members(db):
    alice = make_user(db, "+14155550101")
    chat = make_conversation(db, alice)

    seqs = [db.run_transaction("t", conversations.allocate_seq, chat.id, alice.id, NOW)
            for _ in range(3)]

    assert seqs == [1, 2, 3]
    assert db.run_read("t", conversations.get_conversation, chat.id).last_seq == 3


def test_allocate_seq_refuses_a_non_member_and_changes_nothing(db):
    alice, mallory = make_user(db, "+14155550101"), make_user(db, "+14155550199")
    chat = make_conversation(db, alice)

    assert db.run_transaction("t", conversations.allocate_seq, chat.id, mallory.id, NOW) is None
    assert db.run_transaction("t", conversations.allocate_seq, "no-such-chat", alice.id,
                             NOW) is None
    assert db.run_read("t", conversations.get_conversation, chat.id).last_seq == 0


def test_messages_read_back_by_cursor_in_seq_order(db):
    alice = make_user(db, "+14155550101")
    chat = make_conversation(db, alice)
    sent = [send(db, chat, alice, expires_at=NOW + 60_000, body=f"m{i}") for i in range(5)]

    page = db.run_read("t", messages.messages_after, chat.id, after_seq=1, now_ms=NOW, limit=3)

    assert page == sent[1:4]
    assert [m.seq for m in page] == [2, 3, 4]


def test_a_message_is_unreadable_from_the_millisecond_it_expires(db):
    alice = make_user(db, "+14155550101")
    chat = make_conversation(db, alice)
    message = send(db, chat, alice, expires_at=NOW + 10_000)

    def read(now_ms):
        return db.run_read("t", messages.messages_after, chat.id, after_seq=0, now_ms=now_ms,
                           limit=10)

    assert read(NOW + 9_999) == [message]
    assert read(NOW + 10_000) == []


def test_a_seq_is_taken_once_per_conversation(db):
    alice = make_user(db, "+14155550101")
    chat = make_conversation(db, alice)
    send(db, chat, alice, expires_at=NOW + 60_000)

    with pytest.raises(Conflict):
        db.run_transaction("t", messages.insert_message,
                           make_message(chat, alice, 1, expires_at=NOW + 60_000))


def test_bodies_keep_every_unicode_character(db):
    alice = make_user(db, "+14155550101")
    chat = make_conversation(db, alice)
    body = "héllo 👋🏽 世界 \u0000 done"
    send(db, chat, alice, expires_at=NOW + 60_000, body=body)

    (stored,) = db.run_read("t", messages.messages_after, chat.id, after_seq=0, now_ms=NOW,
                            limit=1)
    assert stored.body == body


def test_delete_expired_removes_only_expired_messages_in_batches(db):
    alice = make_user(db, "+14155550101")
    chat = make_conversation(db, alice)
    for offset in (-3, -2, -1, 0, 1, 2):
        send(db, chat, alice, expires_at=NOW + offset)

    first = db.run_transaction("t", messages.delete_expired_batch, now_ms=NOW, limit=3)
    second = db.run_transaction("t", messages.delete_expired_batch, now_ms=NOW, limit=3)
    third = db.run_transaction("t", messages.delete_expired_batch, now_ms=NOW, limit=3)

    assert first == [DeletedMessage(chat.id, seq, alice.id) for seq in (1, 2, 3)]
    assert second == [DeletedMessage(chat.id, 4, alice.id)]
    assert third == []
    left = db.run_read("t", messages.messages_after, chat.id, after_seq=0, now_ms=0, limit=10)
    assert [m.seq for m in left] == [5, 6]


def test_ids_and_client_msg_ids_compare_case_sensitively(db):
    def insert_keys(txn):
        for client_msg_id in ("abcDEF12", "ABCdef12"):
            txn.execute(
                "INSERT INTO idempotency_keys (sender_id, client_msg_id, conversation_id,"
                " message_id, seq, body_hash, created_at, message_expires_at, keep_until)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                ("sender", client_msg_id, "c", new_id(), 1, "0" * 64, NOW, NOW, NOW),
            )
        txn.execute("SELECT COUNT(*) AS n FROM idempotency_keys WHERE client_msg_id = %s",
                    ("abcdef12",))
        return txn.fetchone()["n"]

    assert db.run_transaction("t", insert_keys) == 0


def set_role(db, conversation, user: User, role: str, *, joined_at: int = NOW) -> None:
    db.run_transaction("test.role", lambda txn: txn.execute(
        "UPDATE participants SET role = %s, joined_at = %s"
        " WHERE conversation_id = %s AND user_id = %s",
        (role, joined_at, conversation.id, user.id)))


def test_owner_leaving_hands_the_group_to_the_longest_standing_admin(db):
    owner, member, older_admin, newer_admin = (make_user(db, f"+1415555030{i}")
                                               for i in range(4))
    conversation = make_conversation(db, owner, member, older_admin, newer_admin)
    set_role(db, conversation, older_admin, "admin", joined_at=NOW + 1)
    set_role(db, conversation, newer_admin, "admin", joined_at=NOW + 2)

    departure = db.run_transaction("test.leave", conversations.remove_participant,
                                   conversation.id, owner.id, "owner")

    assert departure == conversations.Departure(new_owner=older_admin.id, deleted=False)
    roles = {p.user_id: p.role for p in db.run_read(
        "test.list", conversations.list_participants, conversation.id)}
    assert roles == {member.id: "member", older_admin.id: "owner", newer_admin.id: "admin"}


def test_owner_leaving_without_admins_hands_the_group_to_the_longest_standing_member(db):
    owner, first, second = (make_user(db, f"+1415555031{i}") for i in range(3))
    conversation = make_conversation(db, owner, second, first)
    set_role(db, conversation, first, "member", joined_at=NOW - 5)

    departure = db.run_transaction("test.leave", conversations.remove_participant,
                                   conversation.id, owner.id, "owner")

    assert departure.new_owner == first.id


def test_a_member_leaving_changes_nobody_elses_role(db):
    owner, member = (make_user(db, f"+1415555032{i}") for i in range(2))
    conversation = make_conversation(db, owner, member)

    departure = db.run_transaction("test.leave", conversations.remove_participant,
                                   conversation.id, member.id, "member")

    assert departure == conversations.Departure(new_owner=None, deleted=False)
    assert [p.user_id for p in db.run_read(
        "test.list", conversations.list_participants, conversation.id)] == [owner.id]


def test_the_last_one_out_deletes_the_conversation_and_everything_in_it(db):
    owner, member = (make_user(db, f"+1415555033{i}") for i in range(2))
    conversation = make_conversation(db, owner, member)
    send(db, conversation, owner, expires_at=NOW + 60_000)
    db.run_transaction("test.key", lambda txn: txn.execute(
        "INSERT INTO idempotency_keys (sender_id, client_msg_id, conversation_id, message_id,"
        " seq, body_hash, created_at, message_expires_at, keep_until)"
        " VALUES (%s, 'client-0001', %s, 'm', 1, '', %s, %s, %s)",
        (owner.id, conversation.id, NOW, NOW + 60_000, NOW + 60_000)))
    db.run_transaction("test.decline", conversations.set_consent, conversation.id, member.id,
                       "declined")

    departure = db.run_transaction("test.leave", conversations.remove_participant,
                                   conversation.id, owner.id, "owner")

    assert departure == conversations.Departure(new_owner=None, deleted=True)

    def count(txn, table: str, column: str) -> int:
        txn.execute(f"SELECT COUNT(*) AS n FROM {table} WHERE {column} = %s",
                    (conversation.id,))
        return int(txn.fetchone()["n"])

    for table, column in (("messages", "conversation_id"), ("idempotency_keys", "conversation_id"),
                          ("participants", "conversation_id"), ("conversations", "id")):
        assert db.run_read("test.count", count, table, column) == 0, table


def test_a_conversations_listeners_come_in_connection_order(db):
    # Sorted by the storage layer, not by the server (no ORDER BY on the hot read): the order
    # pushes go out in stays the same on both engines whatever order rows come back in.
    from chalicelib.storage import connections

    alice, bob = make_user(db, "+14155550101"), make_user(db, "+14155550102")
    conversation = make_conversation(db, alice, bob)
    connection_ids = ["m-last", "A-first", "b-middle", "Z-second"]

    def connect(txn):
        for index, connection_id in enumerate(connection_ids):
            owner = (alice, bob)[index % 2]
            device = Device(new_id(), owner.id, "phone", 1, NOW, NOW, None)
            users.insert_device(txn, device)
            connections.insert_connection(txn, connections.ConnectionRow(
                connection_id, owner.id, device.id, NOW, NOW))

    db.run_transaction("test.connect", connect)
    listeners = db.run_read("test.listeners", conversations.connections_of_conversation,
                            conversation.id)

    assert [listener.connection_id for listener in listeners] == sorted(connection_ids)
    assert {listener.user_id for listener in listeners} == {alice.id, bob.id}
