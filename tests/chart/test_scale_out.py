"""The chart with several replicas (issue 10): a StatefulSet whose pods are each a gateway and
one OpenCode worker, wired to each other by stable DNS names, validated against Kubernetes 1.33.
Volumes, upgrades and the unchanged one-replica release: test_scale_out_upgrade.py."""

from __future__ import annotations

import json
import re
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from opencode_mcp_gateway.config import load_settings
from tests.chart.test_chart import CHART, EVERYTHING, EXAMPLE, INGRESS, K8S, ROUTE_SCHEMA, by_kind, helm, render, sets

SCALED = {**EXAMPLE, "replicaCount": "3"}
SCALED_EVERYTHING = {**EVERYTHING, "replicaCount": "3", "metrics.serviceMonitor.enabled": "true"}
SCALED_INGRESS = {**INGRESS, "replicaCount": "3"}  # and persistence off
MIGRATING = {**SCALED, "persistence.worker0VolumeName": "pvc-0b5e7c1d-3f0a-4c1e-9d7b-6a2f0e8d4c21"}
SCALE_OUT_ENV = (
    "GATEWAY_ID",
    "GATEWAY_PEERS",
    "REQUEST_STATE_KEY",
    "OPENCODE_WORKER_URL_TEMPLATE",
    "OPENCODE_WORKER_COUNT",
    "OPENCODE_LISTEN_HOST",
    "SHUTDOWN_DRAIN_SECONDS",
)
NAME = "gw-opencode-mcp-gateway"


def pod_of(docs: list[dict[str, Any]], kind: str = "StatefulSet") -> dict[str, Any]:
    return by_kind(docs, kind)["spec"]["template"]  # type: ignore[no-any-return]


def gateway(docs: list[dict[str, Any]], kind: str = "StatefulSet") -> dict[str, Any]:
    return pod_of(docs, kind)["spec"]["containers"][0]  # type: ignore[no-any-return]


def env_of(docs: list[dict[str, Any]], kind: str = "StatefulSet") -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in gateway(docs, kind)["env"]}


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return selector.items() <= labels.items()


def validate_all(docs: list[dict[str, Any]]) -> None:
    for doc in docs:
        if doc["kind"] == "Route":
            jsonschema.validate(doc, ROUTE_SCHEMA)
        elif doc["kind"] != "ServiceMonitor":  # not core; test_monitoring validates it
            kubernetes_validate.validate(doc, K8S, strict=True)


@pytest.mark.parametrize(
    "values",
    [SCALED, SCALED_EVERYTHING, SCALED_INGRESS, MIGRATING],
    ids=["example", "everything", "ingress", "migrate"],
)
def test_lint_strict_and_every_manifest_validates(values: dict[str, str]) -> None:
    lint = helm("lint", "--strict", str(CHART), *sets(values), check=False)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    docs = render(values)
    validate_all(docs)
    kinds = sorted(d["kind"] for d in docs)
    assert "Deployment" not in kinds and kinds.count("StatefulSet") == 1
    assert kinds.count("Service") == 2 and "PodDisruptionBudget" in kinds
    claims = [d["metadata"]["name"] for d in docs if d["kind"] == "PersistentVolumeClaim"]
    assert claims == ([f"data-{NAME}-0"] if values is MIGRATING else [])  # else from volumeClaimTemplates


