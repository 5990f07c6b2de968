"""The Kubernetes objects of one sandbox, as plain manifests (the runtime is kubernetes.py).

* A claim (PVC) for its data: OpenCode's state (sessions) and its workspace, so a stopped
  sandbox starts again with both. Every sandbox has one, task-scope too: its task takes
  follow-ups across stops.
* A Secret for its two credentials (OpenCode's server password, its LLM-proxy token), named
  after their digest, so two replicas writing the same credentials write the same object and
  new credentials never overwrite the ones a running pod uses. It is owned by the claim:
  deleting the claim collects every Secret of the sandbox (the gateway may not list Secrets).
* The pod: `opencode serve` alone, listening on the pod's address, its model through the
  gateway's LLM proxy. It passes OpenShift's restricted-v2 SCC (non-root, any UID, no
  privilege escalation, no capabilities, seccomp RuntimeDefault, no host anything), mounts
  no service-account token and gets no service links: the agent learns no address but the
  proxy's. The chart's NetworkPolicy (selecting `selector(prefix)`) admits only the gateway.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ...opencode.setup import OFFLINE_ENV
from .runtime import SandboxSpec

PORT = 4096  # OpenCode's, in every sandbox pod
USERNAME = "opencode"
STATE_DIR = "/var/lib/opencode-gateway"  # the image's OPENCODE_STATE_DIR, on the claim
WORKSPACE = "/workspace"  # the image's WORKDIR, on the claim
LABEL = "opencode-mcp-gateway/"  # the prefix of this gateway's label keys
CREDENTIALS = LABEL + "credentials"  # annotation: the digest of the credentials the pod was started with
PASSWORD_KEY, TOKEN_KEY = "opencode-password", "llm-token"
_LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")

# The liveness probe of every OpenCode container (the chart's and a sandbox's): GET
# /global/health with the password the container already holds in its environment, so the
# pod spec carries no secret. OpenCode answers even its health check only with the password,
# and a hung OpenCode still accepts TCP, so neither a plain httpGet nor tcpSocket would do.
# Standard library only: it runs every period and must start fast.
PROBE_SCRIPT = """\
import base64, os, urllib.request
password = os.environ.get("OPENCODE_SERVER_PASSWORD") or os.environ["OPENCODE_PASSWORD"]
user = os.environ.get("OPENCODE_SERVER_USERNAME") or "opencode"
port = os.environ.get("OPENCODE_PROBE_PORT") or "4096"
auth = base64.b64encode(f"{user}:{password}".encode()).decode()
request = urllib.request.Request(f"http://127.0.0.1:{port}/global/health", headers={"Authorization": "Basic " + auth})
urllib.request.urlopen(request, timeout=4)
"""
PROBE_COMMAND = ["python3", "-c", PROBE_SCRIPT]


@dataclass(frozen=True)
class PodTemplate:
    """What the operator chose for every sandbox (the chart's `sandbox.*` values)."""

    image: str
    llm_proxy_url: str  # the gateway's LLM proxy as a sandbox pod reaches it, e.g. http://gw-llm.ns.svc:4097/v1
    opencode_env: Mapping[str, str] = field(default_factory=dict)  # OPENCODE_CONFIG_CONTENT, OPENCODE_MODEL_NAME
    image_pull_policy: str = "IfNotPresent"
    runtime_class: str | None = None  # gVisor, Kata: a RuntimeClass of the cluster
    resources: Mapping[str, Any] = field(default_factory=dict)  # {"requests": {...}, "limits": {...}}
    storage_size: str = "5Gi"
    storage_class: str | None = None


def object_name(prefix: str, sandbox: str) -> str:
    """The name of a sandbox's pod and claim (its Secret adds the credentials' digest)."""
    return f"{prefix}-{sandbox}"


def selector(prefix: str) -> dict[str, str]:
    """The labels of every sandbox of this gateway (the chart's NetworkPolicy selects them)."""
    return {"app.kubernetes.io/component": "sandbox", LABEL + "release": prefix}


def labels(prefix: str, spec: SandboxSpec) -> dict[str, str]:
    found = {
        **selector(prefix),
        "app.kubernetes.io/name": "opencode-sandbox",
        "app.kubernetes.io/managed-by": "opencode-mcp-gateway",
        LABEL + "sandbox": spec.name,
        LABEL + "scope": spec.scope,
    }
    owner = spec.owner_hash[:63]
    if _LABEL_VALUE.match(owner):
        found[LABEL + "owner"] = owner
    return found


def credentials_digest(spec: SandboxSpec) -> str:
    """Names the credentials without revealing them: both are long random (or keyed) strings."""
    material = f"{spec.opencode_password}\0{spec.llm_token}".encode()
    return hashlib.sha256(material).hexdigest()[:32]


def secret_name(prefix: str, sandbox: str, digest: str) -> str:
    return f"{object_name(prefix, sandbox)}-{digest[:10]}"


def claim_manifest(prefix: str, spec: SandboxSpec, template: PodTemplate) -> dict[str, Any]:
    claim: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": object_name(prefix, spec.name), "labels": labels(prefix, spec)},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": template.storage_size}}},
    }
    if template.storage_class:
        claim["spec"]["storageClassName"] = template.storage_class
    return claim


