"""The `kubernetes` sandbox runtime against the Kubernetes API simulation (tests/support/kube_api.py):
every object it creates is validated against Kubernetes 1.33 and every request is checked
against the chart's own Role; each pod it creates runs the real `opencode serve` at an
address of its own, reaching the model through the gateway's LLM proxy with the token of its
Secret. So a task truly runs through the runtime's code. What the simulation cannot show
(scheduling, NetworkPolicy enforcement, SCC admission, PVC binding) is said in its docstring."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from lightkube import AsyncClient, KubeConfig

from opencode_mcp_gateway.config import load_settings
from opencode_mcp_gateway.fleet.sandboxes.kube_objects import PodTemplate, claim_manifest, pod_manifest
from opencode_mcp_gateway.fleet.sandboxes.kube_settings import kubernetes_runtime
from opencode_mcp_gateway.fleet.sandboxes.kubernetes import KubernetesRuntime
from opencode_mcp_gateway.fleet.sandboxes.runtime import SandboxEndpoint, SandboxError, SandboxSpec
from opencode_mcp_gateway.opencode.llm_proxy import LLMProxy
from tests.chart.test_chart import EXAMPLE, by_kind, render
from tests.support.fake_llm import FakeLLM
from tests.support.kube_api import KubeAPI

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

NAMESPACE = "sandboxes"
PREFIX = "gw"
TOKEN = "llm-token-for-alice-sandbox-0123456789"


def chart_role_rules() -> list[dict[str, Any]]:
    docs = render({**EXAMPLE, "sandbox.scope": "caller"})
    return by_kind(docs, "Role")["rules"]  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeAPI]:
    api = KubeAPI(tmp_path_factory.mktemp("kube"), chart_role_rules(), namespace=NAMESPACE)
    yield api
    api.stop()
    assert api.invalid == [], "every object the runtime created must validate against Kubernetes 1.33"
    assert api.denied == [], "the runtime must need nothing beyond the chart's Role"


@pytest.fixture(scope="module")
def proxy(fake_llm: FakeLLM) -> Iterator[LLMProxy]:
    """The gateway's LLM proxy, accepting the sandboxes' token only (their Secrets carry it). Its
    own thread and loop: the pods outlive each test, and keep their connections to it."""
    llm = LLMProxy(fake_llm.url, "sk-provider", token=TOKEN)  # type: ignore[attr-defined]
    thread = threading.Thread(target=anyio.run, args=(llm.serve,), daemon=True)
    thread.start()
    yield llm
    assert llm._server is not None
    llm._server.should_exit = True
    thread.join(30)


def runtime(kube: KubeAPI, proxy: LLMProxy) -> KubernetesRuntime:
    """One gateway replica's runtime, made by the factory the gateway uses, from its settings."""
    settings = load_settings(
        _env_file=None,
        opencode_model_name="fake-model",
        permission_policy="allow",
        sandbox_kube_image="registry.example.com/opencode/opencode-mcp-gateway:test",
        sandbox_kube_llm_proxy_url=proxy.base_url,
        sandbox_kube_namespace=NAMESPACE,
        sandbox_kube_prefix=PREFIX,
        sandbox_kube_runtime_class="gvisor",
        sandbox_kube_resources=json.dumps(
            {"requests": {"cpu": "100m", "memory": "512Mi"}, "limits": {"memory": "2Gi"}}
        ),
        sandbox_kube_storage_size="1Gi",
        sandbox_kube_start_seconds=120,
    )
    client = AsyncClient(KubeConfig.from_dict(kube.config()), namespace=NAMESPACE)
    return kubernetes_runtime(settings, client)


PASSWORD = "oc-password-of-this-sandbox"


def spec(name: str, scope: str = "caller", password: str = PASSWORD) -> SandboxSpec:
    return SandboxSpec(
        name=name,
        scope=scope,  # type: ignore[arg-type]
        owner_hash="9f86d081884c7d659a2feaa0c55ad015",
        opencode_password=password,
        llm_token=TOKEN,
    )


