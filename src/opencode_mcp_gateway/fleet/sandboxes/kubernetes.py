"""The `kubernetes` sandbox runtime: each sandbox a pod the gateway creates through the
Kubernetes API (lightkube), in its own namespace, under the chart's least-privilege Role.

Kubernetes is the registry and the scheduler: a sandbox is found by its name (pod and claim
`<prefix>-<sandbox>`) and its labels, never in a store of ours. Two replicas starting the
same sandbox both create its objects; the second create of each gets 409 AlreadyExists and
uses the first, so they end with one pod. `ensure` returns once OpenCode answers GET
/global/health at the pod's address. `stop` deletes the pod (and its credentials' Secret)
and keeps the claim; `remove` deletes all three. Manifests: kube_objects.py.

The gateway's Role allows exactly what is called here: pods get/list/create/delete, claims
get/list/create/delete, Secrets create/delete (never read).
"""

from __future__ import annotations

import logging
from typing import Any, TypeVar

import anyio
import httpx2
from lightkube import ApiError, AsyncClient, ConfigError, KubeConfig
from lightkube.core.resource import NamespacedResource
from lightkube.resources.core_v1 import PersistentVolumeClaim, Pod, Secret

from .kube_objects import (
    CREDENTIALS,
    LABEL,
    PORT,
    USERNAME,
    PodTemplate,
    claim_manifest,
    credentials_digest,
    object_name,
    pod_manifest,
    secret_manifest,
    secret_name,
    selector,
)
from .runtime import SandboxEndpoint, SandboxError, SandboxSpec

log = logging.getLogger(__name__)

R = TypeVar("R", bound=NamespacedResource)
# A container waiting for one of these will not start without someone changing something.
_HOPELESS = {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "CrashLoopBackOff", "RunContainerError"}

# The tool error the task layer gives under this runtime for `directory`, `isolate` or
# `repository` (the lead wires it): the gateway prepares those on its own volume, which a
# sandbox pod does not mount, and the git credentials must stay out of every sandbox.
WORKSPACES_UNSUPPORTED = (
    "directory, isolate and repository are not available with SANDBOX_RUNTIME=kubernetes: each caller's "
    "agent works in its sandbox's own volume. Leave them out, or ask the operator for SANDBOX_RUNTIME=local "
    "or SANDBOX=off"
)


