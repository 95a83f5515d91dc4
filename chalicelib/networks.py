"""The network a request comes from, for limits and decisions that one caller must not be able
to impose on everybody else who asks about the same phone."""

from __future__ import annotations

import ipaddress

from chalicelib.crypto import keyed_hash

# One household, office or small customer usually holds a whole IPv4 /24 or IPv6 /64 (an IPv6
# subscriber gets at least a /64), so hopping addresses inside one gains nothing.
IPV4_PREFIX = 24
IPV6_PREFIX = 64


def source_network(address: str) -> str:
    """The network of `address`: "198.51.100.0/24", "2001:db8:1:2::/64". An address that does
    not parse (API Gateway gave none: "unknown") is a network of its own."""
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return f"unparsed:{address}"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # "::ffff:198.51.100.7" is that IPv4 address
    prefix = IPV4_PREFIX if ip.version == 4 else IPV6_PREFIX
    return str(ipaddress.ip_network((ip, prefix), strict=False))


def network_key(key: bytes, address: str) -> str:
    """An HMAC of the address's network: what rows and limit buckets keep instead of it."""
    return keyed_hash(key, source_network(address))
