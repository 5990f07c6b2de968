"""A Kubernetes API server for the `kubernetes` sandbox runtime's tests, on 127.0.0.1.

It speaks the part of the REST API the runtime uses (create, get, list by label, delete of
pods, PersistentVolumeClaims and Secrets in one namespace; 409 AlreadyExists, 404 NotFound),
and it is strict where a real cluster is:

* every object created is validated against the Kubernetes 1.33 schemas (kubernetes-validate,
  strict: unknown fields fail too); an invalid one is refused with 422 and recorded;
* every request is checked against the RBAC rules it is given (the chart's Role): anything
  else is refused with 403 and recorded;
* a pod runs: its container's command as a real local process (the real `opencode serve`),
  with its environment (Secret references resolved; a missing Secret keeps it waiting in
  CreateContainerConfigError, as the kubelet does), its volumes as directories (a claim's
  outlives the pod), and an address of its own, 127.x.y.N, as its podIP. `0.0.0.0` in its
  command is that address (a pod's network namespace has only its own). Deleting a pod stops
  the process (SIGTERM, then SIGKILL after its grace period) before the pod disappears;
* claims are protected while a pod uses them, and objects owned by a deleted one (its
  ownerReferences) are collected.

What it does not prove: scheduling and resource limits, NetworkPolicy enforcement, SCC and
Pod Security admission, the runtimeClass, PVC binding and storage classes, image pulls, the
pod's read-only root and user, and its probes (the probe script has a test of its own).
"""

from __future__ import annotations

import base64
import copy
import json
import os
import random
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import kubernetes_validate

from tests.support.fake_llm import JSONHandler
from tests.support.procs import opencode_binary
from tests.support.threaded_http import serve, shut

KUBERNETES = "1.33.0"
KINDS = {"pods": "Pod", "persistentvolumeclaims": "PersistentVolumeClaim", "secrets": "Secret"}


