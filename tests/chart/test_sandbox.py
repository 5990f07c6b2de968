"""The chart's side of sandboxes (issue 19): the values, the Role of least privilege, the
NetworkPolicies, the token only the gateway container gets, the environment the gateway
accepts, and the OpenCode container's liveness probe that needs no secret in the pod spec.
The sandbox pods themselves are the runtime's (tests/unit/test_kube_objects.py)."""

from __future__ import annotations

from typing import Any

import pytest

from opencode_mcp_gateway.config import load_settings
from opencode_mcp_gateway.fleet.sandboxes.kube_objects import PROBE_COMMAND, labels
from opencode_mcp_gateway.fleet.sandboxes.runtime import SandboxSpec
from tests.chart.test_chart import EVERYTHING, EXAMPLE, by_kind, helm, render, sets
from tests.chart.test_scale_out import NAME, matches, validate_all
from tests.chart.test_split_pod import containers, started_env
from tests.support.restricted_v2 import restricted_v2_problems

CALLER = {**EVERYTHING, "sandbox.scope": "caller", "sandbox.runtimeClassName": "gvisor"}
CALLER_MANY = {**CALLER, "replicaCount": "3"}
SHAPES = pytest.mark.parametrize(
    ("values", "kind"), [(CALLER, "Deployment"), (CALLER_MANY, "StatefulSet")], ids=["one", "many"]
)
SANDBOX_KINDS = {"Role", "RoleBinding"}


