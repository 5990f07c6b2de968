"""The Helm chart: lint, render, validate against Kubernetes 1.33 and a Route schema, and
check what production needs (secrets by reference, probes, restricted security)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.chart.fake_kube import FakeKube

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
    "repositories.allowlist": "https://git.example.com/team/",
    "repositories.credentialsSecret": "team-git-credentials",
    "repositories.commitAuthor": "Team Bot <bot@example.com>",
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
    data = dict(secret_doc["stringData"])
    link = data.pop("llm-proxy-token")  # generated: links the pod's two containers (test_split_pod.py)
    assert len(link) >= 32 and link not in rendered_env
    signing = data.pop("webhook-secret")  # generated: signs the webhooks (test_webhooks_chart.py)
    assert signing.startswith("whsec_") and signing not in rendered_env
    assert data == {
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

    fixed = {**EXAMPLE, "gateway.mcpBearerToken": "fixed-token"}  # else each render generates one
    assert checksum(fixed) == checksum(fixed)
    assert checksum(fixed) != checksum({**fixed, "opencode.apiKey": "sk-rotated"})


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
    assert "DEFAULT_MODEL" not in env and "ALLOW_UNAUTHENTICATED" not in env


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
    assert "https://$HOST/mcp" in notes and "Authorization: Bearer <token>" in notes
    assert (
        "oc get secret gw-opencode-mcp-gateway -n opencode -o jsonpath='{.data.mcp-bearer-token}' | base64 -d" in notes
    )
    assert "WARNING" not in notes


def test_a_bearer_token_is_generated_when_none_is_given() -> None:
    docs = render(EXAMPLE)
    token = by_kind(docs, "Secret")["stringData"]["mcp-bearer-token"]
    assert len(token) >= 32 and token.isalnum()
    assert env_of(docs)["MCP_BEARER_TOKEN"]["valueFrom"]["secretKeyRef"]["optional"] is False
    assert "ALLOW_UNAUTHENTICATED" not in env_of(docs)
    assert by_kind(render(EXAMPLE), "Secret")["stringData"]["mcp-bearer-token"] != token  # random per install


def test_the_generated_token_survives_helm_upgrade(tmp_path: Path) -> None:
    """`helm upgrade` renders against the cluster: the token its Secret already holds is kept."""
    kube = FakeKube()
    try:
        kubeconfig = str(kube.kubeconfig(tmp_path / "kubeconfig"))
        server = ("--dry-run=server", "--disable-openapi-validation", "--kubeconfig", kubeconfig)
        first = by_kind(render(EXAMPLE, *server), "Secret")["stringData"]["mcp-bearer-token"]
        kube.secrets[("opencode", "gw-opencode-mcp-gateway")] = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {  # as the first install left it, owned by the release
                "name": "gw-opencode-mcp-gateway",
                "namespace": "opencode",
                "labels": {"app.kubernetes.io/managed-by": "Helm"},
                "annotations": {"meta.helm.sh/release-name": "gw", "meta.helm.sh/release-namespace": "opencode"},
            },
            "data": {"mcp-bearer-token": base64.b64encode(first.encode()).decode()},
        }
        upgraded = render(EXAMPLE, *server)
        again = render(EXAMPLE, *server)
    finally:
        kube.stop()
    assert by_kind(upgraded, "Secret")["stringData"]["mcp-bearer-token"] == first
    checksum = "checksum/secret"
    annotations = [by_kind(d, "Deployment")["spec"]["template"]["metadata"]["annotations"] for d in (upgraded, again)]
    assert annotations[0][checksum] == annotations[1][checksum]  # an unchanged upgrade does not roll the pod


def test_only_the_gateway_port_is_reachable() -> None:
    policy = by_kind(render(EXAMPLE), "NetworkPolicy")
    (rule,) = policy["spec"]["ingress"]
    assert rule["ports"] == [{"port": 8080, "protocol": "TCP"}] and "from" not in rule
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    (restricted,) = by_kind(render(EVERYTHING), "NetworkPolicy")["spec"]["ingress"]
    assert restricted["ports"] == rule["ports"] and restricted["from"]


def test_allow_unauthenticated_is_explicit_and_warned() -> None:
    values = {**EXAMPLE, "gateway.allowUnauthenticated": "true"}
    assert env_of(render(values))["ALLOW_UNAUTHENTICATED"]["value"] == "true"
    out = helm("install", "gw", str(CHART), "--dry-run=client", "--namespace", "opencode", *sets(values)).stdout
    assert "WARNING: gateway.allowUnauthenticated is true" in out.split("NOTES:", 1)[1]


AUTH = {
    **EXAMPLE,
    "route.host": "gw.apps.example.com",
    "gateway.apiKeys.ci-bot": "ci-bot-key-0123456789",
    "gateway.apiKeys.ops": "ops-key-0123456789ab",
    "gateway.oauth.issuer": "https://keycloak.example.com/realms/dev",
    "gateway.oauth.requiredScopes": "tasks",
    "gateway.oauth.adminScope": "gateway-admin",
}


def test_oauth_and_api_keys_become_settings_and_a_mounted_secret() -> None:
    docs = render(AUTH)
    for doc in docs:
        if doc["kind"] != "Route":
            kubernetes_validate.validate(doc, K8S, strict=True)
    env = env_of(docs)
    assert env["PUBLIC_URL"]["value"] == "https://gw.apps.example.com"  # from the Route host
    assert env["OAUTH_ISSUER"]["value"] == "https://keycloak.example.com/realms/dev"
    assert env["OAUTH_REQUIRED_SCOPES"]["value"] == "tasks" and env["OAUTH_ADMIN_SCOPE"]["value"] == "gateway-admin"
    assert "OAUTH_AUDIENCE" not in env and "OAUTH_JWKS_URL" not in env  # the gateway's defaults apply
    keys = next(d for d in docs if d["kind"] == "Secret" and d["metadata"]["name"].endswith("-api-keys"))
    assert keys["stringData"]["api-keys"].splitlines() == ["ci-bot ci-bot-key-0123456789", "ops ops-key-0123456789ab"]
    assert "ci-bot-key-0123456789" not in json.dumps(container(docs)["env"])
    mount = next(m for m in container(docs)["volumeMounts"] if m["name"] == "api-keys")
    assert "subPath" not in mount  # a projected Secret updates in place: keys rotate without a restart
    volume = next(
        v for v in by_kind(docs, "Deployment")["spec"]["template"]["spec"]["volumes"] if v["name"] == "api-keys"
    )
    assert volume["secret"]["secretName"] == keys["metadata"]["name"]
    assert env["MCP_API_KEYS_FILE"]["value"] == f"{mount['mountPath']}/{volume['secret']['items'][0]['path']}"
    for name in ("PUBLIC_URL", "OAUTH_ISSUER", "MCP_API_KEYS_FILE"):
        assert name not in env_of(render(EXAMPLE))


def test_an_existing_api_keys_secret_is_mounted_instead() -> None:
    docs = render({**EXAMPLE, "gateway.apiKeysSecret": "team-keys"})
    assert [d["metadata"]["name"] for d in docs if d["kind"] == "Secret"] == ["gw-opencode-mcp-gateway"]
    volumes = by_kind(docs, "Deployment")["spec"]["template"]["spec"]["volumes"]
    assert {
        "name": "api-keys",
        "secret": {"secretName": "team-keys", "items": [{"key": "api-keys", "path": "api-keys"}]},
    } in volumes


def test_oauth_needs_a_public_url() -> None:
    values = {k: v for k, v in AUTH.items() if k != "route.host"}
    result = helm("template", "gw", str(CHART), *sets(values), check=False)
    assert result.returncode != 0 and "gateway.publicUrl is required" in result.stderr, result.stderr
    docs = render({**values, "gateway.publicUrl": "https://ocgw.example.com/"})
    assert env_of(docs)["PUBLIC_URL"]["value"] == "https://ocgw.example.com"


def test_repository_settings_and_the_credentials_secret_mounted_read_only() -> None:
    docs = render(EVERYTHING)
    env = env_of(docs)
    assert env["REPOSITORY_ALLOWLIST"]["value"] == "https://git.example.com/team/"
    assert env["GIT_COMMIT_AUTHOR"]["value"] == "Team Bot <bot@example.com>"
    assert env["WORKSPACE_TTL_HOURS"]["value"] == "72"
    path = env["GIT_CREDENTIALS_FILE"]["value"]
    mount = next(m for m in container(docs)["volumeMounts"] if m["name"] == "git-credentials")
    assert mount["readOnly"] is True and path == mount["mountPath"] + "/credentials"
    volumes = by_kind(docs, "Deployment")["spec"]["template"]["spec"]["volumes"]
    secret = next(v for v in volumes if v["name"] == "git-credentials")["secret"]
    assert secret["secretName"] == "team-git-credentials"
    assert secret["items"] == [{"key": "git-credentials", "path": "credentials"}]
    plain = env_of(render(EXAMPLE))
    assert "REPOSITORY_ALLOWLIST" not in plain and "GIT_CREDENTIALS_FILE" not in plain, "off unless configured"


@pytest.mark.parametrize(
    ("key", "value"),
    [("gateway.apiKeys.ci", "short"), ("gateway.oauth.issuer", "keycloak.example.com"), ("gateway.oauth.scopes", "x")],
)
def test_wrong_auth_values_are_refused_by_the_schema(key: str, value: str) -> None:
    result = helm("template", "gw", str(CHART), *sets({**AUTH, key: value}), check=False)
    assert result.returncode != 0, result.stdout


def test_notes_tell_how_to_sign_in() -> None:
    out = helm("install", "gw", str(CHART), "--dry-run=client", "--namespace", "opencode", *sets(AUTH)).stdout
    notes = out.split("NOTES:", 1)[1]
    assert "https://gw.apps.example.com/.well-known/oauth-protected-resource/mcp" in notes
    assert "gw-opencode-mcp-gateway-api-keys" in notes and "mcpBearerToken is empty" not in notes


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("repositories.allowlist", "https://bot:token@git.example.com/"),
        ("repositories.allowlist", "file:///srv/git"),
        ("repositories.commitAuthor", "just a name"),
    ],
)
def test_bad_repository_values_are_refused(key: str, value: str) -> None:
    result = helm("template", "gw", str(CHART), *sets({**EXAMPLE, key: value}), check=False)
    assert result.returncode != 0 and key.split(".")[1] in result.stderr, result.stderr
