"""Multi-device presence: a user is online while any of their devices holds a live connection.

`presence` frames go to the users who share a conversation with them, only when the first
device connects or the last one goes; the user's row lock makes exactly one connect or
disconnect see "first" or "last". Dead connections (410 on a push, or past API Gateway's idle
and age limits) are dropped the same way as a clean disconnect, so none is ever counted.
"""

from __future__ import annotations

from chalicelib.services import delivery
from chalicelib.services.realtime import Realtime
from chalicelib.storage import connections, conversations, users
from chalicelib.storage.connections import ConnectionRow
from chalicelib.storage.database import Transaction
from chalicelib.wire import presence_frame, receipt_frame

SWEEP_BATCH = 500


def connection_opened_txn(txn: Transaction, row: ConnectionRow, *,
                          user_locked: bool = False) -> bool:
    """Store a new connection inside the caller's transaction (taking the user's lock unless
    the caller holds it already); True if it is the user's first live one (the user just
    came online)."""
    if not user_locked:
        users.lock_user(txn, row.user_id, row.connected_at)
    connections.insert_connection(txn, row)
    return len(connections.connection_ids_of_user(txn, row.user_id)) == 1


def connection_closed_txn(txn: Transaction, connection_id: str,
                          now_ms: int) -> ConnectionRow | None:
    """Forget a connection; the row if it was its user's last one (they just went offline)."""
    row = connections.get_connection(txn, connection_id)
    if row is None:
        return None
    users.lock_user(txn, row.user_id, now_ms)
    # Under the user's lock, the DELETE tells whether a concurrent close (a $disconnect racing
    # a 410, say) got here first; only the one that removed the row may announce.
    if not connections.delete_connection(txn, connection_id):
        return None
    return row if not connections.connection_ids_of_user(txn, row.user_id) else None


def announce(user_id: str, *, online: bool, last_seen_at: int | None, rt: Realtime) -> None:
    """Tell everyone who may see the user's presence; drop whatever turns out gone."""
    frame = presence_frame(user_id, online=online, last_seen_at=last_seen_at)
    audience = rt.db.run_read("presence.audience", connections.connection_ids_of_contacts,
                              user_id)
    delivery.push_frames([(cid, frame) for cid in audience], rt)


def reveal(user_id: str, conversation_id: str, rt: Realtime) -> None:
    """The user just accepted a conversation: its members learn at once what they may now
    see, the user's presence and how far the user has got (`receipt`s for the cursors,
    `read` only between people who both share reads)."""

    def reveal_txn(txn: Transaction) -> list[tuple[str, dict[str, object]]]:
        me = next((member for member in conversations.members_of(txn, [conversation_id])
                   if member.user_id == user_id), None)
        if me is None:
            return []
        presence = presence_frame(user_id, online=me.online, last_seen_at=me.last_seen_at)
        frames = [(cid, presence) for cid in
                  connections.connection_ids_of_contacts(txn, user_id, conversation_id)]
        listeners = conversations.connections_of_conversation(txn, conversation_id)
        for kind, seq in (("delivered", me.delivered_seq), ("read", me.read_seq)):
            receipt = receipt_frame(conversation_id, user_id, kind, seq)
            frames += [(listener.connection_id, receipt) for listener in listeners
                       if seq > 0 and listener.user_id != user_id
                       and (kind == "delivered" or (me.read_receipts
                                                     and listener.read_receipts))]
        return frames

    delivery.push_frames(rt.db.run_read("presence.reveal", reveal_txn), rt)


def close_connection(connection_id: str, rt: Realtime) -> None:
    """A socket is gone ($disconnect, 410, sweep): forget it, announce offline if last."""
    now = rt.clock.now_ms()
    last = rt.db.run_transaction("presence.close", connection_closed_txn, connection_id, now)
    if last is not None:
        announce(last.user_id, online=False, last_seen_at=now, rt=rt)


def sweep_stale_connections(*, idle_timeout_s: int, max_connection_s: int,
                            rt: Realtime) -> int:
    """Remove connections API Gateway has closed without telling us (idle past its limit, or
    older than its maximum), closing them to be sure. Returns how many went."""
    now = rt.clock.now_ms()
    stale = rt.db.run_read(
        "presence.stale", connections.stale_connections,
        idle_before_ms=now - idle_timeout_s * 1000,
        opened_before_ms=now - max_connection_s * 1000, limit=SWEEP_BATCH,
    )
    for row in stale:
        rt.push.disconnect(row.id)
        close_connection(row.id, rt)
    return len(stale)