class KubeAPI:
    def __init__(self, root: Path, rules: list[dict[str, Any]], namespace: str = "sandboxes") -> None:
        self.root = root
        self.rules = rules
        self.namespace = namespace
        self.lock = threading.RLock()
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}  # (plural, name) -> stored object
        self.created: list[dict[str, Any]] = []  # every object accepted, as sent
        self.conflicts: list[str] = []  # names a create found taken (409)
        self.invalid: list[str] = []  # what failed validation
        self.denied: list[str] = []  # what RBAC refused
        self.processes: dict[str, subprocess.Popen[bytes]] = {}  # pod uid -> its running container
        self.started: list[str] = []  # pod names, once per container start
        self.missing_images: set[str] = set()  # images no registry has: their pods wait in ImagePullBackOff
        net = f"127.{random.randint(100, 199)}.{random.randint(0, 255)}"
        self._addresses = iter(f"{net}.{n}" for n in range(2, 255))
        api = self

        class Handler(_Handler):
            kube = api

        self.server = serve(Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def config(self) -> dict[str, Any]:
        """A kubeconfig for this server (the token is not checked: RBAC is by the rules given)."""
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "sim", "cluster": {"server": self.url}}],
            "users": [{"name": "gateway", "user": {"token": "sim"}}],
            "contexts": [
                {"name": "sim", "context": {"cluster": "sim", "user": "gateway", "namespace": self.namespace}}
            ],
            "current-context": "sim",
        }

    def kubeconfig(self, path: Path) -> Path:
        path.write_text(json.dumps(self.config()))
        return path

    def names(self, plural: str) -> list[str]:
        with self.lock:
            return sorted(name for kind, name in self.objects if kind == plural)

    def get(self, plural: str, name: str) -> dict[str, Any] | None:
        with self.lock:
            found = self.objects.get((plural, name))
            return copy.deepcopy(found) if found else None

    def volume_dir(self, claim: str) -> Path:
        return self.root / "volumes" / claim

    def wait_gone(self, plural: str, name: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while self.get(plural, name) is not None:
            if time.monotonic() > deadline:
                raise AssertionError(f"{plural}/{name} still there after {timeout} s")
            time.sleep(0.05)

    def stop(self) -> None:
        with self.lock:
            pods = [obj for (plural, _), obj in self.objects.items() if plural == "pods"]
        for pod in pods:
            self._stop_container(pod, grace=5)
        shut(self.server)

    # -- RBAC ----------------------------------------------------------------------------
    def allowed(self, verb: str, plural: str) -> bool:
        return any(
            "" in rule.get("apiGroups", []) and plural in rule.get("resources", []) and verb in rule.get("verbs", [])
            for rule in self.rules
        )

    # -- the API ---------------------------------------------------------------------------
    def create(self, plural: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        try:
            kubernetes_validate.validate(body, KUBERNETES, strict=True)
        except kubernetes_validate.ValidationError as exc:
            self.invalid.append(f"{body.get('kind')} {body.get('metadata', {}).get('name')}: {exc.message}")
            return 422, _status(422, "Invalid", exc.message)
        if body.get("kind") != KINDS[plural]:
            self.invalid.append(f"{body.get('kind')} posted to {plural}")
            return 400, _status(400, "BadRequest", "kind does not match the path")
        meta = body["metadata"]
        if meta.get("namespace", self.namespace) != self.namespace:
            return 400, _status(400, "BadRequest", "the namespace of the object does not match the path")
        obj = copy.deepcopy(body)
        with self.lock:
            if (plural, meta["name"]) in self.objects:
                self.conflicts.append(f"{plural}/{meta['name']}")
                return 409, _status(409, "AlreadyExists", f'{plural} "{meta["name"]}" already exists')
            obj["metadata"].update(
                namespace=self.namespace,
                uid=str(uuid.uuid4()),
                resourceVersion=str(len(self.created) + 1),
                creationTimestamp=_now(),
            )
            if plural == "secrets":
                data = obj.setdefault("data", {})
                for key, value in obj.pop("stringData", {}).items():
                    data[key] = base64.b64encode(value.encode()).decode()
            elif plural == "persistentvolumeclaims":
                obj["status"] = {"phase": "Bound"}
                self.volume_dir(meta["name"]).mkdir(parents=True, exist_ok=True)
            elif plural == "pods":
                obj["status"] = {"phase": "Pending"}
            self.objects[(plural, meta["name"])] = obj
            self.created.append(copy.deepcopy(body))
        if plural == "pods":
            threading.Thread(target=self._kubelet, args=(obj,), daemon=True).start()
        return 201, copy.deepcopy(obj)

    def delete(self, plural: str, name: str) -> tuple[int, dict[str, Any]]:
        with self.lock:
            obj = self.objects.get((plural, name))
            if obj is None:
                return 404, _status(404, "NotFound", f'{plural} "{name}" not found')
            if not obj["metadata"].get("deletionTimestamp"):
                obj["metadata"]["deletionTimestamp"] = _now()
            shown = copy.deepcopy(obj)
        if plural == "pods":
            threading.Thread(target=self._terminate, args=(obj,), daemon=True).start()
        else:
            self._collect()
        return 200, shown

    def _remove(self, plural: str, name: str) -> None:
        with self.lock:
            self.objects.pop((plural, name), None)
        self._collect()

    def _collect(self) -> None:
        """Claims no pod uses any more go once deleted; so does whatever a vanished object owned."""
        with self.lock:
            while True:
                claims_in_use = {
                    v["persistentVolumeClaim"]["claimName"]
                    for (plural, _), pod in self.objects.items()
                    if plural == "pods"
                    for v in pod["spec"].get("volumes", [])
                    if "persistentVolumeClaim" in v
                }
                uids = {obj["metadata"]["uid"] for obj in self.objects.values()}
                gone = [
                    key
                    for key, obj in self.objects.items()
                    if (key[0] != "pods" and obj["metadata"].get("deletionTimestamp") and key[1] not in claims_in_use)
                    or any(ref["uid"] not in uids for ref in obj["metadata"].get("ownerReferences", []))
                ]
                if not gone:
                    return
                for key in gone:
                    del self.objects[key]

    # -- the kubelet ---------------------------------------------------------------------------
    def _kubelet(self, pod: dict[str, Any]) -> None:
        """Start the pod's container once its claim and Secrets are there; restart it if it exits."""
        name = pod["metadata"]["name"]
        address = next(self._addresses)
        restarts = 0
        while not pod["metadata"].get("deletionTimestamp"):
            env, waiting = self._environment(pod)
            if pod["spec"]["containers"][0]["image"] in self.missing_images:
                waiting = "ImagePullBackOff"
            if waiting:
                with self.lock:
                    pod["status"]["containerStatuses"] = [
                        _container_status(pod, restarts, {"waiting": {"reason": waiting}})
                    ]
                time.sleep(0.2)
                continue
            proc = self._start_container(pod, address, env)
            with self.lock:
                if pod["metadata"].get("deletionTimestamp"):
                    proc.terminate()
                    break
                self.processes[pod["metadata"]["uid"]] = proc
                pod["status"] = {
                    "phase": "Running",
                    "podIP": address,
                    "podIPs": [{"ip": address}],
                    "containerStatuses": [_container_status(pod, restarts, {"running": {"startedAt": _now()}})],
                }
            self.started.append(name)
            proc.wait()
            restarts += 1
            time.sleep(0.5)

    def _environment(self, pod: dict[str, Any]) -> tuple[dict[str, str], str | None]:
        """The container's environment with its paths on this machine, or why it must wait."""
        (container,) = pod["spec"]["containers"]
        mounts = self._mounts(pod)
        env = {"PATH": os.environ["PATH"]}
        for item in container.get("env", []):
            if "value" in item:
                env[item["name"]] = _on_host(item["value"], mounts)
                continue
            ref = item["valueFrom"]["secretKeyRef"]
            secret = self.get("secrets", ref["name"])
            if secret is None or ref["key"] not in secret.get("data", {}):
                return {}, "CreateContainerConfigError"
            env[item["name"]] = base64.b64decode(secret["data"][ref["key"]]).decode()
        for volume in pod["spec"].get("volumes", []):
            claim = volume.get("persistentVolumeClaim", {}).get("claimName")
            if claim and self.get("persistentvolumeclaims", claim) is None:
                return {}, "ContainerCreating"
        return env, None

    def _mounts(self, pod: dict[str, Any]) -> list[tuple[str, Path]]:
        volumes: dict[str, Path] = {}
        for volume in pod["spec"].get("volumes", []):
            if "persistentVolumeClaim" in volume:
                volumes[volume["name"]] = self.volume_dir(volume["persistentVolumeClaim"]["claimName"])
            else:  # emptyDir: the pod's own
                volumes[volume["name"]] = self.root / "pods" / pod["metadata"]["uid"] / volume["name"]
        (container,) = pod["spec"]["containers"]
        mounts = []
        for mount in container.get("volumeMounts", []):
            host = volumes[mount["name"]] / mount.get("subPath", "")
            host.mkdir(parents=True, exist_ok=True)
            mounts.append((mount["mountPath"], host))
        return sorted(mounts, key=lambda m: -len(m[0]))

    def _start_container(self, pod: dict[str, Any], address: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
        (container,) = pod["spec"]["containers"]
        command = list(container["command"])
        if command[:2] == ["tini", "--"]:
            command = command[2:]  # the image's init; the process is this machine's child here
        if command[0] == "opencode":
            command[0] = opencode_binary()
        command = [address if arg == "0.0.0.0" else arg for arg in command]
        cwd = Path(_on_host(container.get("workingDir", "/"), self._mounts(pod)))
        log = self.root / "logs" / f"{pod['metadata']['name']}-{pod['metadata']['uid'][:8]}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as out:
            return subprocess.Popen(
                command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def _terminate(self, pod: dict[str, Any]) -> None:
        self._stop_container(pod, grace=float(pod["spec"].get("terminationGracePeriodSeconds", 30)))
        self._remove("pods", pod["metadata"]["name"])

    def _stop_container(self, pod: dict[str, Any], grace: float) -> None:
        proc = self.processes.pop(pod["metadata"]["uid"], None)
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _on_host(value: str, mounts: list[tuple[str, Path]]) -> str:
    for path, host in mounts:
        if value == path or value.startswith(path + "/"):
            return str(host) + value[len(path) :]
    return value


def _container_status(pod: dict[str, Any], restarts: int, state: dict[str, Any]) -> dict[str, Any]:
    (container,) = pod["spec"]["containers"]
    return {
        "name": container["name"],
        "image": container["image"],
        "imageID": "",
        "ready": "running" in state,
        "restartCount": restarts,
        "state": state,
    }


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


class _Handler(JSONHandler):
    kube: KubeAPI

    def _route(self, verb_one: str, verb_many: str) -> tuple[str, str | None, str] | None:
        """(plural, name or None, verb) for /api/v1/namespaces/<ns>/<plural>[/<name>], after
        checking the namespace and RBAC; None once an error has been answered."""
        parts = urlsplit(self.path).path.strip("/").split("/")
        if parts[:3] != ["api", "v1", "namespaces"] or len(parts) not in (5, 6) or parts[4] not in KINDS:
            self._json(404, _status(404, "NotFound", f"no such path {self.path}"))
            return None
        if parts[3] != self.kube.namespace:
            self.kube.denied.append(f"namespace {parts[3]}")
            self._json(403, _status(403, "Forbidden", f"namespace {parts[3]} is not the gateway's"))
            return None
        name = parts[5] if len(parts) == 6 else None
        verb = verb_one if name else verb_many
        if not self.kube.allowed(verb, parts[4]):
            self.kube.denied.append(f"{verb} {parts[4]}")
            self._json(403, _status(403, "Forbidden", f"{verb} {parts[4]} is not in the Role"))
            return None
        return parts[4], name, verb

    def do_GET(self) -> None:
        route = self._route("get", "list")
        if route is None:
            return
        plural, name, _ = route
        if name is not None:
            obj = self.kube.get(plural, name)
            self._json(200, obj) if obj else self._json(404, _status(404, "NotFound", f"{plural} {name} not found"))
            return
        query = parse_qs(urlsplit(self.path).query)
        wanted = dict(pair.split("=", 1) for pair in ",".join(query.get("labelSelector", [])).split(",") if "=" in pair)
        with self.kube.lock:
            items = [
                copy.deepcopy(obj)
                for (kind, _), obj in self.kube.objects.items()
                if kind == plural and wanted.items() <= obj["metadata"].get("labels", {}).items()
            ]
        self._json(200, {"kind": KINDS[plural] + "List", "apiVersion": "v1", "metadata": {}, "items": items})

    def do_POST(self) -> None:
        route = self._route("create", "create")
        if route is None:
            return
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        self._json(*self.kube.create(route[0], body))

    def do_DELETE(self) -> None:
        route = self._route("delete", "deletecollection")
        if route is None:
            return
        if route[1] is None:
            self._json(405, _status(405, "MethodNotAllowed", "the runtime deletes by name"))
            return
        self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))
        self._json(*self.kube.delete(route[0], route[1]))
