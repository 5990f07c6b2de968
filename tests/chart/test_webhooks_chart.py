"""The chart's completion webhooks: the signing secret generated in the Standard Webhooks
format, kept across upgrades, given to the gateway's container only (by reference), and the
allow-list, endpoint and retry window as values the gateway accepts."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from standardwebhooks import Webhook

from opencode_mcp_gateway.config import load_settings
from tests.chart.fake_kube import FakeKube
from tests.chart.test_chart import EXAMPLE, by_kind, render
from tests.chart.test_scale_out import NAME
from tests.chart.test_split_pod import chart_secret, containers, started_env

HOOKS = {
    **EXAMPLE,
    "webhooks.urlAllowlist": "https://hooks.example.com/ci/",
    "webhooks.url": "https://bus.example.com/opencode",
    "webhooks.retrySeconds": "600",
}


@pytest.mark.parametrize("kind", ["Deployment", "StatefulSet"])
def test_the_gateway_gets_the_webhook_settings_and_accepts_them(kind: str) -> None:
    docs = render({**HOOKS, "replicaCount": "3" if kind == "StatefulSet" else "1"})
    both = containers(docs, kind)
    env = started_env(docs, both["gateway"], f"{NAME}-0")
    settings = load_settings(_env_file=None, spawn_opencode=False, **env)
    assert settings.webhook_allow_list == ["https://hooks.example.com/ci/"]
    assert settings.webhook_url == "https://bus.example.com/opencode"
    assert settings.webhook_retry_seconds == 600 and settings.webhooks_enabled
    secret = chart_secret(docs)["webhook-secret"]
    assert settings.webhook_secret is not None and settings.webhook_secret.get_secret_value() == secret
    by_ref = {e["name"]: e.get("valueFrom") for e in both["gateway"]["env"]}
    assert by_ref["WEBHOOK_SECRET"] == {"secretKeyRef": {"name": NAME, "key": "webhook-secret", "optional": False}}
    assert not any(e["name"].startswith("WEBHOOK_") for e in both["opencode"]["env"])  # the agent's side


def test_the_generated_secret_is_a_standard_webhooks_key() -> None:
    secret = chart_secret(render(EXAMPLE))["webhook-secret"]
    assert secret.startswith("whsec_") and len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 32
    Webhook(secret)  # the library takes it as it is
    assert chart_secret(render(EXAMPLE))["webhook-secret"] != secret  # random, without a cluster to keep it


def test_a_given_secret_is_used_and_rolls_the_pod_when_changed() -> None:
    def checksum(secret: str) -> str:
        docs = render({**EXAMPLE, "webhooks.secret": secret})
        assert chart_secret(docs)["webhook-secret"] == secret
        return str(by_kind(docs, "Deployment")["spec"]["template"]["metadata"]["annotations"]["checksum/secret"])

    one, two = ("whsec_" + base64.b64encode(bytes([n]) * 32).decode() for n in (1, 2))
    assert checksum(one) != checksum(two)


def test_the_generated_secret_survives_helm_upgrade(tmp_path: Path) -> None:
    """Receivers verify with the secret they were given: an upgrade must not change it."""
    kube = FakeKube()
    try:
        kubeconfig = str(kube.kubeconfig(tmp_path / "kubeconfig"))
        server = ("--dry-run=server", "--disable-openapi-validation", "--kubeconfig", kubeconfig)
        first = by_kind(render(HOOKS, *server), "Secret")["stringData"]
        kube.keep_release_secret(NAME, first)
        upgraded = [by_kind(render(HOOKS, *server), "Secret")["stringData"] for _ in range(2)]
    finally:
        kube.stop()
    assert first["webhook-secret"].startswith("whsec_")
    assert [u["webhook-secret"] for u in upgraded] == [first["webhook-secret"]] * 2


def test_an_existing_secret_may_leave_the_webhook_key_out() -> None:
    values = {k: v for k, v in EXAMPLE.items() if k != "opencode.apiKey"}
    docs = render({**values, "existingSecret": "team-secret"})
    ref = next(e for e in containers(docs, "Deployment")["gateway"]["env"] if e["name"] == "WEBHOOK_SECRET")
    assert ref["valueFrom"]["secretKeyRef"] == {"name": "team-secret", "key": "webhook-secret", "optional": True}