def secret_manifest(prefix: str, spec: SandboxSpec, claim_uid: str) -> dict[str, Any]:
    name = object_name(prefix, spec.name)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": secret_name(prefix, spec.name, credentials_digest(spec)),
            "labels": labels(prefix, spec),
            # Collected with the claim; no blockOwnerDeletion, which would need more rights.
            "ownerReferences": [{"apiVersion": "v1", "kind": "PersistentVolumeClaim", "name": name, "uid": claim_uid}],
        },
        "stringData": {PASSWORD_KEY: spec.opencode_password, TOKEN_KEY: spec.llm_token},
    }


def _environment(spec: SandboxSpec, template: PodTemplate, secret: str) -> list[dict[str, Any]]:
    plain = {
        "HOME": f"{STATE_DIR}/home",
        "XDG_CONFIG_HOME": f"{STATE_DIR}/config",
        "XDG_DATA_HOME": f"{STATE_DIR}/data",
        "XDG_CACHE_HOME": f"{STATE_DIR}/cache",
        "XDG_STATE_HOME": f"{STATE_DIR}/state",
        **OFFLINE_ENV,
        "OPENCODE_DISABLE_CLAUDE_CODE": "1",
        "OPENCODE_SERVER_USERNAME": USERNAME,
        "LLM_PROXY_URL": template.llm_proxy_url,
        **template.opencode_env,
        **spec.env,
    }
    secrets = {"OPENCODE_SERVER_PASSWORD": PASSWORD_KEY, "LLM_PROXY_TOKEN": TOKEN_KEY}
    env: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in plain.items() if k not in secrets]
    env += [{"name": k, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}} for k, key in secrets.items()]
    return env


def pod_manifest(prefix: str, spec: SandboxSpec, template: PodTemplate) -> dict[str, Any]:
    name = object_name(prefix, spec.name)
    digest = credentials_digest(spec)
    restricted = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}, "runAsNonRoot": True}
    container: dict[str, Any] = {
        "name": "opencode",
        "image": template.image,
        "imagePullPolicy": template.image_pull_policy,
        # tini reaps what the agent's shell leaves behind; 0.0.0.0: the gateway reaches the pod's address.
        "command": ["tini", "--", "opencode", "serve", "--hostname", "0.0.0.0", "--port", str(PORT)],
        "workingDir": WORKSPACE,
        "ports": [{"name": "opencode", "containerPort": PORT, "protocol": "TCP"}],
        "env": _environment(spec, template, secret_name(prefix, spec.name, digest)),
        "resources": dict(template.resources),
        "securityContext": {
            **restricted,
            "readOnlyRootFilesystem": True,  # every path written to is a volume
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "startupProbe": {"exec": {"command": PROBE_COMMAND}, "periodSeconds": 2, "failureThreshold": 60},
        "livenessProbe": {
            "exec": {"command": PROBE_COMMAND},
            "periodSeconds": 20,
            "timeoutSeconds": 5,
            "failureThreshold": 3,
        },
        "volumeMounts": [
            {"name": "data", "mountPath": WORKSPACE, "subPath": "workspace"},
            {"name": "data", "mountPath": STATE_DIR, "subPath": "opencode"},
            {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 (the pod's own, an emptyDir)
        ],
    }
    pod_spec: dict[str, Any] = {
        "hostname": "sandbox",  # names nothing of the caller, and fits 63 characters whatever the pod's name
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "restartPolicy": "Always",
        "terminationGracePeriodSeconds": 10,
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [container],
        "volumes": [
            {"name": "data", "persistentVolumeClaim": {"claimName": name}},
            {"name": "tmp", "emptyDir": {}},
        ],
    }
    if template.runtime_class:
        pod_spec["runtimeClassName"] = template.runtime_class
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels(prefix, spec), "annotations": {CREDENTIALS: digest}},
        "spec": pod_spec,
    }
