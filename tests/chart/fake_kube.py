"""Just enough of a Kubernetes API server for `helm template --dry-run=server`: discovery
of the kinds the chart renders, and GET of the Secrets a test puts in `secrets`, so that
the chart's `lookup` sees what an earlier install left behind."""

from __future__ import annotations

import base64
import json
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.support.fake_llm import JSONHandler

RESOURCES = {
    "v1": [
        ("secrets", "Secret"),
        ("services", "Service"),
        ("serviceaccounts", "ServiceAccount"),
        ("persistentvolumeclaims", "PersistentVolumeClaim"),
    ],
    "apps/v1": [("deployments", "Deployment"), ("statefulsets", "StatefulSet")],
    "networking.k8s.io/v1": [("networkpolicies", "NetworkPolicy"), ("ingresses", "Ingress")],
    "policy/v1": [("poddisruptionbudgets", "PodDisruptionBudget")],
    "route.openshift.io/v1": [("routes", "Route")],
}


class FakeKube:
    def __init__(self) -> None:
        self.secrets: dict[tuple[str, str], dict[str, Any]] = {}  # (namespace, name) -> Secret
        fake = self

        class Handler(_Handler):
            kube = fake

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def kubeconfig(self, path: Path) -> Path:
        server = f"http://127.0.0.1:{self.server.server_address[1]}"
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "fake", "cluster": {"server": server}}],
                    "users": [{"name": "u", "user": {"token": "x"}}],
                    "contexts": [{"name": "c", "context": {"cluster": "fake", "user": "u"}}],
                    "current-context": "c",
                }
            )
        )
        return path

    def keep_release_secret(self, name: str, values: dict[str, str], namespace: str = "opencode") -> None:
        """A Secret as release `gw`'s earlier install left it, holding `values`."""
        self.secrets[(namespace, name)] = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": {"app.kubernetes.io/managed-by": "Helm"},
                "annotations": {"meta.helm.sh/release-name": "gw", "meta.helm.sh/release-namespace": namespace},
            },
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in values.items()},
        }

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _Handler(JSONHandler):
    kube: FakeKube

    def do_GET(self) -> None:
        path = self.path.split("?")[0].rstrip("/")
        groups = [gv for gv in RESOURCES if "/" in gv]
        if path == "/version":
            self._json(200, {"major": "1", "minor": "33", "gitVersion": "v1.33.0"})
        elif path == "/api":
            self._json(200, {"kind": "APIVersions", "versions": ["v1"]})
        elif path == "/apis":
            listed = [
                {"name": gv.split("/")[0], "versions": [{"groupVersion": gv, "version": gv.split("/")[1]}]}
                for gv in groups
            ]
            self._json(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": listed})
        elif (gv := path.removeprefix("/api/").removeprefix("/apis/")) in RESOURCES and path != "/" + gv:
            resources = [
                {"name": name, "singularName": kind.lower(), "namespaced": True, "kind": kind, "verbs": ["get", "list"]}
                for name, kind in RESOURCES[gv]
            ]
            self._json(200, {"kind": "APIResourceList", "groupVersion": gv, "resources": resources})
        elif (parts := path.split("/"))[:3] == ["", "api", "v1"] and len(parts) == 7 and parts[5] == "secrets":
            secret = self.kube.secrets.get((parts[4], parts[6]))
            self._json(200, secret) if secret else self._not_found()
        else:
            self._not_found()

    def _not_found(self) -> None:
        self._json(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404})
