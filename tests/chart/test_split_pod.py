"""The pod's two containers (issue 11: the agent can neither read the credentials nor push
by itself): OpenCode runs in a container of its own that holds none of the gateway's secrets,
shares the data volume at the same paths, and reaches the model through the gateway's LLM
proxy. Both workload shapes, validated against Kubernetes 1.33."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from opencode_mcp_gateway.config import load_settings
from opencode_mcp_gateway.opencode.split_pod import GATEWAY_ONLY
from tests.chart.fake_kube import FakeKube
from tests.chart.test_chart import CHART, EVERYTHING, EXAMPLE, by_kind, helm, render, sets
from tests.chart.test_scale_out import NAME, validate_all

SECRETS = {  # every secret the chart can hand the gateway
    "gateway.apiKeys.ci": "ci-key-0123456789abcdef",
    "gateway.oauth.issuer": "https://keycloak.example.com/realms/dev",
    "gateway.publicUrl": "https://gw.apps.example.com",
}
ONE = {**EVERYTHING, **SECRETS}
MANY = {**ONE, "replicaCount": "3"}
SHAPES = pytest.mark.parametrize(("values", "kind"), [(ONE, "Deployment"), (MANY, "StatefulSet")], ids=["one", "many"])
LINK_KEYS = {"llm-proxy-token", "opencode-server-password"}


def containers(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    pod = by_kind(docs, kind)["spec"]["template"]["spec"]
    return {c["name"]: c for c in pod["containers"]}


def secret_volumes(docs: list[dict[str, Any]], kind: str) -> set[str]:
    pod = by_kind(docs, kind)["spec"]["template"]["spec"]
    return {v["name"] for v in pod["volumes"] if "secret" in v or "projected" in v}


def chart_secret(docs: list[dict[str, Any]]) -> dict[str, str]:
    secret = next(d for d in docs if d["kind"] == "Secret" and d["metadata"]["name"] == NAME)
    return secret["stringData"]  # type: ignore[no-any-return]


def started_env(docs: list[dict[str, Any]], container: dict[str, Any], pod: str) -> dict[str, str]:
    """The environment `container` starts with: Secret references and the downward API resolved."""
    secret = chart_secret(docs)
    env = {}
    for entry in container["env"]:
        source = entry.get("valueFrom", {})
        if "fieldRef" in source:
            env[entry["name"].lower()] = pod
        elif "secretKeyRef" in source:
            env[entry["name"].lower()] = secret[source["secretKeyRef"]["key"]]
        else:
            env[entry["name"].lower()] = entry["value"]
    return env


@SHAPES
def test_the_secrets_are_the_gateway_containers_only(values: dict[str, str], kind: str) -> None:
    docs = render(values)
    validate_all(docs)
    pod = by_kind(docs, kind)["spec"]["template"]["spec"]
    assert not pod.get("shareProcessNamespace"), "the agent would see the gateway's /proc"
    both = containers(docs, kind)
    assert list(both) == ["gateway", "opencode"]
    gateway, opencode = both["gateway"], both["opencode"]
    assert opencode["image"] == gateway["image"] and opencode["args"] == ["opencode"]
    assert gateway["args"] == ["--no-spawn-opencode"]
    # The gateway holds every secret: the provider's key, the callers' tokens, the git credentials.
    gateway_env = {e["name"] for e in gateway["env"]}
    assert {"OPENCODE_API_KEY", "MCP_BEARER_TOKEN", "GIT_CREDENTIALS_FILE", "MCP_API_KEYS_FILE"} <= gateway_env
    assert {m["name"] for m in gateway["volumeMounts"]} >= {"git-credentials", "api-keys"}
    # OpenCode holds none, nor a path to one, nor a mount of one.
    names = {e["name"] for e in opencode["env"]}
    assert not names & {name.upper() for name in GATEWAY_ONLY}
    assert not [n for n in names if n.startswith(("OAUTH_", "MCP_", "GIT_", "REQUEST_"))], names
    assert "envFrom" not in opencode
    refs = {e["valueFrom"]["secretKeyRef"]["key"] for e in opencode["env"] if "secretKeyRef" in e.get("valueFrom", {})}
    assert refs == LINK_KEYS  # only what links it to its gateway, and is OpenCode's own anyway
    assert not {m["name"] for m in opencode["volumeMounts"]} & secret_volumes(docs, kind)
    rendered = json.dumps(opencode)
    for path in ("/etc/opencode-gateway/git", "/etc/opencode-mcp-gateway/api-keys"):
        assert path not in rendered
    every = [v for d in docs if d["kind"] == "Secret" for v in d["stringData"].values()]
    assert "ci-key-0123456789abcdef" in " ".join(every)
    for value in every:
        assert value not in json.dumps(pod)  # every secret by reference, never in the pod spec


@SHAPES
def test_both_containers_share_the_data_volume_at_the_same_paths(values: dict[str, str], kind: str) -> None:
    both = containers(render(values), kind)

    def data_mounts(container: dict[str, Any]) -> set[tuple[str, str]]:
        return {(m["mountPath"], m.get("subPath", "")) for m in container["volumeMounts"] if m["name"] == "data"}

    shared = {("/workspace", "workspace"), ("/var/lib/opencode-gateway", "opencode")}
    assert data_mounts(both["gateway"]) == data_mounts(both["opencode"]) == shared
    tmp = {c: next(m["name"] for m in both[c]["volumeMounts"] if m["mountPath"] == "/tmp") for c in both}
    assert tmp["gateway"] != tmp["opencode"]  # the gateway's scratch space is not the agent's
    paths = {c: {e["name"]: e.get("value") for e in both[c]["env"]} for c in both}
    for name in ("WORKSPACE_DIR", "LLM_PROXY_PORT", "OPENCODE_MODEL_NAME", "PERMISSION_POLICY"):
        assert paths["gateway"][name] == paths["opencode"][name], name


@SHAPES
def test_each_container_starts_with_what_the_chart_gives_it(values: dict[str, str], kind: str) -> None:
    """What the chart renders is accepted by the gateway's own validation, in each container's mode."""
    docs = render(values)
    both = containers(docs, kind)
    gateway_env = started_env(docs, both["gateway"], f"{NAME}-0")
    opencode_env = started_env(docs, both["opencode"], f"{NAME}-0")
    gateway = load_settings(_env_file=None, spawn_opencode=False, **gateway_env)
    opencode = load_settings(_env_file=None, opencode_only=True, spawn_opencode=False, **opencode_env)
    assert gateway.llm_proxy_port == opencode.llm_proxy_port == 4097
    assert (
        gateway.llm_proxy_token == opencode.llm_proxy_token and gateway.opencode_password == opencode.opencode_password
    )
    assert opencode.opencode_port == 4096 and f":{opencode.opencode_port}" in gateway.worker_urls["w0"]
    listens = "0.0.0.0" if kind == "StatefulSet" else "127.0.0.1"  # the peers reach each pod's OpenCode
    assert opencode.opencode_listen_host == listens


def test_opencode_alone_would_refuse_a_secret_given_through_extra_env() -> None:
    """gateway.extraEnv is the gateway's: only model prices (for OpenCode's config) reach OpenCode."""
    values = {
        **EXAMPLE,
        "gateway.extraEnv[0].name": "MODEL_COST_INPUT_PER_MTOK",
        "gateway.extraEnv[0].value": "3",
        "gateway.extraEnv[1].name": "SOME_TOKEN",
        "gateway.extraEnv[1].value": "not-for-the-agent",
    }
    both = containers(render(values), "Deployment")
    opencode = {e["name"]: e.get("value") for e in both["opencode"]["env"]}
    assert opencode["MODEL_COST_INPUT_PER_MTOK"] == "3" and "SOME_TOKEN" not in opencode
    assert {e["name"] for e in both["gateway"]["env"]} >= {"MODEL_COST_INPUT_PER_MTOK", "SOME_TOKEN"}


def test_a_stopping_worker_serves_its_peers_as_long_as_its_gateway_drains() -> None:
    many = containers(render({**MANY, "drainSeconds": "42", "terminationGracePeriodSeconds": "60"}), "StatefulSet")
    gateway_env = {e["name"]: e.get("value") for e in many["gateway"]["env"]}
    # The gateway hears SIGTERM at once and drains; OpenCode sleeps through the same drain.
    assert "lifecycle" not in many["gateway"] and gateway_env["SHUTDOWN_DRAIN_SECONDS"] == "42"
    assert many["opencode"]["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", "42"]
    assert [p["containerPort"] for p in many["opencode"]["ports"]] == [4096]
    one = containers(render(ONE), "Deployment")
    assert "ports" not in one["opencode"] and "lifecycle" not in one["opencode"]


def test_an_existing_secret_must_hold_the_link_keys() -> None:
    values = {k: v for k, v in EXAMPLE.items() if k != "opencode.apiKey"}
    docs = render({**values, "existingSecret": "team-secret"})
    for container in containers(docs, "Deployment").values():
        refs = {
            e["valueFrom"]["secretKeyRef"]["key"]: e["valueFrom"]["secretKeyRef"]
            for e in container["env"]
            if "secretKeyRef" in e.get("valueFrom", {})
        }
        for key in LINK_KEYS:
            assert refs[key]["name"] == "team-secret" and refs[key].get("optional", False) is False


def test_the_generated_link_secrets_survive_helm_upgrade(tmp_path: Path) -> None:
    """Upgrading must not hand one container a new password while the other keeps the old."""
    kube = FakeKube()
    try:
        kubeconfig = str(kube.kubeconfig(tmp_path / "kubeconfig"))
        server = ("--dry-run=server", "--disable-openapi-validation", "--kubeconfig", kubeconfig)
        first = by_kind(render(EXAMPLE, *server), "Secret")["stringData"]
        assert set(first) >= LINK_KEYS and len({first[k] for k in LINK_KEYS}) == 2
        kube.keep_release_secret(NAME, first)
        upgraded = [render(EXAMPLE, *server) for _ in range(2)]
    finally:
        kube.stop()
    for docs in upgraded:
        kept = by_kind(docs, "Secret")["stringData"]
        assert {k: kept[k] for k in LINK_KEYS} == {k: first[k] for k in LINK_KEYS}
    annotations = [by_kind(d, "Deployment")["spec"]["template"]["metadata"]["annotations"] for d in upgraded]
    assert annotations[0]["checksum/secret"] == annotations[1]["checksum/secret"]


def test_an_existing_secret_without_the_link_keys_is_refused_with_what_to_add(tmp_path: Path) -> None:
    values = {k: v for k, v in EXAMPLE.items() if k != "opencode.apiKey"}
    kube = FakeKube()
    try:
        kubeconfig = str(kube.kubeconfig(tmp_path / "kubeconfig"))
        server = ("--dry-run=server", "--disable-openapi-validation", "--kubeconfig", kubeconfig)
        kube.keep_release_secret("team-secret", {"opencode-api-key": "sk", "llm-proxy-token": "t" * 32})
        given = sets({**values, "existingSecret": "team-secret"})
        old = helm("template", "gw", str(CHART), "--namespace", "opencode", *given, *server, check=False)
        kube.keep_release_secret("team-secret", {"opencode-api-key": "sk", **dict.fromkeys(LINK_KEYS, "x" * 32)})
        complete = render({**values, "existingSecret": "team-secret"}, *server)
    finally:
        kube.stop()
    assert old.returncode != 0
    assert "existingSecret team-secret has no opencode-server-password: add them" in old.stderr, old.stderr
    assert containers(complete, "Deployment")["opencode"]["args"] == ["opencode"]
