"""Where a webhook may be sent (the SSRF guard). A URL is checked when it is saved and its host
resolved again before every delivery, and the POST goes to the address that was checked, so a
name that later resolves somewhere private (DNS rebinding) is refused rather than followed.
No Django here."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_URL_LENGTH = 2000

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
    parts = urlsplit(url)
    allowed = ("https",) if https_only else ("https", "http")
    if parts.scheme not in allowed:
        raise UnsafeDestinationError("Must be an https URL." if https_only else "Must be an http or https URL.")
    if parts.username is not None or parts.password is not None:
        raise UnsafeDestinationError("Must not carry a user name or password: the signature authenticates us.")
    if parts.fragment:
        raise UnsafeDestinationError("Must not have a #fragment.")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise UnsafeDestinationError("Has an invalid port.") from None
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise UnsafeDestinationError("Must name a host.")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Destination(scheme=parts.scheme, host=host, port=port, target=target)


def address_refusal(address: Address, allowed: Sequence[Network]) -> str:
    """Empty if ``address`` may receive webhooks; else why not."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if any(address in net for net in allowed):
        return ""
    if address.is_global and not address.is_multicast:
        return ""
    kind = (
        "unspecified" if address.is_unspecified
        else "loopback" if address.is_loopback
        else "link-local" if address.is_link_local
        else "private" if address.is_private
        else "multicast" if address.is_multicast
        else "reserved or non-public"
    )  # fmt: skip
    return f"resolves to {address}, a {kind} address; webhooks go to public addresses only"


def destination_resolve(dest: Destination, *, allowed: Sequence[Network]) -> str:
    """The address to connect to: every address the host resolves to must be allowed (a name with
    one public and one private record is refused, not half-trusted). Raises UnsafeDestinationError."""
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
            raise UnsafeDestinationError(f"The host {dest.host} does not resolve.") from None
        found = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
    if not found:
        raise UnsafeDestinationError(f"The host {dest.host} does not resolve.")
    for address in found:
        refusal = address_refusal(address, allowed)
        if refusal:
            raise UnsafeDestinationError(f"The host {dest.host} {refusal}.")
    return str(found[0])
