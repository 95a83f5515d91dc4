"""Conversations, their participants and the per-conversation message counter."""

from __future__ import annotations

from dataclasses import dataclass

from chalicelib.storage.database import Transaction


@dataclass(frozen=True)
class Conversation:
    id: str
    kind: str  # "direct" | "group"
    direct_key: str | None
    title: str | None
    ttl_seconds: int
    last_seq: int
    created_by: str
    created_at: int
    updated_at: int


@dataclass(frozen=True)
class Participant:
    conversation_id: str
    user_id: str
    role: str  # "owner" | "admin" | "member"
    joined_seq: int
    read_seq: int
    delivered_seq: int
    joined_at: int


def direct_key(user_a: str, user_b: str) -> str:
    """The de-duplication key of a 1:1 conversation: the same for either order."""
    first, second = sorted((user_a, user_b))
    return f"{first}:{second}"


def insert_conversation(txn: Transaction, conversation: Conversation) -> None:
    txn.execute(
        "INSERT INTO conversations (id, kind, direct_key, title, ttl_seconds, last_seq,"
        " created_by, created_at, updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (conversation.id, conversation.kind, conversation.direct_key, conversation.title,
         conversation.ttl_seconds, conversation.last_seq, conversation.created_by,
         conversation.created_at, conversation.updated_at),
    )


def get_conversation(txn: Transaction, conversation_id: str) -> Conversation | None:
    txn.execute(
        "SELECT id, kind, direct_key, title, ttl_seconds, last_seq, created_by, created_at,"
        " updated_at FROM conversations WHERE id = %s",
        (conversation_id,),
    )
    row = txn.fetchone()
    return Conversation(**row) if row else None


def get_direct_conversation(txn: Transaction, key: str) -> Conversation | None:
    txn.execute(
        "SELECT id, kind, direct_key, title, ttl_seconds, last_seq, created_by, created_at,"
        " updated_at FROM conversations WHERE direct_key = %s",
        (key,),
    )
    row = txn.fetchone()
    return Conversation(**row) if row else None


def insert_participants(txn: Transaction, participants: list[Participant]) -> None:
    txn.executemany(
        "INSERT INTO participants (conversation_id, user_id, role, joined_seq, read_seq,"
        " delivered_seq, joined_at) VALUES (%s, %s, %s, %s, %s, %s, %s)",
        [(p.conversation_id, p.user_id, p.role, p.joined_seq, p.read_seq, p.delivered_seq,
          p.joined_at) for p in participants],
    )


def list_participants(txn: Transaction, conversation_id: str) -> list[Participant]:
    txn.execute(
        "SELECT conversation_id, user_id, role, joined_seq, read_seq, delivered_seq, joined_at"
        " FROM participants WHERE conversation_id = %s ORDER BY user_id",
        (conversation_id,),
    )
    return [Participant(**row) for row in txn.fetchall()]


def conversation_ids_of_user(txn: Transaction, user_id: str) -> list[str]:
    txn.execute("SELECT conversation_id FROM participants WHERE user_id = %s"
                " ORDER BY conversation_id", (user_id,))
    return [row["conversation_id"] for row in txn.fetchall()]


def allocate_seq(txn: Transaction, conversation_id: str, sender_id: str) -> int | None:
    """The conversation's next seq, or None when the sender is not a participant (or no such
    conversation): the membership check and the counter are one statement, one row lock."""
    return txn.engine.allocate_seq(txn, conversation_id, sender_id)