class KubernetesRuntime:
    kind = "kubernetes"

    def __init__(
        self,
        template: PodTemplate,
        *,
        prefix: str,
        namespace: str | None = None,
        client: AsyncClient | None = None,
        start_timeout: float = 300.0,
        poll_seconds: float = 0.25,
    ) -> None:
        """`namespace` None: the pod's own (in-cluster config). `client`: injected for tests
        (else made on first use from the in-cluster config or KUBECONFIG). `start_timeout`
        bounds `ensure` (an image pull or a scale-up of the cluster may take minutes)."""
        self.template = template
        self.prefix = prefix
        self._namespace = namespace
        self._client = client
        self._start_timeout = start_timeout
        self._poll = poll_seconds

    def problem(self) -> str | None:
        if not self.template.image:
            return "SANDBOX_KUBE_IMAGE: the image of the sandbox pods is required with SANDBOX_RUNTIME=kubernetes"
        if not self.template.llm_proxy_url:
            return "SANDBOX_KUBE_LLM_PROXY_URL: how a sandbox pod reaches the gateway's LLM proxy is required"
        if self._client is None:
            try:
                KubeConfig.from_env()
            except ConfigError as exc:
                return (
                    f"SANDBOX_RUNTIME=kubernetes: no Kubernetes API here ({exc}); run the gateway in a pod with "
                    "the chart's sandbox.scope, or choose SANDBOX_RUNTIME=local or SANDBOX=off"
                )
        return None

    @property
    def client(self) -> AsyncClient:
        if self._client is None:
            self._client = AsyncClient(namespace=self._namespace, field_manager="opencode-mcp-gateway")
        return self._client

    # The contract ------------------------------------------------------------------------
    async def ensure(self, spec: SandboxSpec) -> SandboxEndpoint:
        name = object_name(self.prefix, spec.name)
        digest = credentials_digest(spec)
        seen = "not created yet"
        with anyio.move_on_after(self._start_timeout):
            while True:
                pod = await self._get(Pod, name)
                if pod is None:
                    await self._create(spec)
                    continue
                if _gone_or_going(pod) or _annotation(pod, CREDENTIALS) != digest:
                    # Stopping, finished, or started with other credentials: replace it.
                    if pod.metadata and not pod.metadata.deletionTimestamp:
                        await self._delete(Pod, name)
                    seen = "replacing a stopping pod"
                else:
                    seen = await self._check_starting(pod, spec)
                    ip = pod.status.podIP if pod.status else None
                    if ip and await self._healthy(_url(ip), spec.opencode_password):
                        log.info("sandbox %s: running at %s", spec.name, ip)
                        return SandboxEndpoint(name=spec.name, url=_url(ip))
                await anyio.sleep(self._poll)
        raise SandboxError(f"sandbox {spec.name}: not answering after {self._start_timeout:.0f} s ({seen})")

    async def stop(self, name: str) -> None:
        pod = await self._get(Pod, object_name(self.prefix, name))
        await self._delete(Pod, object_name(self.prefix, name))
        digest = _annotation(pod, CREDENTIALS) if pod else None
        if digest:  # a stopped sandbox holds no credentials
            await self._delete(Secret, secret_name(self.prefix, name, digest))

    async def remove(self, name: str) -> None:
        await self.stop(name)
        # Collects the Secrets it owns too, those a crash between two calls left behind included.
        await self._delete(PersistentVolumeClaim, object_name(self.prefix, name))

    async def states(self) -> dict[str, str]:
        found: dict[str, str] = {}
        for claim in await self._list(PersistentVolumeClaim):
            name = _sandbox_of(claim)
            if name and not (claim.metadata and claim.metadata.deletionTimestamp):
                found[name] = "stopped"
        for pod in await self._list(Pod):
            name = _sandbox_of(pod)
            if not name:
                continue
            if _gone_or_going(pod):
                found.setdefault(name, "stopped")
            else:
                running = pod.status is not None and pod.status.phase == "Running" and bool(pod.status.podIP)
                found[name] = "running" if running else "starting"
        return found

    # Steps -------------------------------------------------------------------------------
    async def _create(self, spec: SandboxSpec) -> None:
        """The claim, the Secret (owned by the claim), then the pod; each create that finds
        its object already there (another replica, an earlier start) uses that one."""
        name = object_name(self.prefix, spec.name)
        claim = await self._create_or_get(PersistentVolumeClaim, claim_manifest(self.prefix, spec, self.template))
        uid = claim.metadata.uid if claim.metadata else None
        if not uid or (claim.metadata and claim.metadata.deletionTimestamp):
            # Being removed (a pod on it would never start) or gone between two calls: wait, start anew.
            log.info("sandbox %s: its claim is being deleted; waiting", spec.name)
            await anyio.sleep(self._poll)
            return
        await self._create_or_get(Secret, secret_manifest(self.prefix, spec, uid), read=False)
        await self._create_or_get(Pod, pod_manifest(self.prefix, spec, self.template), read=False)
        log.info("sandbox %s: pod %s created", spec.name, name)

    async def _check_starting(self, pod: Pod, spec: SandboxSpec) -> str:
        """What the pod is waiting for; raises SandboxError when it cannot start by itself."""
        status = pod.status
        for cs in (status.containerStatuses or []) if status else []:
            waiting = cs.state.waiting if cs.state else None
            if waiting is None:
                continue
            if waiting.reason == "CreateContainerConfigError":
                # Its Secret went missing (a stop of another replica raced this start): write it again.
                if uid := await self._claim_uid(spec):
                    await self._create_or_get(Secret, secret_manifest(self.prefix, spec, uid), read=False)
            elif waiting.reason in _HOPELESS:
                raise SandboxError(f"sandbox {spec.name}: its pod cannot start ({waiting.reason}: {waiting.message})")
            return f"container waiting: {waiting.reason}"
        for condition in (status.conditions or []) if status else []:
            if condition.status == "False" and condition.reason:
                return f"{condition.type}: {condition.reason} {condition.message or ''}".strip()
        return f"pod {status.phase if status else 'Pending'}"

    async def _claim_uid(self, spec: SandboxSpec) -> str:
        claim = await self._get(PersistentVolumeClaim, object_name(self.prefix, spec.name))
        return (claim.metadata.uid if claim and claim.metadata else None) or ""

    async def _healthy(self, url: str, password: str) -> bool:
        # A short timeout per try: OpenCode accepts connections before it can answer them, and
        # a request sent then hangs (the reference's startup race).
        try:
            async with httpx2.AsyncClient(auth=(USERNAME, password), timeout=0.5) as http:
                return (await http.get(f"{url}/global/health")).status_code == 200
        except httpx2.HTTPError:
            return False

    # The API, its errors as SandboxError --------------------------------------------------
    async def _get(self, kind: type[R], name: str) -> R | None:
        try:
            return await self.client.get(kind, name, namespace=self._namespace)
        except ApiError as exc:
            if exc.status.code == 404:
                return None
            raise _failed("read", kind, name, exc) from None
        except httpx2.HTTPError as exc:
            raise _unreachable(exc) from None

    async def _list(self, kind: type[R]) -> list[R]:
        try:
            labels: dict[str, Any] = dict(selector(self.prefix))
            return [item async for item in self.client.list(kind, namespace=self._namespace, labels=labels)]
        except ApiError as exc:
            raise _failed("list", kind, "", exc) from None
        except httpx2.HTTPError as exc:
            raise _unreachable(exc) from None

    async def _create_or_get(self, kind: type[R], manifest: dict[str, Any], *, read: bool = True) -> R:
        name = manifest["metadata"]["name"]
        if self._namespace:
            manifest["metadata"]["namespace"] = self._namespace
        obj: R = kind.from_dict(manifest)  # type: ignore[attr-defined]
        try:
            return await self.client.create(obj)
        except ApiError as exc:
            if exc.status.code != 409:
                raise _failed("create", kind, name, exc) from None
        except httpx2.HTTPError as exc:
            raise _unreachable(exc) from None
        found = await self._get(kind, name) if read else None
        return found if found is not None else obj

    async def _delete(self, kind: type[R], name: str) -> None:
        try:
            await self.client.delete(kind, name, namespace=self._namespace)
        except ApiError as exc:
            if exc.status.code != 404:
                raise _failed("delete", kind, name, exc) from None
        except httpx2.HTTPError as exc:
            raise _unreachable(exc) from None


