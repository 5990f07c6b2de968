"""Callers' tasks through a gateway whose sandboxes are Kubernetes pods (SANDBOX_RUNTIME=kubernetes),
against the Kubernetes API simulation (tests/support/kube_api.py): the gateway as users run it,
its client configured by KUBECONFIG, each caller's tasks in a pod of its own running the real
`opencode serve`. Needs the sandbox manager (fleet/sandboxes/manager.py, the sandbox branch);
skipped where it is not there yet."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("opencode_mcp_gateway.fleet.sandboxes.manager")

from opencode_mcp_gateway.fleet.sandboxes.kubernetes import WORKSPACES_UNSUPPORTED
from tests.e2e.test_kubernetes_runtime import NAMESPACE, chart_role_rules
from tests.support.client import data, error_text, mcp_session, script
from tests.support.fake_llm import FakeLLM
from tests.support.kube_api import KubeAPI
from tests.support.procs import Gateway, free_port

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

ALICE, BOB = "alice-key-0123456789abcdef", "bob-key-0123456789abcdef"


@pytest.fixture(scope="module")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeAPI]:
    api = KubeAPI(tmp_path_factory.mktemp("kube"), chart_role_rules(), namespace=NAMESPACE)
    yield api
    api.stop()
    assert api.invalid == [] and api.denied == []


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, kube: KubeAPI, fake_llm: FakeLLM) -> Iterator[Gateway]:
    root: Path = tmp_path_factory.mktemp("k8s-gw")
    (root / "api-keys").write_text(f"alice {ALICE}\nbob {BOB}\n")
    proxy_port = free_port()
    env = {
        "SPAWN_OPENCODE": "true",
        "OPENCODE_API_URL": fake_llm.url,  # type: ignore[attr-defined]
        "OPENCODE_API_KEY": "sk-provider-key",
        "OPENCODE_MODEL_NAME": "fake-model",
        "WORKSPACE_DIR": str(root / "workspace"),
        "OPENCODE_STATE_DIR": str(root / "state"),
        "MCP_API_KEYS_FILE": str(root / "api-keys"),
        "LLM_PROXY_PORT": str(proxy_port),
        "SANDBOX": "caller",
        "SANDBOX_RUNTIME": "kubernetes",
        "KUBECONFIG": str(kube.kubeconfig(root / "kubeconfig")),
        "SANDBOX_KUBE_NAMESPACE": NAMESPACE,
        "SANDBOX_KUBE_PREFIX": "gw",
        "SANDBOX_KUBE_IMAGE": "registry.example.com/opencode/opencode-mcp-gateway:test",
        "SANDBOX_KUBE_LLM_PROXY_URL": f"http://127.0.0.1:{proxy_port}/v1",
    }
    (root / "workspace").mkdir()
    gw = Gateway(root, env).start(timeout=60)
    yield gw
    gw.stop()


def session(gw: Gateway, key: str):  # type: ignore[no-untyped-def]
    return mcp_session(gw.mcp_url, headers={"Authorization": f"Bearer {key}"})


def sandbox_of(kube: KubeAPI, file: str) -> list[str]:
    """The claims whose workspace holds `file`."""
    return [
        claim
        for claim in kube.names("persistentvolumeclaims")
        if (kube.volume_dir(claim) / "workspace" / file).exists()
    ]


async def test_each_callers_tasks_run_in_a_pod_of_their_own(gateway: Gateway, kube: KubeAPI) -> None:
    write = {"tool": "write", "args": {"filePath": "alice-notes.txt", "content": "alice's plan"}}
    async with session(gateway, ALICE) as alice:
        done = data(await alice.call_tool("run_coding_task", {"prompt": script(write, {"text": "done"})}))
        assert done["status"] == "completed"
    async with session(gateway, BOB) as bob:
        probe = {"tool": "bash", "args": {"command": "ls; echo bob > bob.txt", "description": "look"}}
        assert (
            data(await bob.call_tool("run_coding_task", {"prompt": script(probe, {"text": "done"})}))["status"]
            == "completed"
        )

    pods = [kube.get("pods", name) for name in kube.names("pods")]
    owners = {p["metadata"]["labels"].get("opencode-mcp-gateway/owner") for p in pods if p}
    assert len(pods) == 2 and len(owners) == 2  # one pod per caller
    assert len(sandbox_of(kube, "alice-notes.txt")) == 1 and len(sandbox_of(kube, "bob.txt")) == 1
    assert sandbox_of(kube, "alice-notes.txt") != sandbox_of(kube, "bob.txt")  # bob's agent worked elsewhere

    async with session(gateway, ALICE) as alice:  # her task stays hers, readable through her sandbox
        assert data(await alice.call_tool("get_task_status", {"task_id": done["task_id"]}))["status"] == "completed"


async def test_workspaces_are_refused_with_a_clear_error(gateway: Gateway) -> None:
    async with session(gateway, ALICE) as alice:
        result = await alice.call_tool("run_coding_task", {"prompt": "x", "isolate": True, "directory": "."})
    assert result.is_error and WORKSPACES_UNSUPPORTED in error_text(result)
