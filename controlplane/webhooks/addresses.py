"""Where webhooks may go: ``https`` URLs of public addresses only (SSRF guard).

A host name is resolved first and every address it resolves to is checked
before any connection is opened; the connection then goes to exactly the
checked addresses (:class:`PublicResolver` is the HTTP client's resolver), so a
name cannot resolve to a public address for the check and a private one for the
connect (DNS rebinding). Literal addresses never reach a resolver, so
:func:`check_url` checks them. ``allow_private_addresses`` lifts both rules
(tests, closed networks).
"""

from __future__ import annotations

import ipaddress
import socket
from typing import ClassVar

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver
from yarl import URL

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class AddressRefused(Exception):
    """The URL or an address its host resolves to is not allowed."""

    code: ClassVar[str] = "address_refused"


def is_public(address: Address) -> bool:
    """Globally routable unicast: not private, loopback, link-local, shared,
    reserved, multicast or unspecified (an IPv4 address inside IPv6 counts as
    itself)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def check_url(url: str, *, allow_private: bool) -> URL:
    """The parsed URL if webhooks may be sent to it; :class:`AddressRefused`
    saying why not."""
    parsed = URL(url)
    allowed = ("https", "http") if allow_private else ("https",)
    if parsed.scheme not in allowed or not parsed.host:
        raise AddressRefused(f"the URL must be {' or '.join(allowed)}://host/…")
    if parsed.user is not None or parsed.password is not None:
        raise AddressRefused("the URL must not hold a user name or password")
    try:
        literal: Address | None = ipaddress.ip_address(parsed.host.strip("[]"))
    except ValueError:
        literal = None
    if literal is not None and not allow_private and not is_public(literal):
        raise AddressRefused(f"the address {literal} is not public")
    return parsed


class PublicResolver(AbstractResolver):
    """Resolves with the system's resolver, then refuses the whole name if any
    of its addresses is not public (unless private addresses are allowed)."""

    def __init__(self, *, allow_private: bool) -> None:
        self._inner = ThreadedResolver()
        self._allow_private = allow_private

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        if not self._allow_private:
            for result in results:
                address = ipaddress.ip_address(result["host"].split("%")[0])
                if not is_public(address):
                    raise AddressRefused(f"{host} resolves to a non-public address")
        return results

    async def close(self) -> None:
        await self._inner.close()


async def check_name(url: URL, *, allow_private: bool) -> None:
    """Refuse a host name that resolves to a non-public address now (it is
    checked again at every delivery); one that does not resolve yet passes."""
    host = url.host or ""
    resolver = PublicResolver(allow_private=allow_private)
    try:
        await resolver.resolve(host, url.port or 443, socket.AF_UNSPEC)
    except OSError:
        return
    finally:
        await resolver.close()
