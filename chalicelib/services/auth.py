"""Phone login with one-time codes, per-device sessions, refresh rotation and revocation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NoReturn

from chalicelib.crypto import (
    derive_key,
    keyed_hash,
    random_digits,
    random_token,
    same,
    sha256_hex,
)
from chalicelib.errors import InvalidInput, NotFound, Unauthorized
from chalicelib.identity import Principal
from chalicelib.ids import new_id, new_user_id
from chalicelib.inputs import text
from chalicelib.networks import network_key
from chalicelib.observability import logger, set_user
from chalicelib.phones import normalize_phone
from chalicelib.services import presence
from chalicelib.services.context import Context
from chalicelib.services.tokens import ACCESS_TTL_S, TICKET_TTL_S
from chalicelib.storage import connections, otp, sessions, users
from chalicelib.storage.database import Transaction
from chalicelib.storage.otp import OtpChallenge
from chalicelib.storage.sessions import RefreshToken
from chalicelib.storage.users import Device, User

OTP_LENGTH = 6
OTP_TTL_S = 5 * 60
OTP_ATTEMPTS = 5
RESEND_AFTER_S = 30
REFRESH_TTL_S = 30 * 24 * 3600
DEVICE_NAME_MAX = 64
MAX_TOKEN_LENGTH = 4096


@dataclass(frozen=True)
class Session:
    """A fresh token pair for one device."""

    access_token: str
    refresh_token: str
    user: User
    device_id: str

    def to_reply(self) -> dict[str, Any]:
        return {
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "expires_in": ACCESS_TTL_S,
            "user": {"id": self.user.id, "phone": self.user.phone},
            "device_id": self.device_id,
        }


@dataclass
class _Outcome:
    """What a transaction decided; the service acts on it after the commit."""

    session: Session | None = None
    attempts_left: int | None = None
    closed_connections: list[str] = field(default_factory=list)
    went_offline: str | None = None  # a user whose last connection the revocation closed


# --- one-time codes ---------------------------------------------------------------------


def request_code(raw_phone: object, client_ip: str, ctx: Context) -> dict[str, Any]:
    """Text a new code to the phone; the reply is the same whether it has an account."""
    phone = normalize_phone(raw_phone, ctx.allowed_countries)
    return issue_code(phone, client_ip, otp.LOGIN, ctx)


def issue_code(phone: str, client_ip: str, purpose: str, ctx: Context) -> dict[str, Any]:
    """Text a new code for `purpose` (`otp.LOGIN`, `otp.DELETE`) to an E.164 phone: the one
    code path, so every code has the same hashing, expiry, attempts and sending limits."""
    phone_key = keyed_hash(ctx.keys.phone, phone)
    network = network_key(_network_hash_key(ctx), client_ip)
    now = ctx.clock.now_ms()
    challenge_id = new_id()
    code = random_digits(OTP_LENGTH)
    challenge = OtpChallenge(
        id=challenge_id, phone=phone, phone_key=phone_key, network_key=network,
        code_hash=_code_hash(challenge_id, code, ctx), attempts_left=OTP_ATTEMPTS,
        created_at=now, expires_at=now + OTP_TTL_S * 1000, consumed_at=None, purpose=purpose,
    )
    limits = _code_request_limits(phone_key, network, _calling_code(phone), client_ip)
    ctx.db.run_transaction("auth.request_code", _request_code_txn, challenge, network, limits,
                          ctx)
    ctx.require_sms().send_code(phone, code, purpose)
    return {"challenge_id": challenge_id, "expires_in": OTP_TTL_S,
            "resend_after": RESEND_AFTER_S}


def verify_code(challenge_id: object, code: object, device_name: object,
                ctx: Context) -> Session:
    """Exchange a code for a session on a new device (creating the user on first login)."""
    challenge_id, code = code_input(challenge_id, code)
    name = _device_name(device_name)
    outcome = ctx.db.run_transaction(
        "auth.verify_code", _verify_txn, challenge_id, code, name, ctx.clock.now_ms(), ctx,
    )
    if outcome.session is None:
        refuse_code(outcome.attempts_left)
    set_user(outcome.session.user.id)
    return outcome.session


def code_input(challenge_id: object, code: object) -> tuple[str, str]:
    """The `{challenge_id, code}` of a code's use, checked (`bad_request` otherwise)."""
    challenge_id = text(challenge_id, "challenge_id", max_length=64)
    if not isinstance(code, str) or len(code) != OTP_LENGTH or not code.isdigit():
        raise InvalidInput(f"code must be the {OTP_LENGTH} digits we sent")
    return challenge_id, code


def refuse_code(attempts_left: int | None) -> NoReturn:
    """`unauthorized` for a code that did not check out, with the attempts left when it was
    a wrong guess at an open challenge."""
    if attempts_left is None:
        raise Unauthorized("this code has expired or was used; ask for a new one")
    raise Unauthorized("wrong code", attempts_left=attempts_left)


