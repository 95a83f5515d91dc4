"""Phone login, sessions and revocation, on both database engines."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from chalicelib.crypto import Keys, keyed_hash
from chalicelib.errors import InvalidInput, NotFound, Unauthorized
from chalicelib.services import auth, sockets
from chalicelib.services.auth import OTP_ATTEMPTS, OTP_TTL_S
from chalicelib.services.context import Context
from chalicelib.services.limits import NoLimits
from chalicelib.services.tokens import Tokens
from chalicelib.storage import users
from tests.support.fakes import RecordingPush, RecordingSms

PHONE = "+14155550101"
KEYS = Keys.from_secret("integration-secret-" + "k" * 32)


@pytest.fixture
def sms() -> RecordingSms:
    return RecordingSms()


@pytest.fixture
def push() -> RecordingPush:
    return RecordingPush()


@pytest.fixture
def tokens(clock) -> Tokens:
    return Tokens(key=KEYS.jwt, issuer="ephemera", audience="ephemera-api", clock=clock)


@pytest.fixture
def ctx(db, clock, push) -> Context:
    return Context(db=db, push=push, clock=clock, limiter=NoLimits(), keys=KEYS)


@pytest.fixture
def signin(ctx, sms, tokens) -> Context:
    """The context of the routes that sign people in: tokens and an SMS sender besides."""
    return replace(ctx, tokens=tokens, sms=sms)


def login(signin: Context, sms: RecordingSms, phone: str = PHONE, device: str = "phone"):
    challenge = auth.request_code(phone, client_ip="203.0.113.7", ctx=signin)
    _, code = sms.sent[-1]  # the text that request just sent
    return auth.verify_code(challenge["challenge_id"], code, device, signin)


def rows(db, table: str) -> list[dict]:
    def select(txn):
        txn.execute(f"SELECT * FROM {table}")
        return txn.fetchall()

    return db.run_read("t", select)


def test_a_code_by_sms_logs_in_and_creates_the_user_once(signin, sms, db):
    reply = auth.request_code(PHONE, client_ip="203.0.113.7", ctx=signin)
    session = auth.verify_code(reply["challenge_id"], sms.last_code(PHONE), "Alice's phone",
                               signin)

    assert (reply["expires_in"], reply["resend_after"]) == (OTP_TTL_S, 30)
    assert session.user.phone == PHONE
    principal = auth.authenticate(f"Bearer {session.access_token}", signin)
    assert (principal.user_id, principal.device_id) == (session.user.id, session.device_id)
    second = login(signin, sms, device="laptop")
    assert second.user.id == session.user.id
    assert second.device_id != session.device_id


def test_numbers_in_several_formats_are_one_user(signin, sms):
    first = login(signin, sms, "+1 (415) 555-0101")
    second = login(signin, sms, "0014155550101")

    assert first.user.id == second.user.id
    assert first.user.phone == PHONE


def test_junk_numbers_are_refused_and_nothing_is_sent(signin, sms, db):
    with pytest.raises(InvalidInput):
        auth.request_code("call me maybe", client_ip="203.0.113.7", ctx=signin)

    assert sms.sent == []
    assert rows(db, "otp_challenges") == []


def test_the_reply_is_the_same_whether_or_not_the_number_has_an_account(signin, sms):
    login(signin, sms)

    known = auth.request_code(PHONE, client_ip="203.0.113.7", ctx=signin)
    unknown = auth.request_code("+14155550199", client_ip="203.0.113.7", ctx=signin)

    assert set(known) == set(unknown)
    assert {k: v for k, v in known.items() if k != "challenge_id"} == {
        k: v for k, v in unknown.items() if k != "challenge_id"}


def test_a_wrong_code_says_how_many_attempts_are_left(signin, sms):
    challenge = auth.request_code(PHONE, client_ip="203.0.113.7", ctx=signin)
    wrong = "000000" if sms.last_code(PHONE) != "000000" else "111111"

    with pytest.raises(Unauthorized) as raised:
        auth.verify_code(challenge["challenge_id"], wrong, "phone", signin)

    assert raised.value.details == {"attempts_left": OTP_ATTEMPTS - 1}


def test_five_wrong_codes_lock_the_challenge_even_for_the_right_code(signin, sms):
    challenge = auth.request_code(PHONE, client_ip="203.0.113.7", ctx=signin)
    right = sms.last_code(PHONE)
    wrong = "000000" if right != "000000" else "111111"
    for _ in range(OTP_ATTEMPTS):
        with pytest.raises(Unauthorized):
            auth.verify_code(challenge["challenge_id"], wrong, "phone", signin)

    with pytest.raises(Unauthorized) as raised:
        auth.verify_code(challenge["challenge_id"], right, "phone", signin)

    assert "attempts_left" not in raised.value.details


def test_an_expired_code_fails(signin, sms, clock):
    challenge = auth.request_code(PHONE, client_ip="203.0.113.7", ctx=signin)

    clock.advance(seconds=OTP_TTL_S)

    with pytest.raises(Unauthorized):
        auth.verify_code(challenge["challenge_id"], sms.last_code(PHONE), "phone", signin)


def test_a_superseded_code_fails(signin, sms):
    old = auth.request_code(PHONE, client_ip="203.0.113.7", ctx=signin)
    old_code = sms.last_code(PHONE)
    auth.request_code(PHONE, client_ip="203.0.113.7", ctx=signin)

    with pytest.raises(Unauthorized):
        auth.verify_code(old["challenge_id"], old_code, "phone", signin)


def test_a_code_logs_in_once(signin, sms):
    challenge = auth.request_code(PHONE, client_ip="203.0.113.7", ctx=signin)
    auth.verify_code(challenge["challenge_id"], sms.last_code(PHONE), "phone", signin)

    with pytest.raises(Unauthorized):
        auth.verify_code(challenge["challenge_id"], sms.last_code(PHONE), "phone", signin)


def test_codes_are_never_stored_or_logged_in_clear(signin, sms, db, log_lines):
    challenge = auth.request_code(PHONE, client_ip="203.0.113.7", ctx=signin)
    code = sms.last_code(PHONE)
    session = auth.verify_code(challenge["challenge_id"], code, "phone", signin)

    stored = json.dumps(rows(db, "otp_challenges"))
    assert code not in stored
    written = json.dumps(log_lines())
    for secret in (code, session.access_token, session.refresh_token):
        assert secret not in written
    assert session.refresh_token not in json.dumps(rows(db, "refresh_tokens"))


def test_malformed_codes_are_bad_requests_that_spend_no_attempt(signin, sms):
    challenge = auth.request_code(PHONE, client_ip="203.0.113.7", ctx=signin)
    for code in ("12345", "1234567", "12a456", 123456, None):
        with pytest.raises(InvalidInput):
            auth.verify_code(challenge["challenge_id"], code, "phone", signin)

    auth.verify_code(challenge["challenge_id"], sms.last_code(PHONE), "phone", signin)


def test_a_pending_user_keeps_their_id_when_they_first_log_in(signin, sms, db, clock):
    pending = db.run_transaction("t", users.get_or_create_user, new_id="01PENDINGUSER0000000000000",
                                 phone=PHONE, phone_key=keyed_hash(KEYS.phone, PHONE),
                                 now_ms=clock.now_ms(), activate=False)

    session = login(signin, sms)

    assert pending.activated_at is None
    assert session.user.id == pending.id
    assert db.run_read("t", users.get_user, pending.id).activated_at == clock.now_ms()


def test_refresh_rotates_the_pair_and_the_old_access_token_keeps_working(signin, sms):
    session = login(signin, sms)

    rotated = auth.refresh(session.refresh_token, signin)

    assert rotated.refresh_token != session.refresh_token
    assert rotated.device_id == session.device_id
    assert auth.authenticate(f"Bearer {rotated.access_token}",
                             signin).device_id == session.device_id


def test_a_reused_refresh_token_revokes_the_device_and_closes_its_sockets(
    signin, sms, db, tokens, ctx, push
):
    session = login(signin, sms)
    other = login(signin, sms, device="laptop")
    for device_session, connection_id in ((session, "conn-phone="), (other, "conn-laptop=")):
        principal = auth.authenticate(f"Bearer {device_session.access_token}", signin)
        ticket = auth.issue_ticket(principal, "ws://x", signin)["ticket"]
        sockets.open_connection(ticket, connection_id, signin)
    rotated = auth.refresh(session.refresh_token, signin)

    with pytest.raises(Unauthorized):
        auth.refresh(session.refresh_token, signin)  # the stolen copy

    with pytest.raises(Unauthorized):
        auth.refresh(rotated.refresh_token, signin)  # the thief's rotation dies with the device
    with pytest.raises(Unauthorized):
        auth.authenticate(f"Bearer {rotated.access_token}", signin)
    assert push.disconnected == ["conn-phone="]
    assert [r["id"] for r in rows(db, "connections")] == ["conn-laptop="]
    assert auth.authenticate(f"Bearer {other.access_token}", signin).device_id == other.device_id


def test_an_unknown_refresh_token_is_refused_without_revoking_anything(signin, sms):
    session = login(signin, sms)

    with pytest.raises(Unauthorized):
        auth.refresh("a-guess-" + "x" * 30, signin)

    assert auth.authenticate(f"Bearer {session.access_token}",
                             signin).device_id == session.device_id


def test_an_expired_refresh_token_is_refused(signin, sms, clock):
    session = login(signin, sms)

    clock.advance(seconds=31 * 24 * 3600)

    with pytest.raises(Unauthorized):
        auth.refresh(session.refresh_token, signin)


def test_logout_revokes_this_device_only_and_closes_its_sockets(signin, sms, db, tokens, ctx,
                                                               push):
    phone, laptop = login(signin, sms), login(signin, sms, device="laptop")
    for device_session, connection_id in ((phone, "conn-phone="), (laptop, "conn-laptop=")):
        principal = auth.authenticate(f"Bearer {device_session.access_token}", signin)
        ticket = auth.issue_ticket(principal, "ws://x", signin)["ticket"]
        sockets.open_connection(ticket, connection_id, signin)

    auth.logout(auth.authenticate(f"Bearer {phone.access_token}", signin), signin)

    assert push.disconnected == ["conn-phone="]
    assert [r["id"] for r in rows(db, "connections")] == ["conn-laptop="]
    with pytest.raises(Unauthorized):
        auth.authenticate(f"Bearer {phone.access_token}", signin)
    with pytest.raises(Unauthorized):
        auth.refresh(phone.refresh_token, signin)
    assert auth.authenticate(f"Bearer {laptop.access_token}", signin).device_id == laptop.device_id


def test_devices_list_my_live_devices_and_mark_the_current_one(signin, sms, clock):
    phone = login(signin, sms)
    clock.advance(seconds=1)
    laptop = login(signin, sms, device="laptop")
    caller = auth.authenticate(f"Bearer {laptop.access_token}", signin)

    listed = auth.list_devices(caller, signin)

    assert [(d["id"], d["name"], d["current"]) for d in listed] == [
        (phone.device_id, "phone", False), (laptop.device_id, "laptop", True)]
    auth.revoke_device(caller, phone.device_id, signin)
    assert [d["id"] for d in auth.list_devices(caller, signin)] == [laptop.device_id]


def test_nobody_can_revoke_another_users_device(signin, sms):
    alice = login(signin, sms)
    bob = login(signin, sms, "+14155550102")

    with pytest.raises(NotFound):
        bob_caller = auth.authenticate(f"Bearer {bob.access_token}", signin)
        auth.revoke_device(bob_caller, alice.device_id, signin)

    assert auth.authenticate(f"Bearer {alice.access_token}", signin).device_id == alice.device_id


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer ", "Basic abc", "Token x.y.z"])
def test_requests_without_a_bearer_token_are_unauthorized(signin, header):
    with pytest.raises(Unauthorized):
        auth.authenticate(header, signin)
