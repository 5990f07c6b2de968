"""The chart with several replicas: each pod's own volume, the move from a one-replica release
(its volume becomes worker 0's), shared secrets kept across upgrades, and one replica unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.chart.fake_kube import FakeKube
from tests.chart.test_chart import CHART, EVERYTHING, EXAMPLE, INGRESS, by_kind, helm, render, sets
from tests.chart.test_scale_out import (
    MIGRATING,
    NAME,
    SCALE_OUT_ENV,
    SCALED,
    SCALED_EVERYTHING,
    SCALED_INGRESS,
    env_of,
    gateway,
    pod_of,
)


def test_the_generated_shared_secrets_survive_helm_upgrade(tmp_path: Path) -> None:
    """Every replica, old and new, must keep using one password and one key across upgrades."""
    kube = FakeKube()
    try:
        kubeconfig = str(kube.kubeconfig(tmp_path / "kubeconfig"))
        server = ("--dry-run=server", "--disable-openapi-validation", "--kubeconfig", kubeconfig)
        first = by_kind(render(SCALED, *server), "Secret")["stringData"]
        kube.keep_release_secret(NAME, first)
        upgraded = [render({**SCALED, "replicaCount": str(n)}, *server) for n in (3, 3, 5)]
    finally:
        kube.stop()
    checksums = [pod_of(docs)["metadata"]["annotations"]["checksum/secret"] for docs in upgraded[:2]]
    assert checksums[0] == checksums[1]  # an unchanged upgrade rolls no pod
    for docs in upgraded:
        kept = by_kind(docs, "Secret")["stringData"]
        for key in ("request-state-key", "opencode-server-password", "mcp-bearer-token"):
            assert kept[key] == first[key], key
    assert by_kind(upgraded[2], "StatefulSet")["spec"]["replicas"] == 5
    assert len(env_of(upgraded[2])["GATEWAY_PEERS"]["value"].split(",")) == 5


def test_each_pod_gets_its_own_claim_mounted_where_the_single_pod_had_its_volume() -> None:
    docs = render(SCALED_EVERYTHING)
    sts = by_kind(docs, "StatefulSet")
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "data"
    assert claim["spec"]["resources"]["requests"]["storage"] == "10Gi"
    assert claim["spec"]["storageClassName"] == "fast" and claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert "data" not in {v["name"] for v in pod_of(docs)["spec"]["volumes"]}  # the claim template provides it
    assert sts["spec"]["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}
    mounts = [m for m in gateway(docs)["volumeMounts"] if m["name"] == "data"]
    single = [m for m in gateway(render(EVERYTHING), "Deployment")["volumeMounts"] if m["name"] == "data"]
    assert mounts == single  # same paths and subPaths: worker 0 finds a migrated volume's data
    ephemeral = render(SCALED_INGRESS)
    assert "volumeClaimTemplates" not in by_kind(ephemeral, "StatefulSet")["spec"]
    assert {"name": "data", "emptyDir": {}} in pod_of(ephemeral)["spec"]["volumes"]


def test_a_one_replica_releases_volume_becomes_worker_0s() -> None:
    """StatefulSet pod i uses the claim `<template>-<set>-<i>`; the chart binds pod 0's to the old volume."""
    docs = render({**MIGRATING, "persistence.storageClass": "fast", "persistence.size": "20Gi"})
    sts = by_kind(docs, "StatefulSet")
    template = sts["spec"]["volumeClaimTemplates"][0]
    claim = by_kind(docs, "PersistentVolumeClaim")
    assert claim["metadata"]["name"] == f"{template['metadata']['name']}-{sts['metadata']['name']}-0"
    assert claim["spec"]["volumeName"] == MIGRATING["persistence.worker0VolumeName"]
    for field in ("accessModes", "storageClassName", "resources"):
        assert claim["spec"][field] == template["spec"][field], field
    assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    single = by_kind(render(EVERYTHING), "PersistentVolumeClaim")
    assert single["metadata"]["name"] == NAME  # the claim a one-replica release has, named as before


@pytest.mark.parametrize(
    ("values", "says"),
    [
        ({**SCALED, "persistence.existingClaim": "old"}, "persistence.existingClaim cannot serve 3 replicas"),
        ({**EXAMPLE, "persistence.worker0VolumeName": "pv-1"}, f"persistence.existingClaim=data-{NAME}-0"),
        ({**SCALED, "terminationGracePeriodSeconds": "20"}, "must be at least drainSeconds (10) + 15"),
        ({**SCALED, "workers.maxTasks": "-1"}, "maxTasks"),
        ({**SCALED, "persistence.worker0VolumeName": "Not A Name"}, "worker0VolumeName"),
    ],
)
def test_values_that_cannot_work_are_refused(values: dict[str, str], says: str) -> None:
    result = helm("template", "gw", str(CHART), *sets(values), check=False)
    assert result.returncode != 0 and says in result.stderr, result.stderr


def test_one_replica_renders_the_release_it_always_did() -> None:
    for values in (EXAMPLE, EVERYTHING, INGRESS):
        docs = render(values)
        kinds = [d["kind"] for d in docs]
        assert "StatefulSet" not in kinds and kinds.count("Service") == 1
        deployment = by_kind(docs, "Deployment")
        assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"] == {"type": "Recreate"}
        env = env_of(docs, "Deployment")
        assert not set(SCALE_OUT_ENV) & set(env)
        assert [p["containerPort"] for p in gateway(docs, "Deployment")["ports"]] == [8080]
        assert "4096" not in json.dumps(by_kind(docs, "NetworkPolicy"))
        secret = by_kind(docs, "Secret")["stringData"]
        assert "request-state-key" not in secret
        # Since OpenCode has a container of its own, it and the gateway always share a password:
        # the one given, else one generated (kept across upgrades, see test_split_pod.py).
        given = values.get("opencode.serverPassword")
        assert secret["opencode-server-password"] == given or (
            not given and len(secret["opencode-server-password"]) >= 32
        )


def test_one_pod_template_serves_both_workloads() -> None:
    """Everything a single pod has, each replica has too: only the scale-out parts differ."""
    single, scaled = pod_of(render(EVERYTHING), "Deployment"), pod_of(render(SCALED_EVERYTHING))
    one, many = single["spec"]["containers"][0], scaled["spec"]["containers"][0]
    assert set(one) == set(many)
    for field in ("image", "args", "startupProbe", "livenessProbe", "readinessProbe", "resources", "securityContext"):
        assert one[field] == many[field], field
    differ = ("OPENCODE_PASSWORD", "ALLOWED_HOSTS")  # required, and the pods' own names added
    one_env = [e for e in one["env"] if e["name"] not in differ]
    many_env = [e for e in many["env"] if e["name"] not in (*SCALE_OUT_ENV, *differ)]
    assert one_env == many_env
    one_hosts = next(e["value"] for e in one["env"] if e["name"] == "ALLOWED_HOSTS")
    many_hosts = next(e["value"] for e in many["env"] if e["name"] == "ALLOWED_HOSTS")
    assert many_hosts.startswith(one_hosts + ",")
    assert single["spec"]["securityContext"] == scaled["spec"]["securityContext"]