@dataclass(frozen=True)
class CodeCheck:
    """A code's use: the challenge, consumed, when the code was right; else the attempts left
    on a wrong guess (None when there was no open challenge for this purpose and phone)."""

    challenge: OtpChallenge | None
    attempts_left: int | None = None


def check_code_txn(txn: Transaction, challenge_id: str, code: str, now: int, ctx: Context, *,
                   purpose: str = otp.LOGIN, phone: str | None = None) -> CodeCheck:
    """Spend an attempt on the challenge (only one for `purpose`, and to `phone` when given)
    and consume it when the code is right. The caller commits either way, so a wrong guess
    costs its attempt."""
    challenge = otp.spend_attempt(txn, challenge_id, now, purpose=purpose, phone=phone)
    if challenge is None:
        return CodeCheck(None)
    # Guesses per number and requesting network across its challenges, so guesses from
    # elsewhere cannot lock the owner out, and a high cap per number alone (each code
    # has its attempts anyway). A denial rolls the spent attempt back.
    per_network = f"{challenge.phone_key}:{challenge.network_key or 'legacy'}"
    ctx.limiter.check_txn(txn, [("verify_per_phone", per_network),
                                  ("verify_per_phone_global", challenge.phone_key)], now)
    if not same(challenge.code_hash, _code_hash(challenge.id, code, ctx)):
        return CodeCheck(None, attempts_left=challenge.attempts_left)
    otp.consume_challenge(txn, challenge.id, now)
    return CodeCheck(challenge)


def _verify_txn(txn: Transaction, challenge_id: str, code: str, device_name: str,
                now: int, ctx: Context) -> _Outcome:
    checked = check_code_txn(txn, challenge_id, code, now, ctx)
    challenge = checked.challenge
    if challenge is None:
        return _Outcome(attempts_left=checked.attempts_left)
    user = users.get_or_create_user(txn, new_id=new_user_id(), phone=challenge.phone,
                                    phone_key=challenge.phone_key, now_ms=now, activate=True)
    device = Device(id=new_id(), user_id=user.id, name=device_name, token_version=0,
                    created_at=now, last_used_at=now, revoked_at=None)
    users.insert_device(txn, device)
    return _Outcome(session=_new_session_txn(txn, user, device, now, ctx))


# --- sessions -----------------------------------------------------------------------


def refresh(refresh_token: object, ctx: Context) -> Session:
    """Rotate a refresh token. Presenting one that was already rotated means it was
    copied: the device is revoked and its sockets closed."""
    token = text(refresh_token, "refresh_token", max_length=MAX_TOKEN_LENGTH)
    outcome = ctx.db.run_transaction(
        "auth.refresh", _refresh_txn, sha256_hex(token), ctx.clock.now_ms(), ctx,
    )
    _after_revocation(outcome, ctx)
    if outcome.session is None:
        raise Unauthorized("refresh token is not valid; log in again")
    set_user(outcome.session.user.id)
    return outcome.session


def _refresh_txn(txn: Transaction, token_hash: str, now: int, ctx: Context) -> _Outcome:
    stored = sessions.get_refresh_token(txn, token_hash)
    if stored is None or stored.expires_at <= now:
        return _Outcome()
    device = users.get_device(txn, stored.device_id)
    if device is None or device.revoked_at is not None:
        return _Outcome()
    if stored.rotated_at is not None or not sessions.mark_rotated(txn, token_hash, now):
        logger.warning("rotated refresh token presented again; revoking the device",
                       extra={"device_id": device.id})
        return _revoke_txn(txn, device, now)
    user = users.get_user(txn, device.user_id)
    assert user is not None
    users.touch_device(txn, device.id, now)
    return _Outcome(session=_new_session_txn(txn, user, device, now, ctx))


def _new_session_txn(txn: Transaction, user: User, device: Device,
                     now: int, ctx: Context) -> Session:
    refresh_token = random_token()
    sessions.insert_refresh_token(txn, RefreshToken(
        token_hash=sha256_hex(refresh_token), device_id=device.id, created_at=now,
        expires_at=now + REFRESH_TTL_S * 1000, rotated_at=None,
    ))
    access_token = ctx.require_tokens().access_token(user.id, device.id, device.token_version)
    return Session(access_token, refresh_token, user, device.id)


