"""Conversations, their participants and the per-conversation message counter."""

from __future__ import annotations

from dataclasses import dataclass

from chalicelib.storage.database import Later, Packed, Transaction, placeholders


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
    activity_at: int  # the newest message's time, else the creation's: lists page by it


@dataclass(frozen=True)
class Participant:
    conversation_id: str
    user_id: str
    role: str  # "owner" | "admin" | "member"
    joined_seq: int
    read_seq: int
    delivered_seq: int
    joined_at: int
    consent: str = "accepted"  # "accepted" | "request" | "declined" (see CONSENTS)


# A member's consent: a request reveals nothing of them until accepted; a declined member
# has left (the conversation is no longer theirs) while the others see them as before.
ACCEPTED, REQUEST, DECLINED = "accepted", "request", "declined"


def direct_key(user_a: str, user_b: str) -> str:
    """The de-duplication key of a 1:1 conversation: the same for either order."""
    first, second = sorted((user_a, user_b))
    return f"{first}:{second}"


def insert_conversation(txn: Transaction, conversation: Conversation) -> None:
    txn.execute(
        "INSERT INTO conversations (id, kind, direct_key, title, ttl_seconds, last_seq,"
        " created_by, created_at, updated_at, activity_at)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (conversation.id, conversation.kind, conversation.direct_key, conversation.title,
         conversation.ttl_seconds, conversation.last_seq, conversation.created_by,
         conversation.created_at, conversation.updated_at, conversation.activity_at),
    )


def get_conversation(txn: Transaction, conversation_id: str) -> Conversation | None:
    txn.execute(
        "SELECT id, kind, direct_key, title, ttl_seconds, last_seq, created_by, created_at,"
        " updated_at, activity_at FROM conversations WHERE id = %s",
        (conversation_id,),
    )
    row = txn.fetchone()
    return Conversation(**row) if row else None


def get_direct_conversation(txn: Transaction, key: str) -> Conversation | None:
    txn.execute(
        "SELECT id, kind, direct_key, title, ttl_seconds, last_seq, created_by, created_at,"
        " updated_at, activity_at FROM conversations WHERE direct_key = %s",
        (key,),
    )
    row = txn.fetchone()
    return Conversation(**row) if row else None


def insert_participants(txn: Transaction, participants: list[Participant]) -> None:
    txn.executemany(
        "INSERT INTO participants (conversation_id, user_id, role, joined_seq, read_seq,"
        " delivered_seq, joined_at, consent) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
        [(p.conversation_id, p.user_id, p.role, p.joined_seq, p.read_seq, p.delivered_seq,
          p.joined_at, p.consent) for p in participants],
    )


def list_participants(txn: Transaction, conversation_id: str) -> list[Participant]:
    txn.execute(
        "SELECT conversation_id, user_id, role, joined_seq, read_seq, delivered_seq, joined_at,"
        " consent FROM participants WHERE conversation_id = %s ORDER BY user_id",
        (conversation_id,),
    )
    return [Participant(**row) for row in txn.fetchall()]


def lock_conversation(txn: Transaction, conversation_id: str) -> Conversation | None:
    """The conversation, its row locked until the transaction ends: membership changes take
    turns with each other and with sends (which take the same lock for their seq), so a new
    member's `joined_seq` is exact and a group's size is checked against what is really
    there."""
    txn.execute(
        "SELECT id, kind, direct_key, title, ttl_seconds, last_seq, created_by,"  # noqa: S608
        " created_at, updated_at, activity_at FROM conversations WHERE id = %s"
        f"{txn.engine.for_update()}",
        (conversation_id,),
    )
    row = txn.fetchone()
    return Conversation(**row) if row else None


def rejoin_participant(txn: Transaction, conversation_id: str, user_id: str, *, consent: str,
                       at_seq: int, now_ms: int) -> None:
    """Bring back a member who had declined, as if newly added: a plain member again, whose
    history and cursors start at `at_seq` and whose standing (for a hand-over) starts now."""
    txn.execute(
        "UPDATE participants SET role = 'member', consent = %s, joined_seq = %s, read_seq = %s,"
        " delivered_seq = %s, joined_at = %s WHERE conversation_id = %s AND user_id = %s",
        (consent, at_seq, at_seq, at_seq, now_ms, conversation_id, user_id))