async def run_task(endpoint: SandboxEndpoint, password: str, prompt: str) -> dict[str, Any]:
    async with httpx2.AsyncClient(base_url=endpoint.url, auth=("opencode", password), timeout=90) as http:
        session = (await http.post("/session", json={})).json()
        reply = await http.post(f"/session/{session['id']}/message", json={"parts": [{"type": "text", "text": prompt}]})
        return {"session": session["id"], "reply": reply.json()}


def write_file(path: str, content: str) -> str:
    steps = [{"tool": "write", "args": {"filePath": path, "content": content}}, {"text": "written"}]
    return "FAKE_SCRIPT: " + json.dumps(steps)


async def test_a_task_runs_in_a_sandbox_pod_of_its_own(kube: KubeAPI, proxy: LLMProxy) -> None:
    sandbox = spec("c-alice")
    endpoint = await runtime(kube, proxy).ensure(sandbox)

    pod = kube.get("pods", "gw-c-alice")
    assert pod is not None and endpoint.url == f"http://{pod['status']['podIP']}:4096"
    assert not endpoint.url.startswith("http://127.0.0.1:")  # its own address, not the gateway's loopback
    done = await run_task(endpoint, sandbox.opencode_password, write_file("notes.txt", "alice's plan"))
    assert done["reply"]["info"].get("error") is None, done["reply"]["info"]
    # The agent wrote into the sandbox's own claim, and the model was reached through the proxy.
    assert (kube.volume_dir("gw-c-alice") / "workspace" / "notes.txt").read_text() == "alice's plan"
    async with httpx2.AsyncClient() as http:
        assert (await http.get(f"{endpoint.url}/global/health")).status_code == 401  # only with its password
    # The credentials are in the Secret, never in the pod spec.
    assert "oc-password-of-this-sandbox" not in json.dumps(pod) and TOKEN not in json.dumps(pod)
    assert await runtime(kube, proxy).states() == {"c-alice": "running"}


async def test_two_replicas_ensuring_one_sandbox_at_once_end_with_one_pod(kube: KubeAPI, proxy: LLMProxy) -> None:
    sandbox = spec("c-race")
    found: list[SandboxEndpoint] = []

    async def replica() -> None:
        found.append(await runtime(kube, proxy).ensure(sandbox))

    async with anyio.create_task_group() as tg:
        tg.start_soon(replica)
        tg.start_soon(replica)

    assert found[0] == found[1]
    pods = [o for o in kube.created if o["kind"] == "Pod" and o["metadata"]["name"] == "gw-c-race"]
    assert len(pods) == 1
    assert kube.started.count("gw-c-race") == 1  # one OpenCode, not one per replica


async def test_stop_keeps_the_claim_and_the_next_ensure_has_the_sessions_and_files(
    kube: KubeAPI, proxy: LLMProxy
) -> None:
    rt, sandbox = runtime(kube, proxy), spec("c-bob")
    first = await rt.ensure(sandbox)
    done = await run_task(first, sandbox.opencode_password, write_file("kept.txt", "survives"))
    first_uid = kube.get("pods", "gw-c-bob")["metadata"]["uid"]  # type: ignore[index]
    secret = next(o["metadata"]["name"] for o in kube.created if o["kind"] == "Secret" and "c-bob" in str(o))

    await rt.stop("c-bob")
    kube.wait_gone("pods", "gw-c-bob")
    assert kube.get("persistentvolumeclaims", "gw-c-bob") is not None
    assert kube.get("secrets", secret) is None  # a stopped sandbox holds no credentials
    assert (await rt.states())["c-bob"] == "stopped"

    second = await rt.ensure(sandbox)
    assert kube.get("pods", "gw-c-bob")["metadata"]["uid"] != first_uid  # type: ignore[index]
    async with httpx2.AsyncClient(base_url=second.url, auth=("opencode", sandbox.opencode_password)) as http:
        sessions = (await http.get("/session")).json()
    assert done["session"] in [s["id"] for s in sessions]
    assert (kube.volume_dir("gw-c-bob") / "workspace" / "kept.txt").read_text() == "survives"


