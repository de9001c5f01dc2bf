"""Kubernetes pod specs, as `helm template` renders them, translated into `docker run` arguments.

The e2e tier has a Docker engine but no cluster, so a chart is checked by running each rendered
pod the way a kubelet would: same env, uid, read-only root, capabilities, limits and mounts.
A field that cannot be honoured on one host raises `SpecError` instead of being dropped, so a
chart bug is never hidden; fields with no effect on a single host are accepted and ignored.
Everything here is pure except writing configMap/secret/emptyDir/PVC folders under volume_root.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path

from tests.e2e.kubelet_objects import Obj, Objects, SpecError, container_env, expand, refuse_unknown
from tests.e2e.kubelet_probes import hooks, probe_plan

# Accepted and ignored: they change scheduling or the cluster around the pod, not the process.
POD_NO_EFFECT = {
    "affinity", "topologySpreadConstraints", "tolerations", "nodeSelector", "priorityClassName",
    "priority", "terminationGracePeriodSeconds", "serviceAccountName", "serviceAccount",
    "automountServiceAccountToken", "restartPolicy", "schedulerName", "imagePullSecrets",
    "enableServiceLinks", "dnsPolicy", "hostname", "subdomain", "hostNetwork",
    "activeDeadlineSeconds", "preemptionPolicy",
}  # fmt: skip
POD_HANDLED = {"containers", "initContainers", "volumes", "securityContext", "hostAliases"}
CONTAINER_NO_EFFECT = {
    "ports", "startupProbe", "readinessProbe", "livenessProbe", "lifecycle", "imagePullPolicy",
    "terminationMessagePath", "terminationMessagePolicy", "restartPolicy",
}  # fmt: skip
CONTAINER_HANDLED = {
    "name", "image", "command", "args", "env", "envFrom", "workingDir", "securityContext",
    "resources", "volumeMounts", "stdin", "tty",
}  # fmt: skip
POD_SECURITY = {
    "runAsUser", "runAsGroup", "runAsNonRoot", "fsGroup", "fsGroupChangePolicy",
    "supplementalGroups", "seccompProfile", "appArmorProfile",
}  # fmt: skip
CONTAINER_SECURITY = {
    "runAsUser", "runAsGroup", "runAsNonRoot", "readOnlyRootFilesystem", "capabilities",
    "allowPrivilegeEscalation", "privileged", "seccompProfile", "appArmorProfile",
}  # fmt: skip
QUANTITY = re.compile(r"([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)([KMGTPE]i|[numkMGTPE]?)")
FACTORS: dict[str, int | str] = {
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
    "n": "1e-9", "u": "1e-6", "m": "1e-3", "": 1,
    "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
}  # fmt: skip


def quantity(text: str | int | float) -> Decimal:
    """A Kubernetes resource quantity ("1.5Gi", "500m", "129e6", "2") as a plain number."""
    match = QUANTITY.fullmatch(str(text).strip())
    if not match:
        raise SpecError(f"{text!r} is not a Kubernetes quantity")
    try:
        return Decimal(match[1]) * Decimal(FACTORS[match[2]])
    except InvalidOperation:
        raise SpecError(f"{text!r} is not a Kubernetes quantity") from None


def _security(container: Obj, pod_spec: Obj) -> tuple[Obj, Obj]:
    pod_sc, sc = pod_spec.get("securityContext") or {}, container.get("securityContext") or {}
    refuse_unknown("pod securityContext", pod_sc, POD_SECURITY)
    refuse_unknown(f"container {container['name']} securityContext", sc, CONTAINER_SECURITY)
    return pod_sc, {**{k: v for k, v in pod_sc.items() if k in CONTAINER_SECURITY}, **sc}


def run_as(container: Obj, pod_spec: Obj) -> tuple[int | None, int | None]:
    """(uid, gid) the container runs as; the container's securityContext wins over the pod's."""
    _, sc = _security(container, pod_spec)
    return sc.get("runAsUser"), sc.get("runAsGroup")


def non_root_violation(container: Obj, pod_spec: Obj, image_user: str) -> str | None:
    """What the kubelet says when runAsNonRoot cannot be verified (image_user: image's USER)."""
    _, sc = _security(container, pod_spec)
    if not sc.get("runAsNonRoot"):
        return None
    uid = sc.get("runAsUser")
    user = str(uid) if uid is not None else image_user.split(":")[0] or "0"  # empty: root
    if not user.isdigit():
        return f"container {container['name']}: image user {user!r} is not numeric (runAsNonRoot)"
    return f"container {container['name']}: runs as root (runAsNonRoot)" if user == "0" else None


def _security_args(container: Obj, pod_spec: Obj) -> list[str]:
    pod_sc, sc = _security(container, pod_spec)
    uid, gid = sc.get("runAsUser"), sc.get("runAsGroup")
    if uid == 0 and sc.get("runAsNonRoot"):
        raise SpecError(f"container {container['name']}: runAsUser 0 with runAsNonRoot")
    if gid is not None and uid is None:
        raise SpecError(f"container {container['name']}: runAsGroup without runAsUser")
    args = ["--user", f"{uid}:{gid}" if gid is not None else str(uid)] if uid is not None else []
    for group in [pod_sc.get("fsGroup"), *(pod_sc.get("supplementalGroups") or [])]:
        args += ["--group-add", str(group)] if group is not None else []
    if sc.get("readOnlyRootFilesystem"):
        args.append("--read-only")
    caps = sc.get("capabilities") or {}
    refuse_unknown("capabilities", caps, {"add", "drop"})
    args += [a for cap in caps.get("drop") or [] for a in ("--cap-drop", cap)]
    args += [a for cap in caps.get("add") or [] for a in ("--cap-add", cap)]
    if sc.get("allowPrivilegeEscalation") is False:
        args += ["--security-opt", "no-new-privileges"]
    if sc.get("privileged"):
        args.append("--privileged")
    for key, opt in (("seccompProfile", "seccomp"), ("appArmorProfile", "apparmor")):
        kind = (sc.get(key) or {}).get("type", "RuntimeDefault")
        if kind == "Unconfined":
            args += ["--security-opt", f"{opt}=unconfined"]
        elif kind != "RuntimeDefault":
            raise SpecError(f"container {container['name']}: {key} {kind} is not supported")
    return args


def _resource_args(container: Obj) -> list[str]:
    resources = container.get("resources") or {}
    refuse_unknown(f"container {container['name']} resources", resources, {"limits", "requests"})
    limits = resources.get("limits") or {}
    refuse_unknown(f"container {container['name']} limits", limits, {"memory", "cpu"})
    args = []
    if "memory" in limits:
        memory = str(math.ceil(quantity(limits["memory"])))
        args += ["--memory", memory, "--memory-swap", memory]  # nodes run without swap
    if "cpu" in limits:
        args += ["--cpus", format(quantity(limits["cpu"]).normalize(), "f")]
    return args


def _own(path: Path, uid: int | None, gid: int | None) -> None:
    if os.geteuid() == 0 and (uid is not None or gid is not None):
        os.chown(path, -1 if uid is None else uid, -1 if gid is None else gid)


def _project(volume: Obj, objects: Objects, folder: Path, fs_group: int | None) -> None:
    """configMap/secret volume: one file per key (or per item), with defaultMode / item mode."""
    kind, source = ("ConfigMap", volume["configMap"]) if "configMap" in volume else (
        "Secret", volume["secret"])  # fmt: skip
    name = source.get("name") or source.get("secretName")
    data = objects.data_bytes(kind, name, bool(source.get("optional", False))) or {}
    items = source.get("items") or [{"key": k, "path": k} for k in data]
    folder.mkdir(parents=True, exist_ok=True)
    for item in items:
        if item["key"] not in data:
            if source.get("optional"):
                continue
            raise SpecError(f"volume {volume['name']}: {kind} {name!r} has no key {item['key']!r}")
        target = folder / item["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.unlink(missing_ok=True)  # a second container of the pod may project it again
        target.write_bytes(data[item["key"]])
        mode = item.get("mode", source.get("defaultMode", 0o644))
        if fs_group is not None:  # the kubelet hands projected files to fsGroup, group-readable
            _own(target, None, fs_group)
            mode |= 0o440
        target.chmod(mode)


def _volume_mounts(
    pod_name: str,
    container: Obj,
    pod_spec: Obj,
    objects: Objects,
    root: Path,
    env: Mapping[str, str],
) -> list[str]:
    pod_sc, _ = _security(container, pod_spec)
    uid, _ = run_as(container, pod_spec)
    fs_group = pod_sc.get("fsGroup")
    volumes = {v["name"]: v for v in pod_spec.get("volumes") or []}
    args: list[str] = []
    for mount in container.get("volumeMounts") or []:
        refuse_unknown(f"volumeMount {mount['name']}", mount,
                        {"name", "mountPath", "readOnly", "subPath", "subPathExpr"})  # fmt: skip
        volume = volumes.get(mount["name"])
        if volume is None:
            raise SpecError(f"volumeMount {mount['name']}: no such volume in the pod")
        sub = mount.get("subPath") or expand(mount.get("subPathExpr", ""), env)
        read_only = bool(mount.get("readOnly"))
        if "emptyDir" in volume and (volume["emptyDir"] or {}).get("medium") == "Memory":
            everyone = (pod_spec.get("initContainers") or []) + pod_spec["containers"]
            mounts = [m for c in everyone for m in c.get("volumeMounts") or []]
            users = [m for m in mounts if m["name"] == volume["name"]]
            if len(users) > 1 or sub:
                raise SpecError(f"volume {volume['name']}: a Memory emptyDir is per container here")
            size = volume["emptyDir"].get("sizeLimit")
            size_opt = f",size={math.ceil(quantity(size))}" if size else ""
            args += ["--tmpfs", f"{mount['mountPath']}:rw,exec,mode=1777{size_opt}"]
            continue
        if "emptyDir" in volume:
            host = root / pod_name / volume["name"]
            if not host.exists():
                host.mkdir(parents=True)
                host.chmod(0o777)  # the kubelet creates emptyDir world-writable
                _own(host, uid, fs_group)
        elif "configMap" in volume or "secret" in volume:
            host, read_only = root / pod_name / volume["name"], True
            _project(volume, objects, host, fs_group)
        elif "persistentVolumeClaim" in volume:
            claim = volume["persistentVolumeClaim"]
            host = root / "pvc" / claim["claimName"]
            read_only = read_only or bool(claim.get("readOnly"))
            if not host.exists():
                host.mkdir(parents=True)
                if fs_group is not None:  # fsGroup ownership, as the kubelet applies it
                    _own(host, None, fs_group)
                    host.chmod(0o2775)
        else:
            kinds = sorted(set(volume) - {"name"})
            raise SpecError(f"volume {volume['name']}: {'/'.join(kinds)} is not supported here")
        if sub:
            host = host / sub
            if not host.exists():  # the kubelet creates a missing subPath as a folder
                host.mkdir(parents=True)
        args += ["--volume", f"{host}:{mount['mountPath']}{':ro' if read_only else ''}"]
    return args


def docker_run_args(
    pod_name: str,
    container: Obj,
    pod_spec: Obj,
    objects: Objects,
    volume_root: Path,
    extra_env: Mapping[str, str] = {},
    extra_hosts: Mapping[str, str] = {},
) -> list[str]:
    """Arguments after `docker run` that start this container as the kubelet would: name,
    host network, identity, limits, env, mounts, then the image and the command."""
    refuse_unknown(f"pod {pod_name}", pod_spec, POD_NO_EFFECT | POD_HANDLED)
    refuse_unknown(f"container {container['name']}", container,
                    CONTAINER_NO_EFFECT | CONTAINER_HANDLED)  # fmt: skip
    for volume in pod_spec.get("volumes") or []:
        if "hostPath" in volume:
            raise SpecError(f"volume {volume['name']}: hostPath is refused (ties pods to a node)")
    probe_plan(container)  # probes and hooks are refused here, before anything starts
    hooks(container)
    env = container_env(container, objects, pod_name, extra_env)
    args = ["--name", f"{pod_name}-{container['name']}", "--network", "host", "--pull", "never",
            "--label", f"io.kubernetes.pod.name={pod_name}"]  # fmt: skip
    for alias in pod_spec.get("hostAliases") or []:
        args += [a for host in alias["hostnames"] for a in ("--add-host", f"{host}:{alias['ip']}")]
    args += [a for host, ip in extra_hosts.items() for a in ("--add-host", f"{host}:{ip}")]
    args += _security_args(container, pod_spec) + _resource_args(container)
    args += [a for key, value in env.items() for a in ("--env", f"{key}={value}")]
    args += _volume_mounts(pod_name, container, pod_spec, objects, volume_root, env)
    args += ["--workdir", container["workingDir"]] if container.get("workingDir") else []
    args += ["--interactive"] if container.get("stdin") else []
    args += ["--tty"] if container.get("tty") else []
    command = [expand(str(part), env) for part in container.get("command") or []]
    rest = command[1:] + [expand(str(part), env) for part in container.get("args") or []]
    if command:  # docker also clears the image CMD when --entrypoint is given, like Kubernetes
        args += ["--entrypoint", command[0]]
    return [*args, container["image"], *rest]