def set_role(txn: Transaction, conversation_id: str, user_id: str, role: str) -> bool:
    """Give a member `role`; True if it changed."""
    txn.execute("UPDATE participants SET role = %s"
                " WHERE conversation_id = %s AND user_id = %s AND role <> %s",
                (role, conversation_id, user_id, role))
    return txn.rowcount == 1


@dataclass(frozen=True)
class Departure:
    """What taking a member out did: who owns the group now, when the owner left and someone
    was left to take over; and whether they were the last one out, so that the conversation,
    its messages and their idempotency keys are gone."""

    new_owner: str | None
    deleted: bool


def remove_participant(txn: Transaction, conversation_id: str, user_id: str,
                       role: str) -> Departure:
    """Take a member (whose `role` the caller read) out of a conversation. An owner leaving
    hands ownership to the longest-standing admin, else member, preferring those who accepted
    the conversation; when nobody who has not declined it remains, the conversation is
    deleted at once, with everything in it."""
    txn.execute("DELETE FROM participants WHERE conversation_id = %s AND user_id = %s",
                (conversation_id, user_id))
    txn.execute(
        "SELECT user_id FROM participants WHERE conversation_id = %s AND consent <> 'declined'"
        " ORDER BY CASE role WHEN 'owner' THEN 0 WHEN 'admin' THEN 1 ELSE 2 END,"
        " CASE consent WHEN 'accepted' THEN 0 ELSE 1 END, joined_at, user_id LIMIT 1",
        (conversation_id,))
    heir = txn.fetchone()
    if heir is None:
        delete_conversation(txn, conversation_id)
        return Departure(new_owner=None, deleted=True)
    if role != "owner":
        return Departure(new_owner=None, deleted=False)
    txn.execute("UPDATE participants SET role = 'owner' WHERE conversation_id = %s"
                " AND user_id = %s", (conversation_id, heir["user_id"]))
    return Departure(new_owner=heir["user_id"], deleted=False)


def delete_conversation(txn: Transaction, conversation_id: str) -> None:
    """The conversation and everything in it, physically: messages, their idempotency keys,
    every participant row (declined ones too)."""
    for table, column in (("messages", "conversation_id"),
                          ("idempotency_keys", "conversation_id"),
                          ("participants", "conversation_id"), ("conversations", "id")):
        txn.execute(f"DELETE FROM {table} WHERE {column} = %s",  # noqa: S608 - fixed names
                    (conversation_id,))


def allocate_seq(txn: Transaction, conversation_id: str, sender_id: str,
                 now_ms: int, *, count: int = 1) -> int | None:
    """Take the conversation's next `count` seqs and return the last of them, or None when
    the sender is not a participant (or has declined it, or no such conversation): the
    membership check, the counter and the conversation's activity time are one statement,
    one row lock."""
    return txn.engine.allocate_seq(txn, conversation_id, sender_id, now_ms, count=count)


@dataclass(frozen=True)
class Cursors:
    """A member's cursors, and the conversation's last seq that caps them."""

    read: int
    delivered: int
    last_seq: int


def move_cursors(txn: Transaction, conversation_id: str, user_id: str,
                 moved: dict[str, int]) -> Later[bool]:
    """Queue: move the member's cursors named in `moved` ("read", "delivered") forward to
    their values, none of them back. Nothing is locked before: the first one named leads,
    and the row is only updated if it is still behind, so of two devices moving it at once
    the one that goes second finds it moved (False) and says nothing."""
    columns = {"read": "read_seq", "delivered": "delivered_seq"}  # names from a fixed map
    assignments = ", ".join(f"{columns[name]} = CASE WHEN {columns[name]} < %s THEN %s"
                            f" ELSE {columns[name]} END" for name in moved)
    lead, lead_seq = next(iter(moved.items()))
    return txn.later(
        f"UPDATE participants SET {assignments}"  # noqa: S608
        " WHERE conversation_id = %s AND user_id = %s AND consent <> 'declined'"
        f" AND {columns[lead]} < %s",
        (*(seq for value in moved.values() for seq in (value, value)), conversation_id,
         user_id, lead_seq),
        read=lambda result: result.rowcount == 1)


