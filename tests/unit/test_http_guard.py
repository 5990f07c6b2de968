from __future__ import annotations

from opencode_mcp_gateway.edge.guard import HostRules, OriginRules, parse_origin


def test_entries_without_port_allow_any_port() -> None:
    rules = HostRules(["gw.example.com", "localhost:8080", "[::1]"])
    assert rules.allows("gw.example.com") and rules.allows("GW.example.com:443")
    assert rules.allows("localhost:8080") and not rules.allows("localhost:9090") and not rules.allows("localhost")
    assert rules.allows("[::1]:8080") and not rules.allows("evil.com") and not rules.allows("")


def test_origin_must_name_an_allowed_host() -> None:
    rules = OriginRules([], ["gw.example.com"], loopback=False)
    assert rules.allows("https://gw.example.com")
    assert not rules.allows("https://evil.example")
    assert not rules.allows("null")


def test_any_host_still_refuses_cross_site_origins() -> None:
    """Bound to all interfaces without ALLOWED_HOSTS: no origin is allowed, not even one
    naming the request's own host (DNS rebinding makes them equal)."""
    rules = OriginRules([], [], loopback=False)
    assert HostRules(None).allows("whatever:1")
    assert not rules.allows("http://10.0.0.5:8080")
    assert not rules.allows("http://attacker.test:8080")
    assert not rules.allows("http://localhost:3000")
    assert not rules.allows("https://evil.example")


def test_allowed_origins_are_exact_and_win_over_hosts() -> None:
    rules = OriginRules(["https://app.example.com", "http://localhost:3000"], ["gw.example.com"], loopback=True)
    assert rules.allows("https://app.example.com") and rules.allows("https://APP.example.com:443")
    assert rules.allows("http://localhost:3000")
    assert not rules.allows("http://app.example.com")  # another scheme is another origin
    assert not rules.allows("https://app.example.com:8443")
    assert not rules.allows("https://gw.example.com")  # ALLOWED_ORIGINS replaces the host rule
    assert not rules.allows("http://localhost:4000")


def test_loopback_allows_local_origins_only() -> None:
    rules = OriginRules([], [], loopback=True)
    assert rules.allows("http://localhost:3000") and rules.allows("http://127.0.0.1") and rules.allows("http://[::1]:1")
    assert not rules.allows("http://attacker.test:8080")


def test_malformed_origins_are_refused() -> None:
    rules = OriginRules([], ["gw.example.com"], loopback=True)
    for bad in (
        "https://user:pw@gw.example.com",
        "https://localhost@gw.example.com",
        "https://gw.example.com@evil.example",
        "https://gw.example.com/path",
        "https://gw.example.com?x=1",
        "https://gw.example.com:99999",
        "ftp://gw.example.com",
        "https://gw.example.com\\@evil.example",
        "gw.example.com",
        "",
    ):
        assert not rules.allows(bad), bad
    assert parse_origin("HTTPS://GW.example.com") == ("https", "gw.example.com", "443")
