"""The `kubernetes` runtime as the settings describe it (SANDBOX_KUBE_*, config/_kube_sandbox.py):
the one call the runtime factory makes for SANDBOX_RUNTIME=kubernetes."""

from __future__ import annotations

import json

from lightkube import AsyncClient

from ...config import Settings
from ...opencode.setup import opencode_config
from .kube_objects import PodTemplate
from .kubernetes import KubernetesRuntime


def kubernetes_runtime(settings: Settings, client: AsyncClient | None = None) -> KubernetesRuntime:
    """Each sandbox pod gets the OpenCode configuration spawn mode gives its own OpenCode
    (the model through the LLM proxy, the permission policy, prices). `client`: the tests'
    (else the in-cluster configuration, or KUBECONFIG)."""
    template = PodTemplate(
        image=settings.sandbox_kube_image,
        image_pull_policy=settings.sandbox_kube_image_pull_policy,
        llm_proxy_url=settings.sandbox_kube_llm_proxy_url,
        opencode_env={
            "OPENCODE_CONFIG_CONTENT": json.dumps(opencode_config(settings)),
            "OPENCODE_MODEL_NAME": settings.opencode_model_name or "",
        },
        runtime_class=settings.sandbox_kube_runtime_class,
        resources=settings.sandbox_kube_resources_map,
        storage_size=settings.sandbox_kube_storage_size,
        storage_class=settings.sandbox_kube_storage_class,
    )
    return KubernetesRuntime(
        template,
        prefix=settings.sandbox_kube_prefix,
        namespace=settings.sandbox_kube_namespace,
        client=client,
        start_timeout=settings.sandbox_kube_start_seconds,
    )