def pod_spec(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    return by_kind(docs, kind)["spec"]["template"]["spec"]  # type: ignore[no-any-return]


def named(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (doc,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


def sandbox_labels(prefix: str = NAME) -> dict[str, str]:
    return labels(prefix, SandboxSpec("c-x", "caller", "ab12", "pw", "tok"))


@SHAPES
def test_lint_strict_and_every_manifest_validates(values: dict[str, str], kind: str) -> None:
    result = helm("lint", "--strict", "chart", *sets(values), check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    docs = render(values)
    validate_all(docs)
    assert {d["kind"] for d in docs} >= SANDBOX_KINDS


def test_the_role_is_least_privilege_in_the_releases_namespace() -> None:
    docs = render(CALLER)
    assert not [d for d in docs if d["kind"] in ("ClusterRole", "ClusterRoleBinding")]
    role = by_kind(docs, "Role")
    granted = {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    assert granted == {
        *{("", r, v) for r in ("pods", "persistentvolumeclaims") for v in ("get", "list", "create", "delete")},
        ("", "secrets", "create"),
        ("", "secrets", "delete"),
    }  # no Secret is ever read, no pods/exec or pods/log, no watch, no update
    assert not any("resourceNames" in rule or "nonResourceURLs" in rule for rule in role["rules"])
    binding = by_kind(docs, "RoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": NAME, "namespace": "opencode"}]


@SHAPES
def test_only_the_gateway_container_holds_the_service_account_token(values: dict[str, str], kind: str) -> None:
    docs = render(values)
    spec = pod_spec(docs, kind)
    assert spec["automountServiceAccountToken"] is False  # never to every container
    (volume,) = [v for v in spec["volumes"] if v["name"] == "kube-api"]
    assert [s for s in volume["projected"]["sources"] if "serviceAccountToken" in s]
    by_name = containers(docs, kind)
    mounts = {name: {m["name"] for m in c.get("volumeMounts", [])} for name, c in by_name.items()}
    assert "kube-api" in mounts["gateway"] and "kube-api" not in mounts["opencode"]
    gateway_mount = next(m for m in by_name["gateway"]["volumeMounts"] if m["name"] == "kube-api")
    assert gateway_mount["mountPath"] == "/var/run/secrets/kubernetes.io/serviceaccount"  # where clients look
    assert restricted_v2_problems(spec) == []  # a projected token is allowed under restricted-v2


def test_only_the_gateway_pods_reach_a_sandbox_and_a_sandbox_only_the_llm_proxy_and_dns() -> None:
    values = {**CALLER, "sandbox.egress[0].to[0].ipBlock.cidr": "10.20.0.0/16"}
    docs = render(values)
    policy = named(docs, "NetworkPolicy", f"{NAME}-sandboxes")
    assert matches(policy["spec"]["podSelector"]["matchLabels"], sandbox_labels())
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    gateway_labels = by_kind(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    (ingress,) = policy["spec"]["ingress"]
    (source,) = ingress["from"]
    assert matches(source["podSelector"]["matchLabels"], gateway_labels)
    assert not matches(source["podSelector"]["matchLabels"], sandbox_labels())  # not one sandbox from another
    assert ingress["ports"] == [{"port": 4096, "protocol": "TCP"}]
    proxy, dns, extra = policy["spec"]["egress"]
    assert matches(proxy["to"][0]["podSelector"]["matchLabels"], gateway_labels)
    assert proxy["ports"] == [{"port": 4097, "protocol": "TCP"}]
    assert {p["port"] for p in dns["ports"]} == {53, 5353}
    assert extra == {"to": [{"ipBlock": {"cidr": "10.20.0.0/16"}}]}
    # The gateway side admits the sandboxes on the LLM proxy's port, and on nothing else.
    gateway_policy = named(docs, "NetworkPolicy", NAME)
    from_sandboxes = [
        rule
        for rule in gateway_policy["spec"]["ingress"]
        if any(
            matches(s.get("podSelector", {}).get("matchLabels", {"x": "y"}), sandbox_labels())
            for s in rule.get("from", [])
        )
    ]
    assert [r["ports"] for r in from_sandboxes] == [[{"port": 4097, "protocol": "TCP"}]]


def test_no_service_of_the_release_selects_a_sandbox_pod() -> None:
    docs = render(CALLER_MANY)
    services = [d for d in docs if d["kind"] == "Service"]
    assert {s["metadata"]["name"] for s in services} >= {NAME, f"{NAME}-llm"}
    for service in services:
        assert not matches(service["spec"]["selector"], sandbox_labels()), service["metadata"]["name"]
    llm = named(docs, "Service", f"{NAME}-llm")
    assert llm["spec"]["ports"][0]["port"] == 4097


@SHAPES
def test_the_gateway_accepts_the_sandbox_environment_the_chart_gives_it(values: dict[str, str], kind: str) -> None:
    docs = render({**values, "sandbox.storage.size": "20Gi", "sandbox.storage.storageClass": "fast"})
    gateway = containers(docs, kind)["gateway"]
    env = {e["name"]: e["value"] for e in gateway["env"] if "value" in e and e["name"].startswith("SANDBOX")}
    assert env["SANDBOX"] == "caller" and env["SANDBOX_RUNTIME"] == "kubernetes"
    assert env["SANDBOX_KUBE_IMAGE"] == gateway["image"]
    assert env["SANDBOX_KUBE_LLM_PROXY_URL"] == f"http://{NAME}-llm.opencode.svc.cluster.local:4097/v1"
    # The whole environment the container starts with (Secret references resolved): the sandbox
    # settings are checked together with the rest (the model provider, no pool of workers).
    settings = load_settings(_env_file=None, spawn_opencode=False, **started_env(docs, gateway, f"{NAME}-0"))
    assert settings.sandboxed and settings.sandbox_runtime_kind == "kubernetes"
    assert settings.sandbox_kube_namespace == "opencode" and settings.sandbox_kube_prefix == NAME
    assert settings.sandbox_kube_runtime_class == "gvisor"
    assert settings.sandbox_kube_storage_size == "20Gi" and settings.sandbox_kube_storage_class == "fast"
    assert settings.sandbox_kube_resources_map == {
        "requests": {"cpu": "100m", "memory": "512Mi"},
        "limits": {"cpu": "2", "memory": "2Gi"},
    }


@pytest.mark.parametrize(
    ("values", "scope"),
    [
        (EXAMPLE, "off"),  # one bearer token: one trust domain
        ({**EXAMPLE, "gateway.apiKeys.alice": "alice-key-0123456789"}, "caller"),
        ({**EXAMPLE, "gateway.apiKeysSecret": "team-keys"}, "caller"),
        ({**EXAMPLE, "gateway.apiKeys.alice": "alice-key-0123456789", "sandbox.scope": "off"}, "off"),
        ({**EXAMPLE, "sandbox.scope": "task"}, "task"),
    ],
    ids=["token", "api-keys", "api-keys-secret", "explicit-off", "task"],
)
def test_the_scope_defaults_to_caller_when_callers_can_be_told_apart(values: dict[str, str], scope: str) -> None:
    docs = render(values)
    env = {e["name"]: e.get("value") for e in containers(docs, "Deployment")["gateway"]["env"]}
    kinds = {d["kind"] for d in docs}
    if scope == "off":
        assert "SANDBOX" not in env and "SANDBOX_RUNTIME" not in env
        assert not kinds & SANDBOX_KINDS
        assert "kube-api" not in {v["name"] for v in pod_spec(docs, "Deployment")["volumes"]}
        assert f"{NAME}-sandboxes" not in {d["metadata"]["name"] for d in docs if d["kind"] == "NetworkPolicy"}
    else:
        assert env["SANDBOX"] == scope and env["SANDBOX_RUNTIME"] == "kubernetes"
        assert kinds >= SANDBOX_KINDS


def test_a_wrong_scope_is_refused() -> None:
    result = helm("template", "gw", "chart", *sets({**EXAMPLE, "sandbox.scope": "everyone"}), check=False)
    assert result.returncode != 0 and "sandbox" in result.stderr and "scope" in result.stderr


@SHAPES
def test_the_opencode_container_has_a_liveness_probe_without_a_secret(values: dict[str, str], kind: str) -> None:
    opencode = containers(render(values), kind)["opencode"]
    for probe in ("startupProbe", "livenessProbe"):
        assert opencode[probe]["exec"]["command"] == PROBE_COMMAND  # the one the sandbox pods use, tested
    probe = opencode["livenessProbe"]
    assert probe["timeoutSeconds"] >= 5 and probe["failureThreshold"] >= 3
    # Nothing secret in it: the password is read from the container's own environment.
    assert "httpGet" not in probe and "OPENCODE_PASSWORD" in PROBE_COMMAND[2]
    env = {e["name"]: e for e in opencode["env"]}
    assert "secretKeyRef" in env["OPENCODE_PASSWORD"]["valueFrom"]
