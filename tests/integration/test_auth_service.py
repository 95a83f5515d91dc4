"""Phone login, sessions and revocation, on both database engines."""

from __future__ import annotations

import json

import pytest

from chalicelib.crypto import Keys, keyed_hash
from chalicelib.errors import InvalidInput, NotFound, Unauthorized
from chalicelib.services import sockets
from chalicelib.services.auth import OTP_ATTEMPTS, OTP_TTL_S, AuthService
from chalicelib.services.limits import NoLimits
from chalicelib.services.realtime import Realtime
from chalicelib.services.tokens import Tokens
from chalicelib.storage import users
from tests.support.fakes import TEST_KEYS, RecordingPush, RecordingSms

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
def rt(db, clock, push) -> Realtime:
    return Realtime(db=db, push=push, clock=clock, limiter=NoLimits(), keys=TEST_KEYS)


@pytest.fixture
def auth(rt, sms, tokens) -> AuthService:
    return AuthService(rt=rt, keys=KEYS, tokens=tokens, sms=sms)


def login(auth: AuthService, sms: RecordingSms, phone: str = PHONE, device: str = "phone"):
    challenge = auth.request_code(phone, client_ip="203.0.113.7")
    _, code = sms.sent[-1]  # the text that request just sent
    return auth.verify_code(challenge["challenge_id"], code, device)


def rows(db, table: str) -> list[dict]:
    def select(txn):
        txn.execute(f"SELECT * FROM {table}")
        return txn.fetchall()

    return db.run_read("t", select)


def test_a_code_by_sms_logs_in_and_creates_the_user_once(auth, sms, db):
    reply = auth.request_code(PHONE, client_ip="203.0.113.7")
    session = auth.verify_code(reply["challenge_id"], sms.last_code(PHONE), "Alice's phone")

    assert (reply["expires_in"], reply["resend_after"]) == (OTP_TTL_S, 30)
    assert session.user.phone == PHONE
    principal = auth.authenticate(f"Bearer {session.access_token}")
    assert (principal.user_id, principal.device_id) == (session.user.id, session.device_id)
    second = login(auth, sms, device="laptop")
    assert second.user.id == session.user.id
    assert second.device_id != session.device_id


def test_numbers_in_several_formats_are_one_user(auth, sms):
    first = login(auth, sms, "+1 (415) 555-0101")
    second = login(auth, sms, "0014155550101")

    assert first.user.id == second.user.id
    assert first.user.phone == PHONE


def test_junk_numbers_are_refused_and_nothing_is_sent(auth, sms, db):
    with pytest.raises(InvalidInput):
        auth.request_code("call me maybe", client_ip="203.0.113.7")

    assert sms.sent == []
    assert rows(db, "otp_challenges") == []


def test_the_reply_is_the_same_whether_or_not_the_number_has_an_account(auth, sms):
    login(auth, sms)

    known = auth.request_code(PHONE, client_ip="203.0.113.7")
    unknown = auth.request_code("+14155550199", client_ip="203.0.113.7")

    assert set(known) == set(unknown)
    assert {k: v for k, v in known.items() if k != "challenge_id"} == {
        k: v for k, v in unknown.items() if k != "challenge_id"}


def test_a_wrong_code_says_how_many_attempts_are_left(auth, sms):
    challenge = auth.request_code(PHONE, client_ip="203.0.113.7")
    wrong = "000000" if sms.last_code(PHONE) != "000000" else "111111"

    with pytest.raises(Unauthorized) as raised:
        auth.verify_code(challenge["challenge_id"], wrong, "phone")

    assert raised.value.details == {"attempts_left": OTP_ATTEMPTS - 1}


def test_five_wrong_codes_lock_the_challenge_even_for_the_right_code(auth, sms):
    challenge = auth.request_code(PHONE, client_ip="203.0.113.7")
    right = sms.last_code(PHONE)
    wrong = "000000" if right != "000000" else "111111"
    for _ in range(OTP_ATTEMPTS):
        with pytest.raises(Unauthorized):
            auth.verify_code(challenge["challenge_id"], wrong, "phone")

    with pytest.raises(Unauthorized) as raised:
        auth.verify_code(challenge["challenge_id"], right, "phone")

    assert "attempts_left" not in raised.value.details


def test_an_expired_code_fails(auth, sms, clock):
    challenge = auth.request_code(PHONE, client_ip="203.0.113.7")

    clock.advance(seconds=OTP_TTL_S)

    with pytest.raises(Unauthorized):
        auth.verify_code(challenge["challenge_id"], sms.last_code(PHONE), "phone")


def test_a_superseded_code_fails(auth, sms):
    old = auth.request_code(PHONE, client_ip="203.0.113.7")
    old_code = sms.last_code(PHONE)
    auth.request_code(PHONE, client_ip="203.0.113.7")

    with pytest.raises(Unauthorized):
        auth.verify_code(old["challenge_id"], old_code, "phone")


def test_a_code_logs_in_once(auth, sms):
    challenge = auth.request_code(PHONE, client_ip="203.0.113.7")
    auth.verify_code(challenge["challenge_id"], sms.last_code(PHONE), "phone")

    with pytest.raises(Unauthorized):
        auth.verify_code(challenge["challenge_id"], sms.last_code(PHONE), "phone")


def test_codes_are_never_stored_or_logged_in_clear(auth, sms, db, log_lines):
    challenge = auth.request_code(PHONE, client_ip="203.0.113.7")
    code = sms.last_code(PHONE)
    session = auth.verify_code(challenge["challenge_id"], code, "phone")

    stored = json.dumps(rows(db, "otp_challenges"))
    assert code not in stored
    written = json.dumps(log_lines())
    for secret in (code, session.access_token, session.refresh_token):
        assert secret not in written
    assert session.refresh_token not in json.dumps(rows(db, "refresh_tokens"))