async def test_remove_deletes_pod_claim_and_secret(kube: KubeAPI, proxy: LLMProxy) -> None:
    rt = runtime(kube, proxy)
    await rt.ensure(spec("t-done", scope="task"))
    await rt.remove("t-done")
    kube.wait_gone("pods", "gw-t-done")
    kube.wait_gone("persistentvolumeclaims", "gw-t-done")
    assert [n for n in kube.names("secrets") if "t-done" in n] == []
    assert "t-done" not in await rt.states()


async def test_new_credentials_replace_the_pod_but_keep_its_data(kube: KubeAPI, proxy: LLMProxy) -> None:
    rt = runtime(kube, proxy)
    await rt.ensure(spec("c-carol", password="first-password-0123456789"))
    old_uid = kube.get("pods", "gw-c-carol")["metadata"]["uid"]  # type: ignore[index]
    endpoint = await rt.ensure(spec("c-carol", password="second-password-0123456789"))
    assert kube.get("pods", "gw-c-carol")["metadata"]["uid"] != old_uid  # type: ignore[index]
    async with httpx2.AsyncClient(auth=("opencode", "second-password-0123456789")) as http:
        assert (await http.get(f"{endpoint.url}/global/health")).status_code == 200


async def test_the_simulation_refuses_what_a_cluster_would(kube: KubeAPI) -> None:
    """The checks above can fail: a pod with a field Kubernetes 1.33 does not know is invalid,
    and reading a Secret is not in the chart's Role."""
    container = {"name": "c", "image": "i", "privileged": True}  # privileged belongs in securityContext
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}, "spec": {"containers": [container]}}
    async with httpx2.AsyncClient(base_url=f"{kube.url}/api/v1/namespaces/{NAMESPACE}") as http:
        assert (await http.post("/pods", json=pod)).status_code == 422
        assert (await http.get("/secrets/anything")).status_code == 403
    assert kube.invalid and kube.denied == ["get secrets"]
    kube.invalid.clear()
    kube.denied.clear()


async def test_an_image_that_cannot_start_is_a_clear_error(kube: KubeAPI, proxy: LLMProxy) -> None:
    rt = runtime(kube, proxy)
    rt.template = PodTemplate(**{**rt.template.__dict__, "image": "registry.example.com/missing:1"})
    kube.missing_images.add("registry.example.com/missing:1")
    with pytest.raises(SandboxError, match="ImagePullBackOff"):
        await rt.ensure(spec("c-dave"))
    await rt.remove("c-dave")


async def test_a_role_without_a_right_and_an_unreachable_api_are_clear_errors(tmp_path: Path, proxy: LLMProxy) -> None:
    no_pods = [r for r in chart_role_rules() if "pods" not in r["resources"]]
    narrow = KubeAPI(tmp_path, no_pods, namespace=NAMESPACE)
    try:
        with pytest.raises(
            SandboxError, match="may not read Pod gw-c-erin: bind the gateway's service account to the chart's Role"
        ):
            await runtime(narrow, proxy).ensure(spec("c-erin"))
    finally:
        narrow.stop()
    with pytest.raises(SandboxError, match="Kubernetes API unreachable"):
        await runtime(narrow, proxy).ensure(spec("c-erin"))


async def test_a_pod_whose_secret_went_missing_gets_it_again(kube: KubeAPI, proxy: LLMProxy) -> None:
    """Another replica's stop deleted the Secret just as this one started the pod: the pod waits
    in CreateContainerConfigError until `ensure` writes the Secret again."""
    rt, sandbox = runtime(kube, proxy), spec("c-frank")
    claim = claim_manifest(PREFIX, sandbox, rt.template)
    assert kube.create("persistentvolumeclaims", claim)[0] == 201
    assert kube.create("pods", pod_manifest(PREFIX, sandbox, rt.template))[0] == 201  # and no Secret
    while not (pod := kube.get("pods", "gw-c-frank") or {}).get("status", {}).get("containerStatuses"):
        await anyio.sleep(0.05)
    assert pod["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "CreateContainerConfigError"
    endpoint = await rt.ensure(sandbox)
    async with httpx2.AsyncClient(auth=("opencode", PASSWORD)) as http:
        assert (await http.get(f"{endpoint.url}/global/health")).status_code == 200
    await rt.remove("c-frank")
