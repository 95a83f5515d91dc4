"""Small, named uses of the standard library's cryptography: derived keys, keyed hashes, tokens."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass


@dataclass(frozen=True)
class Keys:
    """Purpose-specific keys derived from the one server secret, so no key serves two jobs."""

    jwt: bytes
    otp: bytes
    phone: bytes
    body: bytes

    @classmethod
    def from_secret(cls, secret: str) -> Keys:
        master = secret.encode()
        return cls(
            jwt=derive_key(master, "jwt-signing"),
            otp=derive_key(master, "otp-code"),
            phone=derive_key(master, "phone-key"),
            body=derive_key(master, "body-hash"),
        )


def derive_key(master: bytes, purpose: str) -> bytes:
    """HMAC-SHA256(master, "ephemera/" + purpose): one independent 32-byte key per purpose."""
    return hmac.new(master, f"ephemera/{purpose}".encode(), hashlib.sha256).digest()


def keyed_hash(key: bytes, *parts: str) -> str:
    """Hex HMAC-SHA256 of the parts, unambiguously joined."""
    message = "\x1f".join(parts).encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def sha256_hex(value: str) -> str:
    """For high-entropy random tokens, which need no key to be safe to store."""
    return hashlib.sha256(value.encode()).hexdigest()


def random_token(nbytes: int = 32) -> str:
    return secrets.token_urlsafe(nbytes)


def random_digits(length: int) -> str:
    return f"{secrets.randbelow(10**length):0{length}d}"


def same(a: str, b: str) -> bool:
    """Constant-time comparison."""
    return hmac.compare_digest(a.encode(), b.encode())