def get_participant(txn: Transaction, conversation_id: str, user_id: str) -> Participant | None:
    txn.execute(
        "SELECT conversation_id, user_id, role, joined_seq, read_seq, delivered_seq, joined_at,"
        " consent FROM participants WHERE conversation_id = %s AND user_id = %s",
        (conversation_id, user_id),
    )
    row = txn.fetchone()
    return Participant(**row) if row else None


_MINE = (
    "SELECT c.id, c.kind, c.direct_key, c.title, c.ttl_seconds, c.last_seq, c.created_by,"
    " c.created_at, c.updated_at, c.activity_at, p.role, p.joined_seq, p.read_seq,"
    " p.delivered_seq, p.joined_at, p.consent"
    " FROM participants p JOIN conversations c ON c.id = p.conversation_id"
    " WHERE p.user_id = %s AND p.consent <> 'declined'"
)


def conversations_of_user(txn: Transaction, user_id: str) -> list[tuple[Conversation, Participant]]:
    """Every conversation the user is in (declined ones are no longer theirs), with their
    own participant row; the latest activity first."""
    txn.execute(_MINE + " ORDER BY c.activity_at DESC, c.id DESC", (user_id,))
    return [_mine(row, user_id) for row in txn.fetchall()]


def conversation_of_user(txn: Transaction, user_id: str,
                         conversation_id: str) -> tuple[Conversation, Participant] | None:
    """One conversation of the user's (not one they declined), with their participant row."""
    txn.execute(_MINE + " AND c.id = %s", (user_id, conversation_id))
    row = txn.fetchone()
    return _mine(row, user_id) if row else None


def page_of_user(txn: Transaction, user_id: str, *, before: tuple[int, str] | None,
                 limit: int) -> list[tuple[Conversation, Participant]]:
    """Up to `limit` of the user's conversations by latest activity, newest first, after the
    keyset `before` = (activity_at, id) of the previous page's last one."""
    if before is None:
        txn.execute(_MINE + " ORDER BY c.activity_at DESC, c.id DESC LIMIT %s",
                    (user_id, limit))
    else:
        activity_at, conversation_id = before
        txn.execute(
            _MINE + " AND (c.activity_at < %s OR (c.activity_at = %s AND c.id < %s))"
            " ORDER BY c.activity_at DESC, c.id DESC LIMIT %s",
            (user_id, activity_at, activity_at, conversation_id, limit))
    return [_mine(row, user_id) for row in txn.fetchall()]


def _mine(row: dict, user_id: str) -> tuple[Conversation, Participant]:
    participant = Participant(row["id"], user_id, row.pop("role"), row.pop("joined_seq"),
                              row.pop("read_seq"), row.pop("delivered_seq"),
                              row.pop("joined_at"), row.pop("consent"))
    return Conversation(**row), participant


def set_consent(txn: Transaction, conversation_id: str, user_id: str, consent: str,
                *, rejoin_at_seq: int | None = None) -> bool:
    """Record a member's consent; `rejoin_at_seq` also restarts their history there (one who
    declined and comes back sees nothing from before). True if the row changed."""
    if rejoin_at_seq is None:
        txn.execute("UPDATE participants SET consent = %s"
                    " WHERE conversation_id = %s AND user_id = %s AND consent <> %s",
                    (consent, conversation_id, user_id, consent))
    else:
        txn.execute("UPDATE participants SET consent = %s, joined_seq = %s, read_seq = %s,"
                    " delivered_seq = %s WHERE conversation_id = %s AND user_id = %s",
                    (consent, rejoin_at_seq, rejoin_at_seq, rejoin_at_seq, conversation_id,
                     user_id))
    return txn.rowcount == 1


