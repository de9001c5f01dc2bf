"""Each way of installing the chart renders objects that the Kubernetes schemas of two
versions accept strictly, and that hold together: names, ports, probes, selectors, secrets."""

from __future__ import annotations

import json
import runpy
from pathlib import Path
from typing import Any

import pytest

from tests.helm import validate
from tests.helm.chart import (
    CHART,
    FP8_SETS,
    GAUDI_VALUES,
    NAMESPACE,
    Helm,
    by_kind,
    container_env,
    containers,
    one,
    pod_specs,
)

KUBE_VERSIONS = ("1.30.0", "1.34.0")
EVERYTHING_ON = {
    "metrics.serviceMonitor.enabled": "true",
    "metrics.dashboard.enabled": "true",
    "networkPolicy.enabled": "true",
    "ingress.enabled": "true",
    "ingress.host": "llm.example.com",
    "hfToken.existingSecret": "hf-token",
    "microservice.apiKeys.existingSecret": "llm-keys",
    "microservice.rateLimitRedis.existingSecret": "llm-redis",
    "microservice.autoscaling.inFlightPerPod.enabled": "true",
    "vllm.kvEventsPort": "5557",
}
# name -> (values files, --set): the installs docs/kubernetes.md describes.
RENDERS: dict[str, tuple[tuple[Path, ...], dict[str, str]]] = {
    "cpu": ((), {"model": "Qwen/Qwen2.5-0.5B-Instruct"}),
    "cpu-everything": ((), EVERYTHING_ON),
    "gaudi": ((GAUDI_VALUES,), {}),
    "gaudi-fp8": ((GAUDI_VALUES,), {**FP8_SETS, **EVERYTHING_ON}),
}


@pytest.fixture(scope="module")
def rendered(helm: Helm) -> dict[str, list[dict[str, Any]]]:
    return {name: helm.render(values, sets) for name, (values, sets) in RENDERS.items()}


@pytest.mark.parametrize("name", RENDERS)
def test_lint_strict(helm: Helm, name: str) -> None:
    values, sets = RENDERS[name]
    result = helm.run("lint", "--strict", *helm.template_args(values, sets))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("version", KUBE_VERSIONS)
@pytest.mark.parametrize("name", RENDERS)
def test_objects_are_valid_kubernetes(
    rendered: dict[str, list[dict[str, Any]]], name: str, version: str
) -> None:
    crds = validate.crd_schemas()
    found = [p for obj in rendered[name] for p in validate.problems(obj, version, crds)]
    assert found == []


def test_strict_validation_catches_a_misspelt_field(rendered: dict[str, Any]) -> None:
    """The validator itself fails on what an API server would refuse."""
    crds = validate.crd_schemas()
    deployment = json.loads(json.dumps(one(rendered["cpu"], "Deployment", "vllm")))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbes"] = {}
    assert validate.problems(deployment, "1.34.0", crds)
    monitor = json.loads(json.dumps(by_kind(rendered["cpu-everything"], "ServiceMonitor")[0]))
    monitor["spec"]["endpoints"][0]["intervall"] = "5s"
    assert validate.problems(monitor, "1.34.0", crds)
    assert validate.problems({"apiVersion": "example.com/v1", "kind": "Widget"}, "1.34.0", crds)


def test_every_render_has_the_expected_objects(rendered: dict[str, Any]) -> None:
    kinds = {name: sorted({obj["kind"] for obj in objs}) for name, objs in rendered.items()}
    base = {"ConfigMap", "Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Service"}
    assert set(kinds["cpu"]) == base
    assert set(kinds["cpu-everything"]) == base | {"ServiceMonitor", "NetworkPolicy", "Ingress"}
    assert set(kinds["gaudi-fp8"]) == set(kinds["cpu-everything"]) | {
        "Job",
        "PersistentVolumeClaim",
    }


@pytest.mark.parametrize("name", RENDERS)
def test_every_pod_and_container_is_locked_down(rendered: dict[str, Any], name: str) -> None:
    for workload, pod in pod_specs(rendered[name]):
        assert pod["automountServiceAccountToken"] is False, workload
        security = pod["securityContext"]
        assert (security["runAsNonRoot"], security["runAsUser"]) == (True, 1000), workload
        assert security["seccompProfile"] == {"type": "RuntimeDefault"}, workload
        for container in containers(pod):
            where = f"{workload}/{container['name']}"
            context = container["securityContext"]
            assert context["runAsUser"] == 1000, where
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["capabilities"] == {"drop": ["ALL"]}, where
            assert context["seccompProfile"] == {"type": "RuntimeDefault"}, where
            assert (
                "limits" in container["resources"] and "memory" in container["resources"]["limits"]
            ), where


def _pod_labels(objects: list[dict[str, Any]]) -> list[dict[str, str]]:
    return [
        obj["spec"]["template"]["metadata"]["labels"]
        for obj in objects
        if obj["kind"] in {"Deployment", "Job"}
    ]


def _matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


