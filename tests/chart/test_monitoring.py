"""Monitoring in the chart: the optional ServiceMonitor, and the Grafana dashboard in docs/."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
from prometheus_client.metrics import MetricWrapperBase

from opencode_mcp_gateway.observability import metrics
from tests.chart.test_chart import CHART, EVERYTHING, EXAMPLE, K8S, by_kind, helm, render, sets

SCHEMA = json.loads(Path(__file__).with_name("servicemonitor.schema.json").read_text())
DASHBOARD = json.loads((CHART.parent / "docs" / "grafana-dashboard.json").read_text())
MONITORED = {**EVERYTHING, "metrics.serviceMonitor.enabled": "true", "metrics.serviceMonitor.labels.release": "prom"}
# The list: dashboards and tests outside this repository rely on these names and labels.
PROMISED = {
    "ocgw_tool_calls_total": {"tool", "outcome"},
    "ocgw_tool_call_duration_seconds": {"tool"},
    "ocgw_tasks_started_total": set(),
    "ocgw_tasks_finished_total": {"status"},
    "ocgw_tasks_running": set(),
    "ocgw_mcp_sessions": set(),
    "ocgw_opencode_up": {"worker"},
    "ocgw_opencode_request_duration_seconds": {"worker", "outcome"},
    "ocgw_opencode_restarts_total": set(),
    "ocgw_event_stream_reconnects_total": {"worker"},
    "ocgw_llm_tokens_total": {"model", "kind"},
    "ocgw_llm_cost_usd_total": {"model"},
    "ocgw_webhook_deliveries_total": {"event", "result"},  # issue 21
    "ocgw_webhook_retry_backlog": set(),
    "ocgw_permission_requests_total": {"kind", "outcome"},
}


def exported() -> dict[str, set[str]]:
    """Every metric the gateway exports, by the name Prometheus stores, with its label names."""
    found = {}
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase):
            suffix = "_total" if value._type == "counter" else ""
            found[value._name + suffix] = set(value._labelnames)
    return found


def test_the_promised_metrics_are_exported_with_their_labels() -> None:
    assert {name: labels for name, labels in exported().items() if name in PROMISED} == PROMISED


def test_service_monitor_is_off_by_default() -> None:
    assert not [d for d in render(EXAMPLE) if d["kind"] == "ServiceMonitor"]
    policy = by_kind(render(EVERYTHING), "NetworkPolicy")
    assert "monitoring" not in json.dumps(policy)


def test_service_monitor_scrapes_the_service_and_validates() -> None:
    lint = helm("lint", "--strict", str(CHART), *sets(MONITORED), check=False)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    docs = render(MONITORED)
    monitor = by_kind(docs, "ServiceMonitor")
    jsonschema.validate(monitor, SCHEMA)
    service = by_kind(docs, "Service")
    labels = service["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert monitor["metadata"]["labels"]["release"] == "prom"
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert (endpoint["path"], endpoint["interval"]) == ("/metrics", "30s")
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["opencode"]}
    policy = by_kind(docs, "NetworkPolicy")
    kubernetes_validate.validate(policy, K8S, strict=True)
    sources = policy["spec"]["ingress"][0]["from"]
    assert {"namespaceSelector": {"matchLabels": {"network.openshift.io/policy-group": "monitoring"}}} in sources


def test_a_wrong_scrape_interval_is_refused() -> None:
    result = helm(
        "template", "gw", str(CHART), *sets({**MONITORED, "metrics.serviceMonitor.interval": "often"}), check=False
    )
    assert result.returncode != 0 and "interval" in result.stderr


def targets() -> list[dict[str, Any]]:
    return [t for p in DASHBOARD["panels"] for t in p["targets"]]


def test_dashboard_is_a_grafana_dashboard() -> None:
    assert DASHBOARD["uid"] and DASHBOARD["title"] and isinstance(DASHBOARD["schemaVersion"], int)
    (source,) = DASHBOARD["templating"]["list"]
    assert (source["name"], source["type"], source["query"]) == ("datasource", "datasource", "prometheus")
    ids = [p["id"] for p in DASHBOARD["panels"]]
    assert len(ids) == len(set(ids))
    for panel in DASHBOARD["panels"]:
        assert panel["type"] in ("timeseries", "stat") and panel["title"] and panel["targets"]
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24 and grid["h"] > 0
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs))


def test_dashboard_shows_every_promised_metric_by_real_names_and_labels() -> None:
    known = exported()
    shown = set()
    for target in targets():
        expr = target["expr"]
        assert expr.count("(") == expr.count(")"), expr
        names = {re.sub(r"_(bucket|count|sum)$", "", n) for n in re.findall(r"ocgw_[a-z_]+", expr)}
        assert names <= set(known), expr
        labels = set().union(*(known[n] for n in names)) | {"le"}
        for grouping in re.findall(r"by \(([^)]*)\)", expr):
            assert {g.strip() for g in grouping.split(",")} <= labels, expr
        for matcher in re.findall(r"\{([^}]*)\}", expr):
            assert {m.split("=")[0].strip() for m in matcher.split(",")} <= labels, expr
        shown |= names
    assert set(PROMISED) <= shown
