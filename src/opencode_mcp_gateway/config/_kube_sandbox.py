"""Settings of the `kubernetes` sandbox runtime (fleet/sandboxes/kubernetes.py): what every
sandbox pod is made of. The chart sets them all from its `sandbox.*` values; they matter only
with SANDBOX_RUNTIME=kubernetes, whose start-up check says which one is missing."""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

_DNS_LABEL = r"^[a-z0-9]([-a-z0-9]{0,40}[a-z0-9])?$"


class KubeSandboxSettings(BaseModel):
    sandbox_kube_namespace: str | None = None  # blank: the gateway pod's own
    # Names the sandboxes' pods, claims and Secrets (`<prefix>-<sandbox>`) and labels them; the
    # chart's NetworkPolicy selects that label. The chart: the release's full name.
    sandbox_kube_prefix: str = Field("opencode-sandbox", pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
    sandbox_kube_image: str = ""
    sandbox_kube_image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    sandbox_kube_llm_proxy_url: str = ""  # the gateways' LLM proxy as a sandbox pod reaches it
    sandbox_kube_runtime_class: str | None = Field(None, pattern=_DNS_LABEL)
    sandbox_kube_resources: str = ""  # JSON: {"requests": {...}, "limits": {...}}
    sandbox_kube_storage_size: str = Field("5Gi", pattern=r"^[0-9]+(\.[0-9]+)?([KMGTPE]i?|[mk])?$")
    sandbox_kube_storage_class: str | None = None
    sandbox_kube_start_seconds: float = Field(300.0, gt=0, le=3600)

    @field_validator("sandbox_kube_resources")
    @classmethod
    def _resources(cls, value: str) -> str:
        if value.strip():
            parsed = _json_object(value)
            if not set(parsed) <= {"requests", "limits", "claims"}:
                raise ValueError('must be JSON such as {"requests": {"cpu": "100m"}, "limits": {"memory": "2Gi"}}')
        return value

    @field_validator("sandbox_kube_llm_proxy_url")
    @classmethod
    def _proxy_url(cls, value: str) -> str:
        if value and not re.match(r"^https?://[^/@\s]+(/\S*)?$", value):
            raise ValueError("must be an http(s) URL without credentials, such as http://gw-llm.ns.svc:4097/v1")
        return value.rstrip("/")

    @property
    def sandbox_kube_resources_map(self) -> dict[str, Any]:
        return _json_object(self.sandbox_kube_resources) if self.sandbox_kube_resources.strip() else {}


def _json_object(value: str) -> dict[str, Any]:
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, dict):
        raise ValueError('must be a JSON object such as {"limits": {"memory": "2Gi"}}')
    return parsed