def _url(ip: str) -> str:
    return f"http://[{ip}]:{PORT}" if ":" in ip else f"http://{ip}:{PORT}"


def _sandbox_of(obj: Pod | PersistentVolumeClaim) -> str | None:
    return (obj.metadata.labels or {}).get(LABEL + "sandbox") if obj.metadata else None


def _annotation(pod: Pod, key: str) -> str | None:
    return (pod.metadata.annotations or {}).get(key) if pod.metadata else None


def _gone_or_going(pod: Pod) -> bool:
    deleting = bool(pod.metadata and pod.metadata.deletionTimestamp)
    return deleting or (pod.status is not None and pod.status.phase in ("Succeeded", "Failed"))


def _failed(verb: str, kind: type[Any], name: str, exc: ApiError) -> SandboxError:
    what = f"{kind.__name__} {name}".strip()
    if exc.status.code == 403:
        return SandboxError(
            f"Kubernetes API: may not {verb} {what}: bind the gateway's service account to the chart's Role"
        )
    return SandboxError(f"Kubernetes API: cannot {verb} {what}: {exc.status.code} {exc.status.message}")


def _unreachable(exc: httpx2.HTTPError) -> SandboxError:
    return SandboxError(f"Kubernetes API unreachable: {type(exc).__name__}")
