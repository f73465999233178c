"""Where a webhook may be sent (the SSRF guard). A URL is checked when it is saved and its host
resolved again before every delivery, and the POST goes to the address that was checked, so a
name that later resolves somewhere private (DNS rebinding) is refused rather than followed.
No Django here."""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_URL_LENGTH = 2000

logger = logging.getLogger(__name__)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class UnsafeDestinationError(ValueError):
    """Why a webhook URL is refused, in words for whoever configured it."""


@dataclass(frozen=True)
class Destination:
    scheme: str
    host: str
    port: int
    target: str  # path and query, as sent in the request line

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"


def networks(cidrs: Sequence[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)


def destination_parse(url: str, *, https_only: bool) -> Destination:
    if not isinstance(url, str) or not url or len(url) > MAX_URL_LENGTH:
        raise UnsafeDestinationError(f"Must be an absolute URL of at most {MAX_URL_LENGTH} characters.")
    if any(ord(c) < 33 or ord(c) > 126 for c in url):
        raise UnsafeDestinationError("Must be ASCII without spaces or control characters (punycode a domain).")
    try:
        parts = urlsplit(url)
        explicit_port = parts.port
    except ValueError:  # a malformed [IPv6] host, a port out of range
        raise UnsafeDestinationError("Is not a valid URL (check the host and the port).") from None
    if explicit_port == 0:
        raise UnsafeDestinationError("Has an invalid port.")
    allowed = ("https",) if https_only else ("https", "http")
    if parts.scheme not in allowed:
        raise UnsafeDestinationError("Must be an https URL." if https_only else "Must be an http or https URL.")
    if parts.username is not None or parts.password is not None:
        raise UnsafeDestinationError("Must not carry a user name or password: the signature authenticates us.")
    if parts.fragment:
        raise UnsafeDestinationError("Must not have a #fragment.")
    port = explicit_port or (443 if parts.scheme == "https" else 80)
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise UnsafeDestinationError("Must name a host.")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Destination(scheme=parts.scheme, host=host, port=port, target=target)


# IPv6 forms that carry an IPv4 address, which is what they reach and what is judged: NAT64 (a
# DNS64 network turns 10.0.0.1 into 64:ff9b::a00:1), IPv4-compatible and IPv4-translated forms.
_EMBEDDING_IPV4 = tuple(ipaddress.ip_network(n) for n in ("64:ff9b::/96", "64:ff9b:1::/48", "::/96", "::ffff:0:0:0/96"))
# Refused whatever Python's tables of private ranges say in this patch release (they changed
# within 3.11): Teredo and 6to4 tunnel to addresses we cannot judge, fec0::/10 is the old site-local.
_NEVER = tuple(ipaddress.ip_network(n) for n in ("2001::/32", "2002::/16", "fec0::/10", "100.64.0.0/10"))


def _reached(address: Address) -> Address:
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if any(address in net for net in _EMBEDDING_IPV4):
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def address_refusal(address: Address, allowed: Sequence[Network]) -> str:
    """Empty if ``address`` may receive webhooks; else what kind of address it is."""
    if any(address in net for net in allowed):
        return ""
    reached = _reached(address)
    if any(reached in net for net in allowed):
        return ""
    site_local = isinstance(reached, ipaddress.IPv6Address) and reached.is_site_local
    if reached.is_global and not reached.is_multicast and not site_local and not any(reached in n for n in _NEVER):
        return ""
    kind = (
        "an unspecified" if reached.is_unspecified
        else "a loopback" if reached.is_loopback
        else "a link-local" if reached.is_link_local
        else "a private" if reached.is_private
        else "a multicast" if reached.is_multicast
        else "a reserved or non-public"
    )  # fmt: skip
    return f"{kind} address"


def destination_resolve(dest: Destination, *, allowed: Sequence[Network]) -> str:
    """The address to connect to: every address the host resolves to must be allowed (a name with
    one public and one private record is refused, not half-trusted). Raises UnsafeDestinationError
    with one message whether the name does not resolve or resolves somewhere private: it goes back
    to the client, who must not map our internal names and addresses with it. Operators find the
    detail in the log."""
    refused = UnsafeDestinationError(
        f"The host {dest.host} does not resolve to a public address; webhooks go to public addresses only."
    )
    try:
        literal: Address | None = ipaddress.ip_address(dest.host)
    except ValueError:
        literal = None
    if literal is not None:
        found = [literal]
    else:
        try:
            infos = socket.getaddrinfo(dest.host, dest.port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            logger.info("webhook host %s does not resolve", dest.host)
            raise refused from None
        found = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
    if not found:
        raise refused
    for address in found:
        refusal = address_refusal(address, allowed)
        if refusal:
            logger.info("webhook host %s refused: it resolves to %s, %s", dest.host, address, refusal)
            raise refused
    return str(found[0])