def accepted_contacts(txn: Transaction, user_id: str, others: list[str]) -> set[str]:
    """Those of `others` who share a conversation with `user_id` that both have accepted."""
    if not others:
        return set()
    in_list = placeholders(others)
    txn.execute(
        "SELECT DISTINCT theirs.user_id FROM participants mine"  # noqa: S608
        " JOIN participants theirs ON theirs.conversation_id = mine.conversation_id"
        " WHERE mine.user_id = %s AND mine.consent = 'accepted'"
        f" AND theirs.user_id IN ({in_list}) AND theirs.consent = 'accepted'",
        [user_id, *others],
    )
    return {row["user_id"] for row in txn.fetchall()}


@dataclass(frozen=True)
class Member:
    """A participant as other members see them."""

    conversation_id: str
    user_id: str
    phone: str
    display_name: str | None
    role: str
    consent: str
    read_receipts: bool
    read_seq: int
    delivered_seq: int
    last_seen_at: int | None
    online: bool


def members_of(txn: Transaction, conversation_ids: list[str]) -> list[Member]:
    """Members of these conversations with their cursors and presence, in one query.

    `online` is what `presence` frames last said: a connection counts until the presence sweep
    marks it silent, so a silent drop reads offline here exactly when it is announced."""
    if not conversation_ids:
        return []
    in_list = placeholders(conversation_ids)
    sql = (
        "SELECT p.conversation_id, p.user_id, u.phone, u.display_name, p.role, p.consent,"  # noqa: S608
        " u.read_receipts, p.read_seq, p.delivered_seq, u.last_seen_at,"
        " EXISTS (SELECT 1 FROM connections k WHERE k.user_id = p.user_id AND k.silent = 0)"
        "  AS online"
        " FROM participants p JOIN users u ON u.id = p.user_id"
        " WHERE p.conversation_id IN (" + in_list + ")"
        " ORDER BY p.conversation_id, p.joined_at, p.user_id"
    )
    txn.execute(sql, conversation_ids)
    return [Member(**{**row, "online": bool(row["online"]),
                      "read_receipts": bool(row["read_receipts"])}) for row in txn.fetchall()]


def update_settings(txn: Transaction, conversation_id: str, *, title: str | None,
                    set_title: bool, ttl_seconds: int | None, now_ms: int) -> None:
    if set_title:
        txn.execute("UPDATE conversations SET title = %s, updated_at = %s WHERE id = %s",
                    (title, now_ms, conversation_id))
    if ttl_seconds is not None:
        txn.execute("UPDATE conversations SET ttl_seconds = %s, updated_at = %s WHERE id = %s",
                    (ttl_seconds, now_ms, conversation_id))


@dataclass(frozen=True)
class Listener:
    """A live connection of a member: who may be pushed what."""

    connection_id: str
    user_id: str
    consent: str
    read_receipts: bool
    # A block stands between this member and the user the query named: the member blocked
    # them (a sender), or, asked `either_way`, one of the two blocked the other.
    blocked: bool = False


def connections_of_conversation(txn: Transaction, conversation_id: str,
                                sender_id: str | None = None) -> list[Listener]:
    """Every live connection of every member who has not declined the conversation, and, in
    the same query, whether that member blocked `sender_id`."""
    return listeners_later(txn, conversation_id, sender_id).value


# Whether a conversation has more members than a bound: does its (bound + 1)-th participant row
# exist? At most bound + 1 entries of the primary key are read, never a big group's members.
MEMBER_BEYOND = "(SELECT 1 FROM participants x WHERE x.conversation_id = {} LIMIT 1 OFFSET %s)"


@dataclass(frozen=True)
class Audience:
    """Connections a change reaches from its own invocation: every member's (`complete`), or
    in a conversation bigger than the bound asked for, only one user's own."""

    listeners: list[Listener]
    complete: bool


