"""Run the real helm (from .venv/bin, put there by scripts/install_helm.py) on the chart.

helm keeps no state between calls here: its cache, config and data homes point at a temporary
folder, so a developer's own repositories and plugins never change a result.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from harness.processes import REPO_ROOT

CHART = REPO_ROOT / "deploy" / "helm" / "llm-stack"
GAUDI_VALUES = CHART / "values-gaudi.yaml"
RELEASE = "demo"
NAMESPACE = "llm"


def helm_binary() -> str:
    beside_python = Path(sys.executable).parent / "helm"
    found = str(beside_python) if beside_python.is_file() else shutil.which("helm")
    if found is None:
        raise AssertionError("helm is missing: `make venv` puts it in .venv/bin")
    return found


@dataclass
class HelmResult:
    returncode: int
    stdout: str
    stderr: str


class Helm:
    """helm with private homes; one per test session."""

    def __init__(self) -> None:
        self.home = Path(tempfile.mkdtemp(prefix="helm-home-"))
        self.binary = helm_binary()

    def close(self) -> None:
        shutil.rmtree(self.home, ignore_errors=True)

    def run(self, *args: str) -> HelmResult:
        env = {**os.environ}
        for name in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"):
            env[name] = str(self.home / name.lower())
        done = subprocess.run(
            [self.binary, *args], env=env, capture_output=True, text=True, timeout=120, check=False
        )
        return HelmResult(done.returncode, done.stdout, done.stderr)

    def template_args(
        self, values: tuple[Path, ...] = (), sets: dict[str, str] | None = None
    ) -> list[str]:
        args = [str(CHART)]
        for path in values:
            args += ["-f", str(path)]
        for key, value in (sets or {}).items():
            args += ["--set", f"{key}={value}"]
        return args

    def render(
        self,
        values: tuple[Path, ...] = (),
        sets: dict[str, str] | None = None,
        kube_version: str = "1.34.0",
    ) -> list[dict[str, Any]]:
        """`helm template` -> the rendered objects; a failed render fails the test."""
        result = self.run(
            "template", RELEASE, *self.template_args(values, sets),
            "--namespace", NAMESPACE, "--kube-version", kube_version,
            "--api-versions", "monitoring.coreos.com/v1",
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        return [doc for doc in yaml.safe_load_all(result.stdout) if doc]

    def refusal(self, sets: dict[str, str], values: tuple[Path, ...] = ()) -> str:
        """The error of a render that must fail (the test asserts on its text)."""
        result = self.run("template", RELEASE, *self.template_args(values, sets))
        assert result.returncode != 0, f"helm accepted {sets}"
        return result.stderr


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [obj for obj in objects if obj["kind"] == kind]


def one(objects: list[dict[str, Any]], kind: str, component: str) -> dict[str, Any]:
    found = [
        obj
        for obj in by_kind(objects, kind)
        if obj["metadata"]["labels"].get("app.kubernetes.io/component") == component
    ]
    assert len(found) == 1, f"expected one {kind} of {component}, found {len(found)}"
    return found[0]


def pod_specs(objects: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """(workload name, pod spec) of every workload."""
    kinds = {"Deployment", "StatefulSet", "DaemonSet", "Job"}
    return [
        (obj["metadata"]["name"], obj["spec"]["template"]["spec"])
        for obj in objects
        if obj["kind"] in kinds
    ]


def containers(pod_spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*pod_spec.get("initContainers", []), *pod_spec["containers"]]


def container_env(container: dict[str, Any], objects: list[dict[str, Any]]) -> dict[str, Any]:
    """The container's variables in Kubernetes order: ConfigMap envFrom first, then its env
    entries, each a value or (Secret references) its valueFrom."""
    maps = {c["metadata"]["name"]: c["data"] for c in by_kind(objects, "ConfigMap")}
    env: dict[str, Any] = {}
    for source in container.get("envFrom", []):
        env.update(maps[source["configMapRef"]["name"]])
    for entry in container.get("env", []):
        env[entry["name"]] = entry.get("value", entry.get("valueFrom"))
    return env


def load_yaml(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


# The chart's FP8 calibration turned on, with the cache and TP size it needs.
FP8_SETS = {
    "fp8.enabled": "true",
    "fp8.datasetPath": "/data/calibration/prompts.pkl",
    "vllm.cache.persistence": "true",
    "vllm.cache.accessModes[0]": "ReadWriteMany",
    "vllm.env.VLLM_TP_SIZE": "2",
}
