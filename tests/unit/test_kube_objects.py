"""The objects of one sandbox on Kubernetes (fleet/sandboxes/kube_objects.py) and the runtime's
settings: valid for Kubernetes 1.33, restricted-v2, no secret in the pod spec."""

from __future__ import annotations

import json
from pathlib import Path

import kubernetes_validate
import pytest

from opencode_mcp_gateway.config import ConfigError, load_settings
from opencode_mcp_gateway.fleet.sandboxes.kube_objects import (
    PodTemplate,
    claim_manifest,
    pod_manifest,
    secret_manifest,
    selector,
)
from opencode_mcp_gateway.fleet.sandboxes.kube_settings import kubernetes_runtime
from opencode_mcp_gateway.fleet.sandboxes.runtime import SandboxSpec
from tests.support.restricted_v2 import restricted_v2_problems

PASSWORD, TOKEN = "oc-password-0123456789abcdef", "llm-token-0123456789abcdef"
SPEC = SandboxSpec("c-4f2a", "caller", "9f86d081884c7d659a2feaa0c55ad015", PASSWORD, TOKEN, env={"EXTRA": "1"})
TEMPLATE = PodTemplate(
    image="registry.example.com/ocgw:1",
    llm_proxy_url="http://gw-llm.ns.svc:4097/v1",
    opencode_env={"OPENCODE_MODEL_NAME": "gpt-4o"},
    runtime_class="kata",
    resources={"limits": {"memory": "2Gi"}},
    storage_class="fast",
)


@pytest.mark.parametrize(
    "template", [TEMPLATE, PodTemplate(image="i", llm_proxy_url="http://p/v1")], ids=["all", "min"]
)
def test_every_object_validates_against_kubernetes_1_33(template: PodTemplate) -> None:
    for manifest in (
        pod_manifest("gw", SPEC, template),
        claim_manifest("gw", SPEC, template),
        secret_manifest("gw", SPEC, "u-1"),
    ):
        kubernetes_validate.validate(manifest, "1.33.0", strict=True)


def test_the_pod_passes_restricted_v2() -> None:
    spec = pod_manifest("gw", SPEC, TEMPLATE)["spec"]
    assert restricted_v2_problems(spec) == []
    assert spec["automountServiceAccountToken"] is False and spec["enableServiceLinks"] is False
    assert spec["runtimeClassName"] == "kata"
    # the checker sees a breach: a privileged container is caught
    spec["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
    assert restricted_v2_problems(spec) == ["opencode: privilege (escalation)"]


def test_no_credential_is_in_the_pod_spec_only_references_to_its_secret() -> None:
    hostile = SandboxSpec(**{**SPEC.__dict__, "env": {"OPENCODE_SERVER_PASSWORD": "chosen", "LLM_PROXY_TOKEN": "x"}})
    pod = pod_manifest("gw", hostile, TEMPLATE)
    text = json.dumps(pod)
    assert PASSWORD not in text and TOKEN not in text and "chosen" not in text
    secret = secret_manifest("gw", hostile, "uid-1")
    env = {e["name"]: e for e in pod["spec"]["containers"][0]["env"]}
    for name, key in (("OPENCODE_SERVER_PASSWORD", "opencode-password"), ("LLM_PROXY_TOKEN", "llm-token")):
        assert env[name]["valueFrom"]["secretKeyRef"] == {"name": secret["metadata"]["name"], "key": key}
    assert secret["stringData"] == {"opencode-password": PASSWORD, "llm-token": TOKEN}
    assert (
        env["LLM_PROXY_URL"]["value"] == "http://gw-llm.ns.svc:4097/v1"
        and env["OPENCODE_MODEL_NAME"]["value"] == "gpt-4o"
    )


def test_new_credentials_get_a_new_secret_and_the_secret_goes_with_the_claim() -> None:
    other = SandboxSpec(**{**SPEC.__dict__, "opencode_password": "another-password-0123456789"})
    assert secret_manifest("gw", SPEC, "u")["metadata"]["name"] != secret_manifest("gw", other, "u")["metadata"]["name"]
    (owner,) = secret_manifest("gw", SPEC, "uid-7")["metadata"]["ownerReferences"]
    assert owner == {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "name": "gw-c-4f2a", "uid": "uid-7"}


def test_labels_find_the_sandbox_and_name_no_caller() -> None:
    pod_labels = pod_manifest("gw", SPEC, TEMPLATE)["metadata"]["labels"]
    assert selector("gw").items() <= pod_labels.items()
    assert pod_labels["opencode-mcp-gateway/sandbox"] == "c-4f2a"
    assert pod_labels["opencode-mcp-gateway/owner"] == SPEC.owner_hash
    odd = SandboxSpec(**{**SPEC.__dict__, "owner_hash": "not a label value!"})
    assert "opencode-mcp-gateway/owner" not in pod_manifest("gw", odd, TEMPLATE)["metadata"]["labels"]


def test_the_claim_keeps_the_data_at_the_size_and_class_asked() -> None:
    claim = claim_manifest("gw", SPEC, TEMPLATE)
    assert claim["spec"]["resources"]["requests"]["storage"] == "5Gi" and claim["spec"]["storageClassName"] == "fast"
    mounts = pod_manifest("gw", SPEC, TEMPLATE)["spec"]["containers"][0]["volumeMounts"]
    assert {(m["mountPath"], m.get("subPath")) for m in mounts if m["name"] == "data"} == {
        ("/workspace", "workspace"),
        ("/var/lib/opencode-gateway", "opencode"),
    }


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("sandbox_kube_resources", "[1, 2]"),
        ("sandbox_kube_resources", '{"cpu": "1"}'),
        ("sandbox_kube_prefix", "Not_A_Name"),
        ("sandbox_kube_storage_size", "lots"),
        ("sandbox_kube_llm_proxy_url", "http://user:pw@gw-llm:4097/v1"),
    ],
)
def test_a_bad_setting_stops_start_up_naming_it(setting: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(_env_file=None, **{setting: value})
    assert setting.upper() in str(caught.value) and "pw" not in str(caught.value).replace(setting.upper(), "")


def test_start_up_says_what_the_runtime_misses(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))
    monkeypatch.setenv("HOME", str(tmp_path))
    missing_image = kubernetes_runtime(load_settings(_env_file=None)).problem()
    assert missing_image and "SANDBOX_KUBE_IMAGE" in missing_image
    ready = {"sandbox_kube_image": "img:1", "sandbox_kube_llm_proxy_url": "http://gw-llm:4097/v1"}
    no_cluster = kubernetes_runtime(load_settings(_env_file=None, **ready)).problem()
    assert no_cluster and "no Kubernetes API here" in no_cluster and "SANDBOX_RUNTIME=local" in no_cluster
    (tmp_path / "none").write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "https://k:6443"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    assert kubernetes_runtime(load_settings(_env_file=None, **ready)).problem() is None
