"""The SSRF guard: a callback URL is contacted only at a public address (or an allowed one).

Every address the host resolves to is checked, and the connection is then made to the
address that was checked (see dialq.webhooks.transport), so a name that resolves to a public
address for the check and to 169.254.169.254 a moment later (DNS rebinding) gains nothing.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], list[str]]

DEFAULT_PORTS = {"http": 80, "https": 443}


class RefusedURL(Exception):
    """Raised when a callback URL must never be contacted: bad scheme, or a private address."""


@dataclass(frozen=True)
class Target:
    """Where one POST goes: the URL's parts and the checked address to connect to."""

    scheme: str
    host: str
    port: int
    path: str  # path and query, as sent in the request line
    address: str

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"


def system_resolver(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to, in the resolver's order, without duplicates."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def parse_networks(cidrs: Iterable[str]) -> list[IPNetwork]:
    """The allow-list setting as networks; host bits are tolerated ("127.0.0.1/8")."""
    return [ipaddress.ip_network(cidr.strip(), strict=False) for cidr in cidrs]


def forbidden_reason(address: IPAddress) -> str | None:
    """Why ``address`` must not be contacted, or None when it is a public unicast address."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return forbidden_reason(address.ipv4_mapped)
    checks = (
        ("loopback", address.is_loopback),
        ("unspecified", address.is_unspecified),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
        # Catches what the flags above miss, e.g. 100.64.0.0/10 (carrier-grade NAT).
        ("not global", not address.is_global),
    )
    return next((name for name, hit in checks if hit), None)


def is_allowed(address: IPAddress, allow: Sequence[IPNetwork]) -> bool:
    return forbidden_reason(address) is None or any(address in network for network in allow)


def check_url(url: str, allow: Sequence[IPNetwork], resolve: Resolver = system_resolver) -> Target:
    """The target for ``url`` if every address its host resolves to may be contacted.

    Raises RefusedURL (never worth retrying) or OSError when the name does not resolve
    (worth retrying: DNS may be down for a moment).
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        raise RefusedURL("only http and https URLs with a host are allowed")
    try:
        port = parts.port or DEFAULT_PORTS[scheme]
    except ValueError:
        raise RefusedURL("invalid port") from None
    addresses = [_address(text) for text in resolve(parts.hostname, port)]
    if not addresses:
        raise OSError(f"{parts.hostname} resolved to no address")
    for address in addresses:
        if not is_allowed(address, allow):
            raise RefusedURL(f"{forbidden_reason(address)} address")
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return Target(scheme, parts.hostname, port, path, str(addresses[0]))


def _address(text: str) -> IPAddress:
    try:
        return ipaddress.ip_address(text.split("%", 1)[0])  # drop an IPv6 zone ("fe80::1%eth0")
    except ValueError:
        raise RefusedURL(f"unusable address {text!r}") from None


def display_url(url: str) -> str:
    """Scheme, host, port and path: safe to store and show (a query may hold a token)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<invalid url>"
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{host}{port}{parts.path}"
