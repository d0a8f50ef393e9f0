"""The SSRF guard, with literal addresses and a resolver passed in (no DNS lookups)."""

from __future__ import annotations

import ipaddress

import pytest

from dialq.webhooks.guard import (
    RefusedURL,
    Resolver,
    check_url,
    display_url,
    forbidden_reason,
    parse_networks,
)


def resolver(*addresses: str) -> Resolver:
    """Stands in for DNS: every name resolves to ``addresses``."""

    def resolve(host: str, port: int) -> list[str]:
        return list(addresses)

    return resolve


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.254", "private"),
        ("192.168.1.1", "private"),
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("fe80::1", "link-local"),
        ("169.254.169.254", "link-local"),  # cloud metadata
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("fc00::1", "private"),
        ("100.64.0.1", "not global"),  # carrier-grade NAT
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped IPv6
        ("::ffff:10.0.0.1", "private"),
        ("240.0.0.1", "private"),
    ],
)
def test_a_non_public_address_is_forbidden(address: str, reason: str) -> None:
    assert forbidden_reason(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700::1111"])
def test_a_public_address_is_allowed(address: str) -> None:
    assert forbidden_reason(ipaddress.ip_address(address)) is None


def test_a_public_address_gives_a_target_pinned_to_it_with_the_path_and_query() -> None:
    target = check_url("https://hooks.example.com/dialq?token=t1", [], resolver("93.184.216.34"))
    assert (target.scheme, target.host, target.port) == ("https", "hooks.example.com", 443)
    assert target.path == "/dialq?token=t1"
    assert target.address == "93.184.216.34"
    assert target.host_header == "hooks.example.com"


def test_a_host_with_one_private_address_among_public_ones_is_refused() -> None:
    with pytest.raises(RefusedURL, match="private address"):
        check_url("http://hooks.example.com/", [], resolver("93.184.216.34", "10.0.0.5"))


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("http://127.0.0.1:8080/hook", "127.0.0.1"),
        ("http://[::1]/hook", "::1"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254"),
        ("http://0.0.0.0/", "0.0.0.0"),
        ("https://rebind.example.com/", "10.0.0.1"),
    ],
)
def test_a_private_url_is_refused_without_the_allow_list(url: str, address: str) -> None:
    with pytest.raises(RefusedURL, match="address"):
        check_url(url, [], resolver(address))


def test_the_allow_list_permits_exactly_its_networks() -> None:
    allow = parse_networks(["127.0.0.0/8", "10.20.0.0/16"])
    assert check_url("http://127.0.0.1:9/h", allow, resolver("127.0.0.1")).address == "127.0.0.1"
    assert check_url("http://x.internal/h", allow, resolver("10.20.3.4")).port == 80
    with pytest.raises(RefusedURL):
        check_url("http://x.internal/h", allow, resolver("10.21.0.1"))
    with pytest.raises(RefusedURL):
        check_url("http://[::1]/h", allow, resolver("::1"))  # v4 networks do not cover ::1


@pytest.mark.parametrize(
    "url", ["ftp://example.com/x", "file:///etc/passwd", "gopher://example.com", "http:///nohost"]
)
def test_only_http_and_https_urls_with_a_host_are_allowed(url: str) -> None:
    with pytest.raises(RefusedURL, match="only http and https"):
        check_url(url, [], resolver("93.184.216.34"))


def test_a_name_that_resolves_to_nothing_is_an_os_error_worth_retrying() -> None:
    with pytest.raises(OSError, match="no address"):
        check_url("http://hooks.example.com/", [], resolver())


def test_the_displayed_url_drops_the_query_which_may_hold_a_token() -> None:
    assert display_url("https://h.example.com:8443/p/q?token=secret") == (
        "https://h.example.com:8443/p/q"
    )
    assert display_url("http://[::1]:9/x?a=b") == "http://[::1]:9/x"


def test_ipv6_host_header_is_bracketed_and_a_default_port_left_out() -> None:
    allow = parse_networks(["::1/128"])
    target = check_url("http://[::1]:8080/h", allow, resolver("::1"))
    assert target.host_header == "[::1]:8080"
