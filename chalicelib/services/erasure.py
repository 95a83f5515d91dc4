"""Account deletion: `POST /me/delete-challenge` texts a code to the caller's own phone, as login
does; `DELETE /me {challenge_id, code}` then deletes everything stored about the user in one
transaction and tells the others what went.

What goes: every device (revoked at once: their tokens name devices that no longer exist) and
its sockets, the user's messages in every conversation, their idempotency keys, memberships
with their cursors, refresh tokens, connections, one-time codes, the local SMS outbox rows of
the phone, the blocks they placed, the users row (profile, settings) and the rate-limit rows
keyed by the user, their devices or their connections. Groups are left as a member leaves them
(owner hand-over; the last one out deletes the group); a direct partner keeps the conversation
without the user's messages. Rows that are someone else's keep going without the user's id:
blocks placed on the phone (keyed by its HMAC), conversations the user started. The phone can
sign up again as a new user.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from chalicelib.crypto import keyed_hash
from chalicelib.errors import NotFound
from chalicelib.identity import Principal
from chalicelib.observability import logger
from chalicelib.services import auth
from chalicelib.services.context import Context
from chalicelib.services.delivery import push_frames
from chalicelib.services.expiry import deletion_frames_txn
from chalicelib.services.limits import DEFAULT_POLICIES
from chalicelib.services.membership import Removal, removal_frames_txn
from chalicelib.storage import conversations, erasure, otp, users
from chalicelib.storage.conversations import ACCEPTED, REQUEST
from chalicelib.storage.database import Transaction
from chalicelib.wire import Frame


@dataclass
class _Erasure:
    """What the transaction did, for the pushes after the commit; or why it did nothing."""

    refused: auth.CodeCheck | None = None
    closed_connections: list[str] = field(default_factory=list)
    frames: list[tuple[str, Frame]] = field(default_factory=list)


def request_code(principal: Principal, client_ip: str, ctx: Context) -> dict[str, Any]:
    """`POST /me/delete-challenge`: text a deletion code to the caller's own phone, through
    login's code path (same hashing, expiry, attempts and sending limits)."""
    user = ctx.db.run_read("erasure.user", users.get_user, principal.user_id)
    if user is None:
        raise NotFound("no such user")
    return auth.issue_code(user.phone, client_ip, otp.DELETE, ctx)


def delete_account(principal: Principal, fields: dict[str, Any], ctx: Context) -> None:
    """`DELETE /me {challenge_id, code}`: a wrong code costs an attempt and is `unauthorized`
    with `attempts_left`, as at login; a challenge that is used, expired, locked, another
    phone's or a login code's is `unauthorized` and costs nothing. Then the sockets close and
    the others get `member` (left) and `expired` (unsent) frames."""
    challenge_id, code = auth.code_input(fields.get("challenge_id"), fields.get("code"))
    done = ctx.db.run_transaction("erasure.delete_account", _delete_txn, principal.user_id,
                                  challenge_id, code, ctx.clock.now_ms(), ctx)
    if done.refused is not None:
        auth.refuse_code(done.refused.attempts_left)
    logger.info("account deleted", extra={"connections_closed": len(done.closed_connections),
                                          "frames": len(done.frames)})
    for connection_id in done.closed_connections:
        ctx.push.disconnect(connection_id)
    push_frames(done.frames, ctx)


def _delete_txn(txn: Transaction, user_id: str, challenge_id: str, code: str, now: int,
                ctx: Context) -> _Erasure:
    user = users.get_user(txn, user_id)
    if user is None:  # deleted meanwhile: no open challenge can be theirs any more
        return _Erasure(refused=auth.CodeCheck(None))
    checked = auth.check_code_txn(txn, challenge_id, code, now, ctx, purpose=otp.DELETE,
                                  phone=user.phone)
    if checked.challenge is None:
        return _Erasure(refused=checked)
    users.lock_user(txn, user_id, now)
    done = _Erasure(closed_connections=erasure.delete_connections(txn, user_id))
    devices = erasure.device_ids(txn, user_id)
    joined = erasure.memberships(txn, user_id)
    sent_to = erasure.conversations_sent_to(txn, user_id)
    erasure.lock_conversations(txn, sorted({m.conversation_id for m in joined} | set(sent_to)))
    for membership in joined:
        done.frames += _leave_txn(txn, user_id, membership, now)
    for conversation_id in sorted(set(sent_to) - {m.conversation_id for m in joined}):
        done.frames += _unsend_all_txn(txn, conversation_id, user_id, now)
    erasure.forget_starter(txn, user_id)
    erasure.delete_sends(txn, user_id)
    erasure.delete_devices(txn, user_id, devices)
    erasure.delete_blocks(txn, user_id)
    erasure.delete_codes(txn, user.phone, keyed_hash(ctx.keys.phone, user.phone))
    erasure.delete_rate_limits(txn, sorted(DEFAULT_POLICIES),
                               [user_id, *devices, *done.closed_connections])
    erasure.delete_user(txn, user_id)
    return done


def _leave_txn(txn: Transaction, user_id: str, membership: erasure.Membership,
               now: int) -> list[tuple[str, Frame]]:
    """Take the user out as a member leaves (a direct chat hands nothing over), then delete
    what they sent there. The remaining members get `member` (left, unless the user never
    accepted the conversation), `role` for an heir, and `expired` (unsent) for the messages
    that went."""
    conversation_id = membership.conversation_id
    role = membership.role if membership.kind == "group" else "member"
    departure = conversations.remove_participant(txn, conversation_id, user_id, role)
    if departure.deleted:  # the last one out: the conversation went with everything in it
        return []
    erasure.forget_direct_pair(txn, conversation_id)
    frames = _unsend_all_txn(txn, conversation_id, user_id, now)
    # As a leave tells it (their sockets are closed already): one who had not accepted, unless
    # an heir who owned the group, or who had declined, goes silently; telling the others would
    # show that the phone had an account.
    told = membership.consent == ACCEPTED or (membership.consent == REQUEST and role == "owner")
    removal = Removal(user_id, "left", departure, tell_others=told, tell_them=False)
    return removal_frames_txn(txn, conversation_id, removal, by=user_id) + frames


def _unsend_all_txn(txn: Transaction, conversation_id: str, user_id: str,
                    now: int) -> list[tuple[str, Frame]]:
    """Delete the user's messages in one conversation and tell its members' connections which
    went (`expired`, reason `unsent`, as an unsend does), with the unread counts that fell."""
    seqs = erasure.delete_messages_of(txn, conversation_id, user_id)
    return deletion_frames_txn(txn, conversation_id, [(seq, user_id) for seq in seqs], now,
                               reason="unsent")
