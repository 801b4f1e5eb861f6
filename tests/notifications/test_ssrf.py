"""The SSRF guard: which addresses may be webhook targets, and how a target is pinned."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from notifications import ssrf
from notifications.ssrf import UnresolvableTarget, UnsafeTarget, address_refusal, resolve_target


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fd00::1", "private"),
        ("169.254.169.254", "link-local"),  # cloud metadata services
        ("fe80::1", "link-local"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),  # noqa: S104
        ("::", "unspecified"),
        ("240.0.0.1", "private"),  # reserved, and listed by Python among the private ranges
        ("100.64.0.1", "non-global"),  # carrier-grade NAT
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped
        ("::ffff:10.0.0.1", "private"),
    ],
)
def test_non_public_addresses_are_refused(address, kind):
    assert address_refusal(ipaddress.ip_address(address)) == kind


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111"])
def test_public_addresses_are_allowed(address):
    assert address_refusal(ipaddress.ip_address(address)) is None


def fake_dns(monkeypatch, answers: dict[str, list[str]]) -> list[str]:
    """Make ``host`` resolve to ``answers[host]``; returns the list of names looked up."""
    looked_up: list[str] = []

    def getaddrinfo(host, port, *args, **kwargs):
        looked_up.append(host)
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
            for a in answers[host]
        ]

    monkeypatch.setattr(ssrf.socket, "getaddrinfo", getaddrinfo)
    return looked_up


def test_a_name_resolving_to_a_private_address_is_refused(monkeypatch):
    fake_dns(monkeypatch, {"internal.example.com": ["10.0.0.5"]})

    with pytest.raises(UnsafeTarget, match=r"internal.example.com resolves to 10.0.0.5, a private address"):
        resolve_target("https://internal.example.com/hooks", allow_private=False)


def test_a_name_with_one_private_answer_among_public_ones_is_refused(monkeypatch):
    fake_dns(monkeypatch, {"mixed.example.com": ["93.184.216.34", "127.0.0.1"]})

    with pytest.raises(UnsafeTarget, match="loopback"):
        resolve_target("https://mixed.example.com/hooks", allow_private=False)


def test_private_addresses_are_allowed_when_the_setting_allows_them(monkeypatch):
    fake_dns(monkeypatch, {"localhost": ["127.0.0.1"]})

    target = resolve_target("http://localhost:8080/hooks", allow_private=True)

    assert [str(a) for a in target.addresses] == ["127.0.0.1"]


def test_the_target_is_pinned_to_the_vetted_address_with_the_original_host_and_server_name(monkeypatch):
    # given a public name
    looked_up = fake_dns(monkeypatch, {"hooks.merchant.example": ["93.184.216.34"]})

    # when it is resolved for a request
    target = resolve_target("https://hooks.merchant.example:8443/in?x=1", allow_private=False)

    # then the request goes to the vetted address, named as the merchant configured it
    assert [str(a) for a in target.addresses] == ["93.184.216.34"]
    assert str(target.pinned_url(target.addresses[0])) == "https://93.184.216.34:8443/in?x=1"
    assert target.host_header == "hooks.merchant.example:8443"
    assert target.server_name == "hooks.merchant.example"
    assert looked_up == ["hooks.merchant.example"]


def test_an_ipv6_target_is_bracketed_in_the_pinned_url(monkeypatch):
    fake_dns(monkeypatch, {"v6.example": ["2606:4700:4700::1111"]})

    target = resolve_target("https://v6.example/hooks", allow_private=False)

    assert str(target.pinned_url(target.addresses[0])) == "https://[2606:4700:4700::1111]/hooks"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://example.com/hooks", "only http and https"),
        ("file:///etc/passwd", "only http and https"),
        ("https://user:pw@example.com/hooks", "credentials"),
    ],
)
def test_urls_that_can_never_be_targets_are_refused_before_any_lookup(monkeypatch, url, reason):
    looked_up = fake_dns(monkeypatch, {})

    with pytest.raises(UnsafeTarget, match=reason):
        resolve_target(url, allow_private=True)
    assert looked_up == []


def test_a_name_that_does_not_resolve_is_a_transient_failure(monkeypatch):
    fake_dns(monkeypatch, {})

    with pytest.raises(UnresolvableTarget):
        resolve_target("https://gone.example.com/hooks", allow_private=False)
