"""Access tokens and tickets: only our own HS256 tokens, for the right audience, in time."""

from __future__ import annotations

import base64
import json

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from chalicelib.clock import FixedClock
from chalicelib.crypto import Keys
from chalicelib.errors import Unauthorized
from chalicelib.services.tokens import ACCESS_TTL_S, LEEWAY_S, TICKET_TTL_S, Tokens

KEYS = Keys.from_secret("unit-test-secret-" + "k" * 32)


@pytest.fixture
def tokens(clock: FixedClock) -> Tokens:
    return Tokens(key=KEYS.jwt, issuer="ephemera", audience="ephemera-api", clock=clock)


def forge(payload: dict, key: bytes | str = KEYS.jwt, algorithm: str = "HS256") -> str:
    return jwt.encode(payload, key, algorithm=algorithm)


def claims(clock: FixedClock, **overrides) -> dict:
    now = clock.now_ms() // 1000
    return {"iss": "ephemera", "aud": "ephemera-api", "sub": "U1", "did": "D1", "ver": 0,
            "iat": now, "nbf": now, "exp": now + 60, **overrides}


def test_an_access_token_reads_back_its_user_device_and_version(tokens):
    token = tokens.access_token("U1", "D1", 3)

    read = tokens.read_access_token(token)

    assert (read.user_id, read.device_id, read.token_version) == ("U1", "D1", 3)


def test_a_ticket_reads_back_with_a_fresh_jti_and_60_second_expiry(tokens, clock):
    first, second = tokens.ticket("U1", "D1"), tokens.ticket("U1", "D1")

    a, b = tokens.read_ticket(first), tokens.read_ticket(second)

    assert (a.user_id, a.device_id) == ("U1", "D1")
    assert a.jti != b.jti
    assert a.expires_at_ms == (clock.now_ms() // 1000 + TICKET_TTL_S) * 1000


def test_access_tokens_expire_after_fifteen_minutes_plus_leeway(tokens, clock):
    token = tokens.access_token("U1", "D1", 0)

    clock.advance(seconds=ACCESS_TTL_S + LEEWAY_S - 1)
    tokens.read_access_token(token)
    clock.advance(seconds=1)
    with pytest.raises(Unauthorized):
        tokens.read_access_token(token)


def _none_alg_token(payload: dict) -> str:
    def part(value: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(payload)}."


def _rs256_token(payload: dict) -> str:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return jwt.encode(payload, pem, algorithm="RS256")


def _tampered(tokens: Tokens) -> str:
    header, payload, signature = tokens.access_token("U1", "D1", 0).split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    body["sub"] = "U2-the-attacker"
    forged = base64.urlsafe_b64encode(json.dumps(body).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


@pytest.mark.parametrize(
    "make_token",
    [
        pytest.param(lambda t, c: _none_alg_token(claims(c)), id="alg-none"),
        pytest.param(lambda t, c: forge(claims(c), key=b"another-key-" * 4), id="wrong-key"),
        pytest.param(lambda t, c: _rs256_token(claims(c)), id="rs256-instead-of-hs256"),
        pytest.param(lambda t, c: forge(claims(c, exp=c.now_ms() // 1000 - LEEWAY_S)),
                     id="expired"),
        pytest.param(lambda t, c: forge(claims(c, nbf=c.now_ms() // 1000 + 120)),
                     id="not-yet-valid"),
        pytest.param(lambda t, c: forge(claims(c, iat=c.now_ms() // 1000 + 120)),
                     id="issued-in-the-future"),
        pytest.param(lambda t, c: forge(claims(c, aud="someone-else")), id="wrong-audience"),
        pytest.param(lambda t, c: forge(claims(c, iss="someone-else")), id="wrong-issuer"),
        pytest.param(lambda t, c: t.ticket("U1", "D1"), id="ticket-used-as-access-token"),
        pytest.param(lambda t, c: _tampered(t), id="tampered-payload"),
        pytest.param(lambda t, c: forge({k: v for k, v in claims(c).items() if k != "exp"}),
                     id="missing-exp"),
        pytest.param(lambda t, c: forge(claims(c, ver="0")), id="version-not-a-number"),
        pytest.param(lambda t, c: "not.a.jwt", id="garbage"),
    ],
)
def test_access_tokens_that_are_not_ours_are_refused(tokens, clock, make_token):
    with pytest.raises(Unauthorized):
        tokens.read_access_token(make_token(tokens, clock))


def test_an_access_token_cannot_open_a_socket(tokens):
    with pytest.raises(Unauthorized):
        tokens.read_ticket(tokens.access_token("U1", "D1", 0))


def test_a_ticket_expires_after_sixty_seconds_plus_leeway(tokens, clock):
    ticket = tokens.ticket("U1", "D1")

    clock.advance(seconds=TICKET_TTL_S + LEEWAY_S)

    with pytest.raises(Unauthorized):
        tokens.read_ticket(ticket)
