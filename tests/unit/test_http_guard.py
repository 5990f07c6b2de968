from __future__ import annotations

from opencode_mcp_gateway.http_guard import HostRules


def test_entries_without_port_allow_any_port() -> None:
    rules = HostRules(["gw.example.com", "localhost:8080", "[::1]"])
    assert rules.allows("gw.example.com") and rules.allows("GW.example.com:443")
    assert rules.allows("localhost:8080") and not rules.allows("localhost:9090") and not rules.allows("localhost")
    assert rules.allows("[::1]:8080") and not rules.allows("evil.com") and not rules.allows("")


def test_origin_must_name_an_allowed_host() -> None:
    rules = HostRules(["gw.example.com"])
    assert rules.allows_origin("https://gw.example.com", "gw.example.com")
    assert not rules.allows_origin("https://evil.example", "gw.example.com")
    assert not rules.allows_origin("null", "gw.example.com")


def test_any_host_still_refuses_cross_site_origins() -> None:
    rules = HostRules(None)
    assert rules.allows("whatever:1")
    assert rules.allows_origin("http://10.0.0.5:8080", "10.0.0.5:8080")
    assert rules.allows_origin("http://localhost:3000", "10.0.0.5:8080")
    assert not rules.allows_origin("https://evil.example", "10.0.0.5:8080")
