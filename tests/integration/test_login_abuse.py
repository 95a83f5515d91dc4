"""Code requests for someone else's number, with the real limiter on both engines: no network
can lock a number's owner out of login or cancel the code they are waiting for, and a country's
hourly budget stops SMS pumping."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from chalice.test import Client

from app import app
from chalicelib import bootstrap
from chalicelib.errors import RateLimited
from chalicelib.networks import source_network
from chalicelib.services import auth
from chalicelib.services.context import Context
from chalicelib.services.limits import DEFAULT_POLICIES, SlidingWindowLimiter, load_policies
from chalicelib.services.tokens import Tokens
from chalicelib.storage import outbox
from tests.support.fakes import TEST_KEYS, RecordingPush, RecordingSms

VICTIM_PHONE = "+14155550101"
VICTIM_IP = "203.0.113.9"
ATTACKER_IP = "198.51.100.7"
UK_PHONE = "+447400123456"
DAY_MS = 86_400_000


@pytest.fixture
def sms() -> RecordingSms:
    return RecordingSms()


def auth_with_limits(db, clock, sms, env: dict[str, str] | None = None) -> Context:
    """The service as deployed: the real sliding-window limiter with the default policies
    (or `env`'s overrides)."""
    limiter = SlidingWindowLimiter(db=db, clock=clock, policies=load_policies(env or {}))
    ctx = Context(db=db, push=RecordingPush(), clock=clock, limiter=limiter, keys=TEST_KEYS)
    tokens = Tokens(key=TEST_KEYS.jwt, issuer="ephemera", audience="ephemera-api", clock=clock)
    return replace(ctx, tokens=tokens, sms=sms)


@pytest.fixture
def signin(db, clock, sms) -> Context:
    return auth_with_limits(db, clock, sms)


def request(signin: Context, sms: RecordingSms, ip: str,
            phone: str = VICTIM_PHONE) -> tuple[str, str]:
    """Ask for a code from `ip`; the challenge id and the code the phone received."""
    challenge = auth.request_code(phone, client_ip=ip, ctx=signin)
    return challenge["challenge_id"], sms.last_code(phone)


def denied(signin: Context, ip: str, phone: str = VICTIM_PHONE) -> RateLimited | None:
    """The denial of a code request from `ip`, or None if it was let through."""
    try:
        auth.request_code(phone, client_ip=ip, ctx=signin)
    except RateLimited as exc:
        return exc
    return None


def challenge_count(db) -> int:
    def select(txn):
        txn.execute("SELECT COUNT(*) AS n FROM otp_challenges")
        return int(txn.fetchone()["n"])

    return db.run_read("t", select)


def flood_until_denied(signin: Context, clock, ip: str, phone: str = VICTIM_PHONE,
                       spacing_s: int = 601) -> tuple[int, RateLimited]:
    """Request codes from `ip`, one every `spacing_s`, until one is denied: how many got
    through, and the denial."""
    for granted in range(1000):
        refusal = denied(signin, ip, phone)
        if refusal is not None:
            return granted, refusal
        clock.advance(seconds=spacing_s)
    raise AssertionError("never limited")


def test_requests_from_another_network_do_not_lock_the_owner_out(signin, sms, db, clock):
    granted, refusal = flood_until_denied(signin, clock, ATTACKER_IP)
    texted, stored = len(sms.sent), challenge_count(db)

    assert granted == DEFAULT_POLICIES["otp_per_phone_daily"][0]
    assert refusal.retry_after_ms > 3_600_000  # the daily limit, not the 10-minute one
    # The attacker's neighbour in the same /24 is the same network, and stays limited.
    assert denied(signin, "198.51.100.200") is not None
    assert (len(sms.sent), challenge_count(db)) == (texted, stored)  # a denial sends nothing
    challenge_id, code = request(signin, sms, VICTIM_IP)
    session = auth.verify_code(challenge_id, code, "Victim's phone", signin)
    assert session.user.phone == VICTIM_PHONE


def test_a_request_from_another_network_does_not_cancel_the_owners_live_code(signin, sms):
    challenge_id, code = request(signin, sms, VICTIM_IP)

    request(signin, sms, ATTACKER_IP)

    session = auth.verify_code(challenge_id, code, "Victim's phone", signin)
    assert session.user.phone == VICTIM_PHONE


def test_a_new_request_from_the_same_network_supersedes_only_that_networks_code(signin, sms):
    first_id, first_code = request(signin, sms, VICTIM_IP)
    other_id, other_code = request(signin, sms, ATTACKER_IP)
    second_id, second_code = request(signin, sms, "203.0.113.77")  # the victim's /24 again

    with pytest.raises(Exception) as raised:
        auth.verify_code(first_id, first_code, "phone", signin)
    assert raised.value.code == "unauthorized"
    assert "attempts_left" not in raised.value.details  # superseded, not a wrong guess
    assert auth.verify_code(second_id, second_code, "phone", signin).user.phone == VICTIM_PHONE
    assert auth.verify_code(other_id, other_code, "laptop", signin).user.phone == VICTIM_PHONE


def test_the_global_cap_limits_a_phone_across_many_networks(signin, sms, db, clock):
    cap = DEFAULT_POLICIES["otp_per_phone_global"][0]
    for i in range(cap):
        request(signin, sms, f"198.18.{i}.7")
        clock.advance(seconds=60)
    texted, stored = len(sms.sent), challenge_count(db)

    refusal = denied(signin, "198.18.250.7")

    assert refusal is not None and refusal.retry_after_ms > 3_600_000
    assert (len(sms.sent), challenge_count(db)) == (texted, stored)
    clock.advance(ms=refusal.retry_after_ms)
    request(signin, sms, "198.18.250.7")


def test_the_country_budget_limits_codes_to_one_calling_code_and_not_another(db, clock, sms):
    signin = auth_with_limits(db, clock, sms, {"RATE_OTP_PER_COUNTRY": "5/3600"})
    us_phones = [f"+1415555011{i}" for i in range(6)]
    for i, phone in enumerate(us_phones[:5]):
        request(signin, sms, f"198.18.{i}.7", phone)
    texted, stored = len(sms.sent), challenge_count(db)

    refusal = denied(signin, "198.18.99.7", us_phones[5])

    assert refusal is not None and refusal.retry_after_ms > 0
    assert (len(sms.sent), challenge_count(db)) == (texted, stored)
    request(signin, sms, "198.18.99.7", UK_PHONE)  # +44 has its own budget


def test_ipv6_addresses_in_one_64_share_a_bucket_and_another_64_does_not(signin, sms):
    limit = DEFAULT_POLICIES["otp_per_phone"][0]
    for i in range(limit):
        request(signin, sms, f"2001:db8:1:2::{i + 1:x}")

    assert denied(signin, "2001:db8:1:2:ffff:ffff:ffff:ffff") is not None
    challenge_id, code = request(signin, sms, "2001:db8:1:3::1")
    assert auth.verify_code(challenge_id, code, "phone", signin).user.phone == VICTIM_PHONE


@pytest.mark.parametrize(("address", "network"), [
    ("198.51.100.7", "198.51.100.0/24"),
    ("198.51.100.255", "198.51.100.0/24"),
    ("::ffff:198.51.100.7", "198.51.100.0/24"),  # an IPv4 address written as IPv6
    ("2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64"),
    ("unknown", "unparsed:unknown"),
])
def test_an_address_belongs_to_its_ipv4_24_or_ipv6_64(address, network):
    assert source_network(address) == network


def test_requests_without_a_usable_address_share_one_network_of_their_own(signin, sms):
    for _ in range(DEFAULT_POLICIES["otp_per_phone"][0]):
        request(signin, sms, "unknown")

    assert denied(signin, "unknown") is not None
    request(signin, sms, VICTIM_IP)


def test_a_challenge_keeps_a_keyed_hash_of_the_network_and_never_the_address(signin, sms, db):
    request(signin, sms, ATTACKER_IP)

    def select(txn):
        txn.execute("SELECT * FROM otp_challenges")
        return txn.fetchall()

    [row] = db.run_read("t", select)
    assert len(row["network_key"]) == 64
    assert "198.51.100" not in json.dumps(row)


# --- over REST ------------------------------------------------------------------------------


@pytest.fixture
def client(app_env, monkeypatch):
    monkeypatch.setenv("WS_PUBLIC_URL", "ws://127.0.0.1:9/ws")
    monkeypatch.setenv("WS_MANAGEMENT_ENDPOINT", "http://127.0.0.1:9/local")
    monkeypatch.setenv("RATE_OTP_PER_PHONE_GLOBAL", "2/86400")
    bootstrap.reset()
    with Client(app, stage_name="local") as test_client:
        yield test_client


def test_the_global_cap_answers_429_with_retry_after_and_texts_nothing(client, mysql_db):
    replies = [client.http.post("/auth/otp", headers={"Content-Type": "application/json"},
                                body=json.dumps({"phone": VICTIM_PHONE})) for _ in range(3)]

    assert [r.status_code for r in replies] == [202, 202, 429]
    assert int(replies[2].headers["Retry-After"]) > 3600
    assert json.loads(replies[2].body)["error"]["code"] == "rate_limited"
    assert len(mysql_db.run_read("t", outbox.sms_for_phone, VICTIM_PHONE)) == 2


def test_wrong_guesses_from_another_network_do_not_lock_the_owner_out(signin, sms, clock):
    from chalicelib.errors import Unauthorized

    for _ in range(3):  # three codes to the victim's phone, five wrong guesses at each
        challenge_id, code = request(signin, sms, ATTACKER_IP)
        wrong = "000000" if code != "000000" else "111111"
        for _ in range(5):
            try:
                auth.verify_code(challenge_id, wrong, "attacker", signin)
            except (Unauthorized, RateLimited):
                pass
        clock.advance(seconds=1)

    challenge_id, code = request(signin, sms, VICTIM_IP)
    session = auth.verify_code(challenge_id, code, "owner's phone", signin)

    assert session.user.phone == VICTIM_PHONE
