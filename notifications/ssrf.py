"""Server-side request forgery guard for webhook targets.

A webhook URL is chosen by whoever configures an endpoint; without a guard the worker would
POST wherever it points: the database, the broker's management port, a cloud metadata service.
So the host is resolved once, every address it resolves to is vetted, and the request then
connects to that vetted address (not to a second lookup an attacker's DNS could answer
differently: DNS rebinding), while sending the original ``Host`` header and TLS server name.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
ALLOWED_SCHEMES = ("http", "https")

# Checked in this order; the first that matches names the refusal.
_REFUSED_KINDS = (
    ("is_unspecified", "unspecified"),
    ("is_loopback", "loopback"),
    ("is_link_local", "link-local"),
    ("is_multicast", "multicast"),
    ("is_private", "private"),
    ("is_reserved", "reserved"),
)


class UnsafeTarget(Exception):
    """The URL may not be requested (scheme, credentials, or a non-public address)."""


class UnresolvableTarget(Exception):
    """The host name does not resolve now (which may change: worth a retry)."""


@dataclass(frozen=True)
class Target:
    url: httpx.URL  # as configured
    host_header: str  # the original host[:port]
    server_name: str  # the original host name, for TLS SNI and certificate checks
    addresses: tuple[IPAddress, ...]  # every one vetted, in resolver order

    def pinned_url(self, address: IPAddress) -> httpx.URL:
        """The URL with its host replaced by ``address``: connect there, and nowhere else."""
        return self.url.copy_with(host=str(address))


def address_refusal(address: IPAddress) -> str | None:
    """Why ``address`` may not be a webhook target, or None if it is a public address."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    for attribute, kind in _REFUSED_KINDS:
        if getattr(address, attribute):
            return kind
    if not address.is_global:  # e.g. 100.64.0.0/10, shared address space
        return "non-global"
    return None


def url_refusal(url: str) -> str | None:
    """Why ``url`` can never be a webhook target, judged without resolving it, or None."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        return f"invalid URL: {exc}"
    if parsed.scheme not in ALLOWED_SCHEMES:
        return "only http and https URLs are allowed"
    if not parsed.host:
        return "the URL has no host"
    if parsed.userinfo:
        return "credentials in the URL are not allowed"
    return None


def _resolve(host: str, port: int) -> list[IPAddress]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnresolvableTarget(f"cannot resolve {host}: {exc}") from exc
    addresses: list[IPAddress] = []
    for *_, sockaddr in infos:
        address = ipaddress.ip_address(sockaddr[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise UnresolvableTarget(f"{host} resolves to no address")
    return addresses


def resolve_target(url: str, *, allow_private: bool) -> Target:
    """Resolve and vet ``url``'s host; the returned target pins the addresses to connect to.

    Every address the name resolves to must be public (a mix of public and private answers is
    refused, not filtered), unless ``allow_private`` (development and tests only).
    """
    refusal = url_refusal(url)
    if refusal is not None:
        raise UnsafeTarget(refusal)
    parsed = httpx.URL(url)
    host = parsed.raw_host.decode("ascii")  # IDNA-encoded; IPv6 without brackets
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    addresses = _resolve(host, port)
    if not allow_private:
        for address in addresses:
            kind = address_refusal(address)
            if kind is not None:
                raise UnsafeTarget(f"{host} resolves to {address}, a {kind} address")
    return Target(
        url=parsed,
        host_header=parsed.netloc.decode("ascii"),
        server_name=host,
        addresses=tuple(addresses),
    )