def authenticate(authorization: str | None, ctx: Context) -> Principal:
    """The caller of a REST request, from `Authorization: Bearer <access token>`; the
    device's token version is checked, so a revocation takes effect at once."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("send Authorization: Bearer <access_token>")
    claims = ctx.require_tokens().read_access_token(token.strip())
    device = ctx.db.run_read("auth.authenticate", users.get_device, claims.device_id)
    if (device is None or device.revoked_at is not None
            or device.user_id != claims.user_id
            or device.token_version != claims.token_version):
        raise Unauthorized("this session has ended; log in again")
    set_user(claims.user_id)
    return Principal(claims.user_id, claims.device_id)


# --- devices ------------------------------------------------------------------------


def list_devices(principal: Principal, ctx: Context) -> list[dict[str, Any]]:
    devices = ctx.db.run_read("auth.list_devices", users.list_live_devices, principal.user_id)
    return [{"id": d.id, "name": d.name, "created_at": d.created_at,
             "last_used_at": d.last_used_at, "current": d.id == principal.device_id}
            for d in devices]


def logout(principal: Principal, ctx: Context) -> None:
    revoke_device(principal, principal.device_id, ctx)


def revoke_device(principal: Principal, device_id: str, ctx: Context) -> None:
    """Revoke one of the caller's devices and close its sockets; another user's device
    is `not_found`, never revealed."""
    outcome = ctx.db.run_transaction("auth.revoke_device", _revoke_own_device_txn,
                                    principal.user_id, device_id, ctx.clock.now_ms())
    if outcome is None:
        raise NotFound("no such device")
    _after_revocation(outcome, ctx)


# --- WebSocket tickets --------------------------------------------------------------


def issue_ticket(principal: Principal, ws_url: str, ctx: Context) -> dict[str, Any]:
    ctx.limiter.check([("ticket_per_user", principal.user_id)])
    ticket = ctx.require_tokens().ticket(principal.user_id, principal.device_id)
    return {"ticket": ticket, "url": ws_url, "expires_in": TICKET_TTL_S}


def _after_revocation(outcome: _Outcome, ctx: Context) -> None:
    """Close the revoked device's sockets (their rows are already gone, so they can do
    nothing more) and announce offline if they were the user's last."""
    for connection_id in outcome.closed_connections:
        ctx.push.disconnect(connection_id)
    if outcome.went_offline is not None:
        presence.announce(outcome.went_offline, online=False,
                          last_seen_at=ctx.clock.now_ms(), ctx=ctx)


def _request_code_txn(txn: Transaction, challenge: OtpChallenge, network: str,
                      limits: list[tuple[str, str]], ctx: Context) -> None:
    """Limits first (a denial stores and sends nothing), then the network's one live
    challenge."""
    ctx.limiter.check_txn(txn, limits, challenge.created_at)
    otp.supersede_live_challenges(txn, challenge.phone_key, network, challenge.created_at,
                                  challenge.purpose)
    otp.insert_challenge(txn, challenge)


def _code_hash(challenge_id: str, code: str, ctx: Context) -> str:
    return keyed_hash(ctx.keys.otp, challenge_id, code)


def _network_hash_key(ctx: Context) -> bytes:
    """Networks are hashed with a key of their own, derived from the phone key (the one that
    keys every OTP limit), so no other hash of ours can be matched against them."""
    return derive_key(ctx.keys.phone, "source-network")


def _code_request_limits(phone_key: str, network: str, calling_code: str,
                         client_ip: str) -> list[tuple[str, str]]:
    """What a code request counts against. The tight per-number limits are per number and
    network, so a caller elsewhere cannot use up the owner's codes; a high cap per number alone
    bounds texts to one phone from many networks (harassment); the calling code's hourly
    budget bounds SMS pumping across many numbers; and the address's own limit."""
    per_network = f"{phone_key}:{network}"
    return [("otp_per_phone", per_network), ("otp_per_phone_daily", per_network),
            ("otp_per_phone_global", phone_key), ("otp_per_country", calling_code),
            ("otp_per_ip", client_ip)]


def _calling_code(phone: str) -> str:
    """The country calling code of an E.164 number ("1" for "+14155550101")."""
    import phonenumbers  # on first use, as in chalicelib/phones.py (cold starts)

    return str(phonenumbers.parse(phone, None).country_code)


def _revoke_own_device_txn(txn: Transaction, user_id: str, device_id: str,
                           now: int) -> _Outcome | None:
    device = users.get_device(txn, device_id)
    if device is None or device.user_id != user_id or device.revoked_at is not None:
        return None
    return _revoke_txn(txn, device, now)


def _revoke_txn(txn: Transaction, device: Device, now: int) -> _Outcome:
    """Revoke the device, forget its refresh tokens and drop its connections (the caller
    closes the sockets after the commit)."""
    users.lock_user(txn, device.user_id, now)  # presence: see services/presence.py
    users.revoke_device(txn, device.id, now)
    sessions.delete_device_tokens(txn, device.id)
    counted = set(connections.live_connection_ids_of_user(txn, device.user_id))
    closed = connections.delete_device_connections(txn, device.id)
    # Offline only if a connection presence counted went, and none it counts is left (a
    # silent one was announced offline when it fell silent).
    went_offline = bool(counted & set(closed)) and not connections.live_connection_ids_of_user(
        txn, device.user_id)
    return _Outcome(closed_connections=closed,
                    went_offline=device.user_id if went_offline else None)


def _device_name(value: object) -> str:
    if value is None:
        return "Unnamed device"
    if not isinstance(value, str) or not value.strip() or len(value.strip()) > DEVICE_NAME_MAX:
        raise InvalidInput(f"device_name must be 1 to {DEVICE_NAME_MAX} characters")
    return value.strip()