def test_every_pod_knows_itself_its_peers_and_the_workers_by_stable_dns_names() -> None:
    docs = render(SCALED)
    sts = by_kind(docs, "StatefulSet")
    env = env_of(docs)
    assert sts["spec"]["replicas"] == 3
    assert env["GATEWAY_ID"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    # The pods the StatefulSet creates, and the DNS names its headless Service gives them.
    headless = next(d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == sts["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None" and headless["spec"]["publishNotReadyAddresses"] is True
    assert matches(headless["spec"]["selector"], pod_of(docs)["metadata"]["labels"])
    pods = [f"{sts['metadata']['name']}-{i}" for i in range(3)]
    hosts = [f"{pod}.{headless['metadata']['name']}.opencode.svc.cluster.local" for pod in pods]
    assert pods == [f"{NAME}-0", f"{NAME}-1", f"{NAME}-2"]
    assert hosts[1] == f"{NAME}-1.{NAME}-workers.opencode.svc.cluster.local"

    peers = dict(entry.split("=", 1) for entry in env["GATEWAY_PEERS"]["value"].split(","))
    assert peers == {pod: f"http://{host}:8080" for pod, host in zip(pods, hosts, strict=True)}
    template, count = env["OPENCODE_WORKER_URL_TEMPLATE"]["value"], int(env["OPENCODE_WORKER_COUNT"]["value"])
    assert count == 3 and template.count("{i}") == 1
    assert [template.replace("{i}", str(i)) for i in range(count)] == [f"http://{host}:4096" for host in hosts]
    assert env["OPENCODE_LISTEN_HOST"]["value"] == "0.0.0.0"
    other = env_of(render({**SCALED, "clusterDomain": "corp.internal"}))["OPENCODE_WORKER_URL_TEMPLATE"]["value"]
    assert other == template.replace(".cluster.local:", ".corp.internal:")
    allowed = env_of(render(SCALED_EVERYTHING))["ALLOWED_HOSTS"]["value"].split(",")
    assert set(hosts) <= set(allowed) and "gw.apps.example.com" in allowed  # a peer may be addressed by name
    # The ports behind those names: the gateway's (8080) and this pod's OpenCode (4096).
    # (OpenCode's own container declares 4096: the port is the pod's, whichever container listens.)
    ports = {p["name"]: p["containerPort"] for c in pod_of(docs)["spec"]["containers"] for p in c.get("ports", [])}
    assert ports == {"http": 8080, "opencode": 4096}
    assert {(p["port"], p["targetPort"]) for p in headless["spec"]["ports"]} == {(8080, "http"), (4096, "opencode")}


def resolved_env(docs: list[dict[str, Any]], pod: str) -> dict[str, str]:
    """The environment pod `pod` starts with: downward API and Secret references resolved."""
    secret = by_kind(docs, "Secret")["stringData"]
    env = {}
    for entry in gateway(docs)["env"]:
        source = entry.get("valueFrom", {})
        if "fieldRef" in source:
            env[entry["name"]] = pod if source["fieldRef"]["fieldPath"] == "metadata.name" else ""
        elif "secretKeyRef" in source:
            env[entry["name"]] = secret[source["secretKeyRef"]["key"]]
        else:
            env[entry["name"]] = entry["value"]
    return env


@pytest.mark.parametrize("pod", [0, 2])
def test_the_gateway_accepts_the_environment_each_pod_gets(pod: int) -> None:
    """What the chart renders is a configuration the gateway starts with (its own validation)."""
    env = resolved_env(render(SCALED), f"{NAME}-{pod}")
    assert gateway(render(SCALED))["args"] == ["--no-spawn-opencode"]  # its OpenCode: the `opencode` container
    settings = load_settings(_env_file=None, spawn_opencode=False, **{k.lower(): v for k, v in env.items()})
    assert settings.gateway_id == f"{NAME}-{pod}"
    assert list(settings.peer_map) == [f"{NAME}-0", f"{NAME}-1", f"{NAME}-2"]
    assert settings.request_state_key is not None and settings.opencode_password is not None


def test_shared_secrets_come_from_the_secret_and_never_appear_in_the_pod() -> None:
    docs = render({**SCALED_EVERYTHING, "gateway.apiKeys.ci": "ci-key-0123456789abcdef"})
    secret = next(d for d in docs if d["kind"] == "Secret" and d["metadata"]["name"] == NAME)
    data = secret["stringData"]
    assert data["opencode-server-password"] == "oc-server-password"  # the given one
    assert len(data["request-state-key"]) >= 32 and data["request-state-key"].isalnum()
    env = env_of(docs)
    for name, key in (("REQUEST_STATE_KEY", "request-state-key"), ("OPENCODE_PASSWORD", "opencode-server-password")):
        assert env[name]["valueFrom"]["secretKeyRef"]["name"] == secret["metadata"]["name"]
        assert env[name]["valueFrom"]["secretKeyRef"]["key"] == key
        assert env[name]["valueFrom"]["secretKeyRef"].get("optional", False) is False
    statefulset = json.dumps(by_kind(docs, "StatefulSet"))
    for value in (*data.values(), "ci-key-0123456789abcdef"):
        assert value not in statefulset
    generated = by_kind(render(SCALED), "Secret")["stringData"]
    assert len(generated["opencode-server-password"]) >= 32  # peers reach OpenCode: never without a password
    assert generated["opencode-server-password"] != generated["request-state-key"]


def test_an_existing_secret_must_hold_the_shared_keys() -> None:
    values = {k: v for k, v in SCALED.items() if k != "opencode.apiKey"}
    docs = render({**values, "existingSecret": "team-secret"})
    assert not [d for d in docs if d["kind"] == "Secret"]
    env = env_of(docs)
    for name in ("REQUEST_STATE_KEY", "OPENCODE_PASSWORD"):
        assert env[name]["valueFrom"]["secretKeyRef"]["name"] == "team-secret"
        assert env[name]["valueFrom"]["secretKeyRef"].get("optional", False) is False


def test_opencode_is_reachable_only_from_the_releases_own_pods() -> None:
    for values in (SCALED, SCALED_EVERYTHING):
        docs = render(values)
        labels = pod_of(docs)["metadata"]["labels"]
        policy = by_kind(docs, "NetworkPolicy")
        assert matches(policy["spec"]["podSelector"]["matchLabels"], labels)
        rules = policy["spec"]["ingress"]
        opencode = [r for r in rules if {"port": 4096, "protocol": "TCP"} in r["ports"]]
        assert len(opencode) == 1
        (peers,) = opencode[0]["from"]  # one source: this release's pods, in this namespace
        assert set(peers) == {"podSelector"} and matches(peers["podSelector"]["matchLabels"], labels)
        assert peers["podSelector"]["matchLabels"] == by_kind(docs, "StatefulSet")["spec"]["selector"]["matchLabels"]
        assert {"port": 8080, "protocol": "TCP"} in opencode[0]["ports"]  # session relays between peers
        clients = [r for r in rules if r is not opencode[0]]
        assert all(p["port"] == 8080 for r in clients for p in r["ports"])  # the client port stays as it was


def test_the_route_balances_round_robin_without_cookies() -> None:
    annotations = by_kind(render(SCALED_EVERYTHING), "Route")["metadata"]["annotations"]
    assert annotations == {
        "haproxy.router.openshift.io/balance": "roundrobin",
        "haproxy.router.openshift.io/disable_cookies": "true",
        "haproxy.router.openshift.io/timeout": "1h",
    }
    own = {**SCALED, "route.annotations.haproxy\\.router\\.openshift\\.io/balance": "leastconn"}
    balance = by_kind(render(own), "Route")["metadata"]["annotations"]["haproxy.router.openshift.io/balance"]
    assert balance == "leastconn"  # the user's own annotation wins
    single = by_kind(render(EXAMPLE), "Route")["metadata"]["annotations"]
    assert single == {"haproxy.router.openshift.io/timeout": "1h"}  # one pod: nothing to balance


def test_a_disruption_budget_lets_one_pod_go_at_a_time() -> None:
    docs = render(SCALED)  # without podDisruptionBudget.enabled
    pdb = by_kind(docs, "PodDisruptionBudget")
    assert pdb["spec"] == {"maxUnavailable": 1, "selector": by_kind(docs, "StatefulSet")["spec"]["selector"]}
    custom = by_kind(render({**SCALED, "podDisruptionBudget.minAvailable": "2"}), "PodDisruptionBudget")["spec"]
    assert custom["minAvailable"] == 2 and "maxUnavailable" not in custom
    assert not [d for d in render(EXAMPLE) if d["kind"] == "PodDisruptionBudget"]  # as before: opt-in for one


def test_a_stopping_pod_leaves_placement_and_the_balancer_before_the_gateway_stops() -> None:
    docs = render(SCALED)
    c = gateway(docs)
    # SIGTERM reaches the gateway at once (no preStop hook that would hide the pod's stopping
    # from it): its /readyz fails, the peers stop placing on its worker, and it drains 10 s.
    assert "lifecycle" not in c
    env = env_of(docs)
    assert env["SHUTDOWN_DRAIN_SECONDS"]["value"] == "10"
    assert pod_of(docs)["spec"]["terminationGracePeriodSeconds"] >= 10 + 15
    # worker w<i> is pod <i>'s: the gateways pair them by the pod ordinal in GATEWAY_PEERS
    peers = [p.split("=")[0] for p in env["GATEWAY_PEERS"]["value"].split(",")]
    assert [p.rpartition("-")[2] for p in peers] == ["0", "1", "2"] and "{i}" in env["OPENCODE_WORKER_URL_TEMPLATE"][
        "value"
    ]
    assert "WORKER_GATEWAYS" not in env  # the chart's form needs no explicit pairing
    longer = render({**SCALED, "drainSeconds": "300", "terminationGracePeriodSeconds": "330"})
    assert env_of(longer)["SHUTDOWN_DRAIN_SECONDS"]["value"] == "300"
    assert pod_of(longer)["spec"]["terminationGracePeriodSeconds"] == 330
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"  # OpenCode down: out of the Services
    spread = pod_of(docs)["spec"]["topologySpreadConstraints"][0]
    assert spread["topologyKey"] == "kubernetes.io/hostname" and spread["whenUnsatisfiable"] == "ScheduleAnyway"
    assert "lifecycle" not in gateway(render(EXAMPLE), "Deployment")  # one pod: nothing to hand over to


def test_placement_limits_are_passed_when_given() -> None:
    env = env_of(render({**SCALED, "workers.maxTasks": "4", "workers.scheduleWaitSeconds": "30"}))
    assert env["WORKER_MAX_TASKS"]["value"] == "4" and env["SCHEDULE_WAIT_SECONDS"]["value"] == "30"
    defaults = env_of(render(SCALED))
    assert "WORKER_MAX_TASKS" not in defaults and "SCHEDULE_WAIT_SECONDS" not in defaults  # the gateway's own
    assert env_of(render({**EXAMPLE, "workers.maxTasks": "2"}), "Deployment")["WORKER_MAX_TASKS"]["value"] == "2"


def test_notes_and_monitoring_follow_the_statefulset() -> None:
    out = helm("install", "gw", str(CHART), "--dry-run=client", "--namespace", "opencode", *sets(SCALED)).stdout
    notes = out.split("NOTES:", 1)[1]
    assert f"oc rollout status statefulset/{NAME} -n opencode" in notes and "deployment/" not in notes
    docs = render(SCALED_EVERYTHING)
    monitor = by_kind(docs, "ServiceMonitor")
    port = monitor["spec"]["endpoints"][0]["port"]
    selected = [
        d
        for d in docs
        if d["kind"] == "Service" and matches(monitor["spec"]["selector"]["matchLabels"], d["metadata"]["labels"])
    ]
    # Both Services carry the release's labels; only the client one has the scraped port: each pod once.
    assert [d["metadata"]["name"] for d in selected if port in {p["name"] for p in d["spec"]["ports"]}] == [NAME]


def test_long_release_names_still_make_valid_pod_names() -> None:
    release = "platform-engineering-coding-agents-production"  # fullname: 63 characters, truncated
    out = helm("template", release, str(CHART), "--namespace", "opencode", *sets(SCALED)).stdout
    docs = [d for d in yaml.safe_load_all(out) if d]
    sts = by_kind(docs, "StatefulSet")
    assert len(sts["metadata"]["name"]) <= 52  # the controller's revision label adds 11 characters
    peers = env_of(docs)["GATEWAY_PEERS"]["value"].split(",")
    for name, url in (p.split("=", 1) for p in peers):
        assert re.fullmatch(r"[A-Za-z0-9_-]{1,63}", name) and name.startswith(sts["metadata"]["name"])
        assert all(len(label) <= 63 for label in url.removeprefix("http://").split(":")[0].split("."))
    validate_all(docs)
