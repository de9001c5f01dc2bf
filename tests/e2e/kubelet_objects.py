"""Rendered Kubernetes objects as a kubelet reads them: ConfigMap and Secret data, a workload's
pod template, and a container's environment with Kubernetes' own precedence and $(VAR) rules.

Pure; `SpecError` is raised for anything a single Docker host cannot honour, never skipped.
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]
POD_IP = "127.0.0.1"  # host networking: every pod is reached on loopback
WORKLOADS = {"Deployment", "StatefulSet", "Job", "DaemonSet", "ReplicaSet"}


class SpecError(ValueError):
    """A rendered field this runner cannot honour on one Docker host."""


def refuse_unknown(where: str, obj: Mapping[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise SpecError(f"{where}: cannot honour {', '.join(unknown)} on a single Docker host")


@dataclass
class Objects:
    """Rendered objects indexed by (kind, name); the namespace is what `helm --namespace` got."""

    by_key: dict[tuple[str, str], Obj] = field(default_factory=dict)
    namespace: str = "default"

    @classmethod
    def index(cls, docs: Iterable[Obj | None], namespace: str = "default") -> Objects:
        objects = cls(namespace=namespace)
        for doc in docs:
            if not doc:
                continue
            key = (doc["kind"], doc["metadata"]["name"])
            if key in objects.by_key:
                raise SpecError(f"{key[0]} {key[1]} is rendered twice")
            objects.by_key[key] = doc
        return objects

    def get(self, kind: str, name: str) -> Obj:
        try:
            return self.by_key[(kind, name)]
        except KeyError:
            raise KeyError(f"no {kind} named {name!r} was rendered") from None

    def of_kind(self, kind: str) -> list[Obj]:
        return [obj for (k, _), obj in self.by_key.items() if k == kind]

    def data_bytes(self, kind: str, name: str, optional: bool = False) -> dict[str, bytes] | None:
        """ConfigMap data+binaryData or Secret data (base64) + stringData, as bytes."""
        if (kind, name) not in self.by_key:
            if optional:
                return None
            raise SpecError(f"{kind} {name!r} is referenced but was not rendered")
        obj = self.by_key[(kind, name)]
        out: dict[str, bytes] = {}
        if kind == "ConfigMap":
            out.update({k: str(v).encode() for k, v in (obj.get("data") or {}).items()})
            out.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
        else:
            out.update({k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()})
            out.update({k: str(v).encode() for k, v in (obj.get("stringData") or {}).items()})
        return out

    def config_map_data(self, name: str, optional: bool = False) -> dict[str, str] | None:
        data = self.data_bytes("ConfigMap", name, optional)
        return None if data is None else {k: v.decode() for k, v in data.items()}

    def secret_data(self, name: str, optional: bool = False) -> dict[str, str] | None:
        data = self.data_bytes("Secret", name, optional)
        return None if data is None else {k: v.decode() for k, v in data.items()}


def pod_template(workload: Obj, pod_name: str | None = None) -> Obj:
    """The pod spec a controller would create; a StatefulSet's claim templates become PVC volumes
    named `<template>-<pod>` (pod defaults to `<name>-0`), as the controller names them."""
    kind, spec = workload["kind"], workload.get("spec") or {}
    if kind == "Pod":
        return dict(copy.deepcopy(spec))
    if kind == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    elif kind not in WORKLOADS:
        raise SpecError(f"{kind} {workload['metadata']['name']} has no pod template")
    pod: Obj = copy.deepcopy(spec["template"]["spec"])
    pod_name = pod_name or f"{workload['metadata']['name']}-0"
    volumes = pod.setdefault("volumes", [])
    for claim in spec.get("volumeClaimTemplates") or []:
        tpl = claim["metadata"]["name"]
        if all(v["name"] != tpl for v in volumes):
            claim_ref = {"claimName": f"{tpl}-{pod_name}"}
            volumes.append({"name": tpl, "persistentVolumeClaim": claim_ref})
    return pod


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes `$(VAR)` expansion: `$$` escapes, unknown or unclosed references stay literal."""
    out, i = [], 0
    while i < len(text):
        if text[i] != "$" or i + 1 == len(text):
            out.append(text[i])
            i += 1
        elif text[i + 1] == "$":
            out.append("$")
            i += 2
        elif text[i + 1] == "(":
            end = text.find(")", i + 2)
            if end < 0:
                out.append(text[i:])
                break
            name = text[i + 2 : end]
            out.append(env.get(name, f"$({name})"))
            i = end + 1
        else:
            out.append(text[i : i + 2])
            i += 2
    return "".join(out)


def _key_ref(kind: str, ref: Obj, objects: Objects) -> str | None:
    optional = bool(ref.get("optional", False))
    data = objects.data_bytes(kind, ref["name"], optional)
    if data is None or ref["key"] not in data:
        if optional:
            return None
        raise SpecError(f"{kind} {ref['name']!r} has no key {ref['key']!r}")
    return data[ref["key"]].decode()


def container_env(
    container: Obj, objects: Objects, pod_name: str = "pod", extra_env: Mapping[str, str] = {}
) -> dict[str, str]:
    """The container's environment in kubelet order: envFrom sources, then env entries (literal
    values expanded against what is defined so far), then extra_env from the test, verbatim."""
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        ref = source.get("configMapRef") or source.get("secretRef")
        if ref is None:
            raise SpecError(f"envFrom entry {source} is neither configMapRef nor secretRef")
        kind = "ConfigMap" if "configMapRef" in source else "Secret"
        data = objects.data_bytes(kind, ref["name"], bool(ref.get("optional", False)))
        env.update({prefix + k: v.decode() for k, v in (data or {}).items()})
    fields = {
        "metadata.name": pod_name,
        "metadata.namespace": objects.namespace,
        "status.podIP": POD_IP,
        "status.hostIP": POD_IP,
        "spec.nodeName": "localhost",
    }
    for entry in container.get("env") or []:
        name, source = entry["name"], entry.get("valueFrom")
        value: str | None
        if source is None:
            value = expand(str(entry.get("value", "")), env)
        elif "configMapKeyRef" in source:
            value = _key_ref("ConfigMap", source["configMapKeyRef"], objects)
        elif "secretKeyRef" in source:
            value = _key_ref("Secret", source["secretKeyRef"], objects)
        elif "fieldRef" in source and source["fieldRef"]["fieldPath"] in fields:
            value = fields[source["fieldRef"]["fieldPath"]]
        else:
            raise SpecError(f"env {name}: cannot honour valueFrom {source}")
        if value is not None:
            env[name] = value
    return {**env, **extra_env}