def test_malformed_codes_are_bad_requests_that_spend_no_attempt(auth, sms):
    challenge = auth.request_code(PHONE, client_ip="203.0.113.7")
    for code in ("12345", "1234567", "12a456", 123456, None):
        with pytest.raises(InvalidInput):
            auth.verify_code(challenge["challenge_id"], code, "phone")

    auth.verify_code(challenge["challenge_id"], sms.last_code(PHONE), "phone")


def test_a_pending_user_keeps_their_id_when_they_first_log_in(auth, sms, db, clock):
    pending = db.run_transaction("t", users.get_or_create_user, new_id="01PENDINGUSER0000000000000",
                                 phone=PHONE, phone_key=keyed_hash(KEYS.phone, PHONE),
                                 now_ms=clock.now_ms(), activate=False)

    session = login(auth, sms)

    assert pending.activated_at is None
    assert session.user.id == pending.id
    assert db.run_read("t", users.get_user, pending.id).activated_at == clock.now_ms()


def test_refresh_rotates_the_pair_and_the_old_access_token_keeps_working(auth, sms):
    session = login(auth, sms)

    rotated = auth.refresh(session.refresh_token)

    assert rotated.refresh_token != session.refresh_token
    assert rotated.device_id == session.device_id
    assert auth.authenticate(f"Bearer {rotated.access_token}").device_id == session.device_id


def test_a_reused_refresh_token_revokes_the_device_and_closes_its_sockets(
    auth, sms, db, tokens, rt, push
):
    session = login(auth, sms)
    other = login(auth, sms, device="laptop")
    for device_session, connection_id in ((session, "conn-phone="), (other, "conn-laptop=")):
        ticket = auth.issue_ticket(auth.authenticate(f"Bearer {device_session.access_token}"),
                                   "ws://x")["ticket"]
        sockets.open_connection(ticket, connection_id, tokens=tokens, rt=rt)
    rotated = auth.refresh(session.refresh_token)

    with pytest.raises(Unauthorized):
        auth.refresh(session.refresh_token)  # the stolen copy

    with pytest.raises(Unauthorized):
        auth.refresh(rotated.refresh_token)  # the thief's rotation dies with the device
    with pytest.raises(Unauthorized):
        auth.authenticate(f"Bearer {rotated.access_token}")
    assert push.disconnected == ["conn-phone="]
    assert [r["id"] for r in rows(db, "connections")] == ["conn-laptop="]
    assert auth.authenticate(f"Bearer {other.access_token}").device_id == other.device_id


def test_an_unknown_refresh_token_is_refused_without_revoking_anything(auth, sms):
    session = login(auth, sms)

    with pytest.raises(Unauthorized):
        auth.refresh("a-guess-" + "x" * 30)

    assert auth.authenticate(f"Bearer {session.access_token}").device_id == session.device_id


def test_an_expired_refresh_token_is_refused(auth, sms, clock):
    session = login(auth, sms)

    clock.advance(seconds=31 * 24 * 3600)

    with pytest.raises(Unauthorized):
        auth.refresh(session.refresh_token)


def test_logout_revokes_this_device_only_and_closes_its_sockets(auth, sms, db, tokens, rt,
                                                               push):
    phone, laptop = login(auth, sms), login(auth, sms, device="laptop")
    for device_session, connection_id in ((phone, "conn-phone="), (laptop, "conn-laptop=")):
        principal = auth.authenticate(f"Bearer {device_session.access_token}")
        ticket = auth.issue_ticket(principal, "ws://x")["ticket"]
        sockets.open_connection(ticket, connection_id, tokens=tokens, rt=rt)

    auth.logout(auth.authenticate(f"Bearer {phone.access_token}"))

    assert push.disconnected == ["conn-phone="]
    assert [r["id"] for r in rows(db, "connections")] == ["conn-laptop="]
    with pytest.raises(Unauthorized):
        auth.authenticate(f"Bearer {phone.access_token}")
    with pytest.raises(Unauthorized):
        auth.refresh(phone.refresh_token)
    assert auth.authenticate(f"Bearer {laptop.access_token}").device_id == laptop.device_id


def test_devices_list_my_live_devices_and_mark_the_current_one(auth, sms, clock):
    phone = login(auth, sms)
    clock.advance(seconds=1)
    laptop = login(auth, sms, device="laptop")
    caller = auth.authenticate(f"Bearer {laptop.access_token}")

    listed = auth.list_devices(caller)

    assert [(d["id"], d["name"], d["current"]) for d in listed] == [
        (phone.device_id, "phone", False), (laptop.device_id, "laptop", True)]
    auth.revoke_device(caller, phone.device_id)
    assert [d["id"] for d in auth.list_devices(caller)] == [laptop.device_id]


def test_nobody_can_revoke_another_users_device(auth, sms):
    alice = login(auth, sms)
    bob = login(auth, sms, "+14155550102")

    with pytest.raises(NotFound):
        auth.revoke_device(auth.authenticate(f"Bearer {bob.access_token}"), alice.device_id)

    assert auth.authenticate(f"Bearer {alice.access_token}").device_id == alice.device_id


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer ", "Basic abc", "Token x.y.z"])
def test_requests_without_a_bearer_token_are_unauthorized(auth, header):
    with pytest.raises(Unauthorized):
        auth.authenticate(header)