@pytest.mark.parametrize("name", RENDERS)
def test_selectors_match_pods_and_ports_match_names(rendered: dict[str, Any], name: str) -> None:
    objects = rendered[name]
    for workload in by_kind(objects, "Deployment"):
        selector = workload["spec"]["selector"]["matchLabels"]
        assert _matches(selector, workload["spec"]["template"]["metadata"]["labels"])
    for service in by_kind(objects, "Service"):
        selected = [
            obj for obj in by_kind(objects, "Deployment")
            if _matches(service["spec"]["selector"], obj["spec"]["template"]["metadata"]["labels"])
        ]  # fmt: skip
        assert len(selected) == 1, service["metadata"]["name"]
        port_names = {
            port["name"] for c in containers(selected[0]["spec"]["template"]["spec"])
            for port in c.get("ports", [])
        }  # fmt: skip
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in port_names, service["metadata"]["name"]
    services = {s["metadata"]["name"]: s for s in by_kind(objects, "Service")}
    for monitor in by_kind(objects, "ServiceMonitor"):
        matched = [
            s for s in services.values()
            if _matches(monitor["spec"]["selector"]["matchLabels"], s["metadata"]["labels"])
        ]  # fmt: skip
        assert len(matched) == 1
        assert monitor["spec"]["endpoints"][0]["port"] in {
            p["name"] for p in matched[0]["spec"]["ports"]
        }
    deployments = {d["metadata"]["name"]: d for d in by_kind(objects, "Deployment")}
    for budget in by_kind(objects, "PodDisruptionBudget"):
        selector = budget["spec"]["selector"]["matchLabels"]
        assert sum(_matches(selector, labels) for labels in _pod_labels(objects)) == 1
    for scaler in by_kind(objects, "HorizontalPodAutoscaler"):
        assert scaler["spec"]["scaleTargetRef"]["name"] in deployments
    for policy in by_kind(objects, "NetworkPolicy"):
        vllm_pods = one(objects, "Deployment", "vllm")["spec"]["template"]["metadata"]["labels"]
        usvc_pods = one(objects, "Deployment", "microservice")["spec"]["template"]["metadata"][
            "labels"
        ]
        assert _matches(policy["spec"]["podSelector"]["matchLabels"], vllm_pods)
        peer = policy["spec"]["ingress"][0]["from"][0]["podSelector"]["matchLabels"]
        assert _matches(peer, usvc_pods) and not _matches(peer, vllm_pods)


@pytest.mark.parametrize("name", RENDERS)
def test_microservice_reaches_vllm_through_its_headless_service(
    rendered: dict[str, Any], name: str
) -> None:
    objects = rendered[name]
    vllm = one(objects, "Service", "vllm")
    assert vllm["spec"]["clusterIP"] == "None"
    usvc = one(objects, "Deployment", "microservice")["spec"]["template"]["spec"]["containers"][0]
    endpoint = container_env(usvc, objects)["LLM_MODEL_SERVER_ENDPOINT"]
    name_, port = vllm["metadata"]["name"], vllm["spec"]["ports"][0]["port"]
    assert endpoint == f"http://{name_}.{NAMESPACE}.svc.cluster.local:{port}"
    server = one(objects, "Deployment", "vllm")["spec"]["template"]["spec"]["containers"][0]
    server_env = container_env(server, objects)
    assert server_env["LLM_VLLM_PORT"] == str(port)
    assert container_env(usvc, objects)["LLM_MODEL_NAME"] == server_env["LLM_VLLM_MODEL_NAME"]


def test_probes_use_the_paths_the_images_check() -> None:
    """The chart probes what the images' own HEALTHCHECK asks (docker/healthcheck.py), which the
    Compose e2e proves both services answer; the booted-pod e2e polls the rendered probes."""
    targets = runpy.run_path(str(CHART.parents[2] / "docker" / "healthcheck.py"))["TARGETS"]
    for template, target in (("vllm-deployment.yaml", "vllm"), ("usvc-deployment.yaml", "usvc")):
        text = (CHART / "templates" / template).read_text()
        paths = {line.split(":", 1)[1].strip() for line in text.splitlines() if "path: /" in line}
        expected = {targets[target][2]} if target == "vllm" else {"/health"}
        assert paths == expected, template


@pytest.mark.parametrize("name", RENDERS)
def test_hf_token_only_through_a_secret_reference(rendered: dict[str, Any], name: str) -> None:
    objects = rendered[name]
    for config in by_kind(objects, "ConfigMap"):
        assert "HF_TOKEN" not in config.get("data", {})
    assert by_kind(objects, "Secret") == []
    for workload, pod in pod_specs(objects):
        for container in containers(pod):
            for entry in container.get("env", []):
                if entry["name"] in {"HF_TOKEN", "LLM_RATE_LIMIT_REDIS_URL"}:
                    assert set(entry) == {"name", "valueFrom"}, workload
                    assert set(entry["valueFrom"]) == {"secretKeyRef"}, workload


def test_gaudi_resources_only_in_gaudi_renders(rendered: dict[str, Any]) -> None:
    for name, objects in rendered.items():
        text = json.dumps(objects)
        assert ("habana.ai/gaudi" in text) is name.startswith("gaudi"), name
    vllm = one(rendered["gaudi"], "Deployment", "vllm")["spec"]["template"]["spec"]
    limits = vllm["containers"][0]["resources"]["limits"]
    assert limits["habana.ai/gaudi"] == 1
    assert container_env(vllm["containers"][0], rendered["gaudi"])["LLM_DEVICE"] == "hpu"
