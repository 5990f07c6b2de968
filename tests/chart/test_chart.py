"""The Helm chart: lint, render, validate against Kubernetes 1.33 and a Route schema, and
check what production needs (secrets by reference, probes, restricted security)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "chart"
HELM = os.environ.get("HELM") or str(REPO / ".tools" / "bin" / "helm")
ROUTE_SCHEMA = json.loads((Path(__file__).with_name("route.schema.json")).read_text())
K8S = "1.33.0"

EXAMPLE = {  # the README's install example
    "image.repository": "image-registry.openshift-image-registry.svc:5000/opencode/opencode-mcp-gateway",
    "opencode.apiUrl": "https://llm.example.com/v1",
    "opencode.apiKey": "sk-chart-secret-key",
    "opencode.modelName": "gpt-4o",
}
EVERYTHING = {
    **EXAMPLE,
    "gateway.mcpBearerToken": "bearer-chart-token",
    "gateway.allowedHosts": "gw.example.com",
    "gateway.defaultModel": "gateway/gpt-4o",
    "gateway.permissionPolicy": "ask",
    "opencode.serverPassword": "oc-server-password",
    "route.host": "gw.apps.example.com",
    "networkPolicy.enabled": "true",
    "podDisruptionBudget.enabled": "true",
    "securityContext.readOnlyRootFilesystem": "true",
    "persistence.storageClass": "fast",
    "serviceAccount.annotations.owner": "platform",
    "gateway.extraEnv[0].name": "PROGRESS_INTERVAL_SECONDS",
    "gateway.extraEnv[0].value": "5",
}
INGRESS = {
    **EVERYTHING,
    "route.enabled": "false",
    "ingress.enabled": "true",
    "ingress.host": "gw.k8s.example.com",
    "ingress.className": "nginx",
    "persistence.enabled": "false",
}


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    if not os.access(HELM, os.X_OK):
        raise RuntimeError(f"helm not found at {HELM}: run `make test` (it installs helm)")
    return subprocess.run([HELM, *args], capture_output=True, text=True, check=check, timeout=60)


def sets(values: dict[str, str]) -> list[str]:
    return [arg for key, value in values.items() for arg in ("--set", f"{key}={value}")]


def render(values: dict[str, str], *extra: str) -> list[dict[str, Any]]:
    out = helm("template", "gw", str(CHART), "--namespace", "opencode", *sets(values), *extra).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (doc,) = [d for d in docs if d["kind"] == kind]
    return doc


def container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return by_kind(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]  # type: ignore[no-any-return]


def env_of(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container(docs)["env"]}


@pytest.mark.parametrize("values", [EXAMPLE, EVERYTHING, INGRESS], ids=["example", "everything", "ingress"])
def test_lint_strict(values: dict[str, str]) -> None:
    result = helm("lint", "--strict", str(CHART), *sets(values), check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("values", [EXAMPLE, EVERYTHING, INGRESS], ids=["example", "everything", "ingress"])
def test_every_manifest_validates(values: dict[str, str]) -> None:
    docs = render(values)
    kinds = sorted(d["kind"] for d in docs)
    for doc in docs:
        if doc["kind"] == "Route":
            jsonschema.validate(doc, ROUTE_SCHEMA)
        else:
            kubernetes_validate.validate(doc, K8S, strict=True)
    if values is EVERYTHING:
        assert kinds == sorted(
            [
                "Deployment",
                "NetworkPolicy",
                "PersistentVolumeClaim",
                "PodDisruptionBudget",
                "Route",
                "Secret",
                "Service",
                "ServiceAccount",
            ]
        )
    if values is INGRESS:
        assert "Ingress" in kinds and "Route" not in kinds and "PersistentVolumeClaim" not in kinds


def test_secrets_are_referenced_never_plain() -> None:
    docs = render(EVERYTHING)
    env = env_of(docs)
    rendered_env = json.dumps(container(docs)["env"])
    for secret in ("sk-chart-secret-key", "bearer-chart-token", "oc-server-password"):
        assert secret not in rendered_env
    secret_doc = by_kind(docs, "Secret")
    assert secret_doc["stringData"] == {
        "opencode-api-key": "sk-chart-secret-key",
        "mcp-bearer-token": "bearer-chart-token",
        "opencode-server-password": "oc-server-password",
    }
    name = secret_doc["metadata"]["name"]
    assert env["MCP_BEARER_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": name,
        "key": "mcp-bearer-token",
        "optional": False,
    }
    assert env["OPENCODE_API_KEY"]["valueFrom"]["secretKeyRef"]["key"] == "opencode-api-key"
    assert env["OPENCODE_PASSWORD"]["valueFrom"]["secretKeyRef"]["key"] == "opencode-server-password"


def test_changed_secret_rolls_the_pod() -> None:
    def checksum(values: dict[str, str]) -> str:
        deployment = by_kind(render(values), "Deployment")
        return str(deployment["spec"]["template"]["metadata"]["annotations"]["checksum/secret"])

    assert checksum(EXAMPLE) != checksum({**EXAMPLE, "opencode.apiKey": "sk-rotated"})


def test_existing_secret_replaces_the_charts_secret() -> None:
    values = {k: v for k, v in EXAMPLE.items() if k != "opencode.apiKey"}
    docs = render({**values, "existingSecret": "my-llm-secret"})
    assert not [d for d in docs if d["kind"] == "Secret"]
    env = env_of(docs)
    assert env["OPENCODE_API_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "my-llm-secret"
    assert env["MCP_BEARER_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "my-llm-secret",
        "key": "mcp-bearer-token",
        "optional": True,
    }


def test_probes_and_restricted_security() -> None:
    docs = render(EXAMPLE)
    c = container(docs)
    pod = by_kind(docs, "Deployment")["spec"]["template"]["spec"]
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["startupProbe"]["periodSeconds"] * c["startupProbe"]["failureThreshold"] >= 60
    assert pod["securityContext"] == {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    assert "runAsUser" not in json.dumps(pod)  # OpenShift assigns the UID
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    mounts = {m["mountPath"] for m in c["volumeMounts"]}
    assert {"/workspace", "/var/lib/opencode-gateway", "/tmp"} <= mounts
    assert c["resources"] == {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}}
    assert container(render(EVERYTHING))["securityContext"]["readOnlyRootFilesystem"] is True


def test_route_edge_tls_redirect_and_long_timeout() -> None:
    route = by_kind(render(EVERYTHING), "Route")
    assert route["spec"]["tls"] == {"termination": "edge", "insecureEdgeTerminationPolicy": "Redirect"}
    assert route["spec"]["host"] == "gw.apps.example.com"
    assert route["metadata"]["annotations"]["haproxy.router.openshift.io/timeout"] == "1h"
    assert "host" not in by_kind(render(EXAMPLE), "Route")["spec"]  # generated by the cluster


def test_route_host_and_service_names_are_allowed_hosts() -> None:
    hosts = env_of(render(EVERYTHING))["ALLOWED_HOSTS"]["value"].split(",")
    assert hosts[:2] == ["gw.example.com", "gw.apps.example.com"]
    assert "gw-opencode-mcp-gateway.opencode.svc" in hosts
    assert "ALLOWED_HOSTS" not in env_of(render(EXAMPLE))  # unset stays unset


def test_defaults_match_the_documented_values() -> None:
    docs = render(EXAMPLE)
    env = env_of(docs)
    assert by_kind(docs, "Deployment")["spec"]["replicas"] == 1
    assert container(docs)["image"].endswith(":latest") and container(docs)["imagePullPolicy"] == "IfNotPresent"
    assert env["DEFAULT_AGENT"]["value"] == "build" and env["SESSION_TITLE_PREFIX"]["value"] == "OCP Gateway"
    assert "DEFAULT_MODEL" not in env and "MCP_BEARER_TOKEN" not in env


@pytest.mark.parametrize(
    ("drop", "says"),
    [
        ("image.repository", "image.repository"),
        ("opencode.apiUrl", "apiUrl"),
        ("opencode.modelName", "modelName"),
        ("opencode.apiKey", "opencode.apiKey is required"),
    ],
)
def test_missing_required_values_are_refused(drop: str, says: str) -> None:
    values = {k: v for k, v in EXAMPLE.items() if k != drop}
    result = helm("template", "gw", str(CHART), *sets(values), check=False)
    assert result.returncode != 0 and says in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("key", "value", "says"),
    [
        ("replicaCount", "two", "replicaCount"),
        ("gateway.permissionPolicy", "maybe", "permissionPolicy"),
        ("opencode.apiUrl", "not-a-url", "apiUrl"),
        ("route.tls.termination", "none", "termination"),
    ],
)
def test_wrong_types_are_refused_by_the_schema(key: str, value: str, says: str) -> None:
    result = helm("template", "gw", str(CHART), *sets({**EXAMPLE, key: value}), check=False)
    assert result.returncode != 0 and says in result.stderr, result.stderr


def test_notes_print_the_real_commands() -> None:
    out = helm("install", "gw", str(CHART), "--dry-run=client", "--namespace", "opencode", *sets(EXAMPLE)).stdout
    notes = out.split("NOTES:", 1)[1]
    assert "oc rollout status deployment/gw-opencode-mcp-gateway -n opencode" in notes
    assert "oc get route gw-opencode-mcp-gateway -n opencode -o jsonpath='{.spec.host}'" in notes
    assert "https://$HOST/mcp" in notes and "mcpBearerToken is empty" in notes
