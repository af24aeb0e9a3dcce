"""Who a client is, for the per-client limits of the public pages.

The address is the peer's, or the one a trusted reverse proxy forwarded (``serve
--forwarded-allow-ips``; uvicorn applies it, trusting only 127.0.0.1 by default). An
IPv6 client is counted by its /64: one household or one server gets a whole /64 and can
pick any of its 2^64 addresses, so counting single addresses would be no limit at all.
An IPv4 address written as IPv6 (``::ffff:198.51.100.7``) is the IPv4 client.
"""

from __future__ import annotations

import ipaddress

from starlette.requests import Request

IPV6_CLIENT_PREFIX = 64


def client_group(address: str) -> str:
    """The key a client is counted under: an IPv4 address, an IPv6 /64, or the text
    itself when it is not an address (a Unix socket, a test client)."""
    try:
        parsed = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.IPv6Network((parsed, IPV6_CLIENT_PREFIX), strict=False))
    return str(parsed)


def client_of(request: Request) -> str:
    """The counted client of ``request`` (see the module documentation)."""
    return client_group(request.client.host) if request.client else "unknown"
