"""What OpenShift's restricted-v2 SCC (and Kubernetes' `restricted` Pod Security level, which it
implies) demands of a pod spec, as a list of what a spec breaks. Admission itself cannot run
here; this reads the rules off the spec: no host namespaces, ports or paths, only the volume
types the SCC allows, no fixed UID (OpenShift assigns one from the namespace's range), and in
every container non-root, no privilege or its escalation, all capabilities dropped, seccomp
RuntimeDefault (set on the pod or the container)."""

from __future__ import annotations

from typing import Any

VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret"}


def restricted_v2_problems(spec: dict[str, Any]) -> list[str]:
    problems = [f"spec.{key}" for key in ("hostNetwork", "hostPID", "hostIPC", "hostUsers") if spec.get(key)]
    pod_security = spec.get("securityContext", {})
    for volume in spec.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= VOLUMES:
            problems.append(f"volume {volume['name']}: {sorted(kinds - VOLUMES)}")
    if "runAsUser" in pod_security or pod_security.get("sysctls"):
        problems.append("pod securityContext: runAsUser or sysctls")
    for container in spec.get("initContainers", []) + spec["containers"]:
        name, sc = container["name"], container.get("securityContext", {})
        if sc.get("privileged") or sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: privilege (escalation)")
        if "runAsUser" in sc:
            problems.append(f"{name}: a fixed runAsUser")
        if sc.get("runAsNonRoot", pod_security.get("runAsNonRoot")) is not True:
            problems.append(f"{name}: runAsNonRoot")
        if sc.get("capabilities", {}).get("drop") != ["ALL"] or set(sc.get("capabilities", {}).get("add", [])) - {
            "NET_BIND_SERVICE"
        }:
            problems.append(f"{name}: capabilities")
        seccomp = sc.get("seccompProfile", pod_security.get("seccompProfile", {}))
        if seccomp.get("type") != "RuntimeDefault":
            problems.append(f"{name}: seccompProfile")
        if any(port.get("hostPort") for port in container.get("ports", [])):
            problems.append(f"{name}: hostPort")
    return problems