def listeners_later(txn: Transaction, conversation_id: str, sender_id: str | None = None,
                    *, either_way: bool = False) -> Later[list[Listener]]:
    """Queue `connections_of_conversation`'s query (e.g. to go with a send's COMMIT);
    `either_way`: `blocked` also when `sender_id` blocked the member."""
    columns = _listener_columns(either_way)
    return txn.later(_listeners_sql(columns, bounded=False),
                     (*columns.named(sender_id), conversation_id),
                     read=lambda result: columns.listeners(result.rows))


def audience_later(txn: Transaction, conversation_id: str, user_id: str, *,
                   all_up_to_members: int | None, sender_id: str | None = None,
                   either_way: bool = False) -> Later[Audience]:
    """`listeners_later`, but in a conversation of more than `all_up_to_members` members
    (None: no bound) only `user_id`'s own connections: a send or a cursor in a big group must
    not read (and decode) a thousand rows, and its members learn another way (the fan-out
    worker reads them; the conversation list carries cursors)."""
    columns = _listener_columns(either_way)
    named = columns.named(sender_id)
    if all_up_to_members is None:
        return txn.later(_listeners_sql(columns, bounded=False), (*named, conversation_id),
                         read=lambda result: Audience(columns.listeners(result.rows), True))
    return txn.later(
        _listeners_sql(columns, bounded=True),
        (*named, conversation_id, all_up_to_members, conversation_id, user_id,
         conversation_id, all_up_to_members),
        read=lambda result: Audience(columns.listeners(result.rows),
                                     complete=not any(row["big"] for row in result.rows)))


class _ListenerColumns(Packed):
    """A listener's columns, with `blocked` as one of two subqueries on a named user."""

    def __init__(self, blocked: str) -> None:
        super().__init__(connection_id="k.id", user_id="k.user_id", consent="p.consent",
                         read_receipts="u.read_receipts", blocked=blocked,
                         flags=["read_receipts", "blocked"])
        self._user_params = blocked.count("%s")

    def named(self, user_id: str | None) -> list[str | None]:
        """The named user's parameters, one per placeholder of `blocked`."""
        return [user_id] * self._user_params

    def listeners(self, rows: list[dict]) -> list[Listener]:
        """In connection order (sorted here: an ORDER BY costs the server a temporary table
        and a filesort on every send and receipt)."""
        return sorted((Listener(**row) for row in self.rows(rows)),
                      key=lambda listener: listener.connection_id)


_BLOCKS_SENDER = _ListenerColumns(
    "EXISTS (SELECT 1 FROM blocks b WHERE b.blocker_id = p.user_id AND b.blocked_user_id = %s)")
_BLOCKED_EITHER_WAY = _ListenerColumns(
    "EXISTS (SELECT 1 FROM blocks b"
    " WHERE (b.blocker_id = p.user_id AND b.blocked_user_id = %s)"
    " OR (b.blocker_id = %s AND b.blocked_user_id = p.user_id))")


def _listener_columns(either_way: bool) -> _ListenerColumns:
    return _BLOCKED_EITHER_WAY if either_way else _BLOCKS_SENDER


def _listeners_sql(columns: Packed, *, bounded: bool) -> str:
    """Every live connection of every member who has not declined, with whether a block
    stands between that member and a named user; `bounded`: only one user's when the
    conversation is bigger than a bound. Params: the named user (once or twice),
    [conversation, bound,] conversation[, user, conversation, bound]."""
    beyond = MEMBER_BEYOND.format("%s")
    big = f", {beyond} IS NOT NULL AS big" if bounded else ""
    only_small = f" AND (p.user_id = %s OR {beyond} IS NULL)" if bounded else ""
    return (f"SELECT {columns.sql}{big}"  # noqa: S608 - fixed columns
            " FROM participants p"
            " JOIN connections k ON k.user_id = p.user_id JOIN users u ON u.id = p.user_id"
            f" WHERE p.conversation_id = %s AND p.consent <> 'declined'{only_small}")
