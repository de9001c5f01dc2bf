"""The Helm chart's pods, booted for real on the Docker engine as a kubelet would run them.

`helm template` renders the CPU chart for the tiny model; tests/e2e/kubelet.py runs each rendered
container with its image, command, env (ConfigMaps and Secret references resolved), uid, read-only
root with the rendered emptyDir mounts, memory limits; the headless Service's DNS name resolves to
the vLLM pod (host networking: 127.0.0.1). Each rendered startup and readiness probe is polled
until it passes, each liveness probe checked, then requests go through the microservice, and the
pods are stopped through their preStop hooks. vLLM runs with the chart's defaults, torch.compile
included, whose caches must land on the rendered writable volumes of a read-only root.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.processes import free_port
from tests.e2e import kubelet
from tests.e2e.conftest import E2E
from tests.e2e.kubelet_objects import Objects, pod_template
from tests.helm.chart import NAMESPACE, Helm, by_kind, one
from tests.sse import line_data, opea_stream_text

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]

MODEL = "/data/models/tiny"


@dataclass
class Booted:
    objects: list[dict[str, Any]]
    pods: dict[str, kubelet.Pod]
    usvc_url: str


def _values(vllm_port: int, usvc_port: int, images: dict[str, str]) -> dict[str, str]:
    vllm_image, usvc_image = images["llm-vllm-model-server"], images["llm-usvc"]
    return {
        "model": MODEL,
        "vllm.image.repository": vllm_image.split(":")[0],
        "vllm.image.tag": vllm_image.split(":")[1],
        "microservice.image.repository": usvc_image.split(":")[0],
        "microservice.image.tag": usvc_image.split(":")[1],
        "vllm.port": str(vllm_port),
        "microservice.port": str(usvc_port),
        # The tiny model sits in the model cache claim, as a PVC would hold a real one.
        "vllm.cache.persistence": "true",
        "vllm.env.VLLM_CPU_KVCACHE_SPACE": "1",
        "vllm.env.VLLM_MAX_MODEL_LEN": "512",
        "vllm.env.HF_HUB_OFFLINE": "1",
        # Host networking here: bind loopback only instead of every interface.
        "vllm.env.LLM_VLLM_HOST": "127.0.0.1",
        "microservice.env.LLM_USVC_HOST": "127.0.0.1",
        "vllm.resources.limits.memory": "8Gi",
        "vllm.preStopSeconds": "1",
        "microservice.preStopSeconds": "1",
        "microservice.drainSeconds": "5",
    }


@pytest.fixture(scope="module")
def booted(
    e2e: E2E, cpu_images: dict[str, str], tiny_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Booted]:
    helm = Helm()
    vllm_port, usvc_port = free_port(), free_port()
    try:
        rendered = helm.render(sets=_values(vllm_port, usvc_port, cpu_images))
    finally:
        helm.close()
    objects = Objects.index(rendered, namespace=NAMESPACE)
    volumes = tmp_path_factory.mktemp("kubelet")
    cache = by_kind(rendered, "PersistentVolumeClaim")[0]["metadata"]["name"]
    model_dir = volumes / "pvc" / cache / "models" / "tiny"
    shutil.copytree(tiny_model, model_dir)
    for path in [volumes / "pvc" / cache, *(volumes / "pvc" / cache).rglob("*")]:
        shutil.chown(path, 1000, 1000)
    vllm_service = one(rendered, "Service", "vllm")["metadata"]["name"]
    hosts = {f"{vllm_service}.{NAMESPACE}.svc.cluster.local": "127.0.0.1"}
    pods: dict[str, kubelet.Pod] = {}
    try:
        for component in ("vllm", "microservice"):
            workload = one(rendered, "Deployment", component)
            name = f"{workload['metadata']['name']}-0"
            with e2e.phases.phase(f"helm pod {component}"):
                pods[component] = kubelet.run_pod(
                    name, pod_template(workload, name), objects, volumes, e2e.env(),
                    extra_hosts=hosts,
                )  # fmt: skip
                kubelet.wait_ready(pods[component], timeout_s=900)
        yield Booted(rendered, pods, f"http://127.0.0.1:{usvc_port}")
    finally:
        for component in ("microservice", "vllm"):
            if component in pods:
                kubelet.stop_pod(pods[component], check=False)


def test_every_pod_passes_its_liveness_probe(booted: Booted) -> None:
    for pod in booted.pods.values():
        kubelet.check_liveness(pod)


def test_chat_through_the_microservice_reaches_the_vllm_pod(booted: Booted) -> None:
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "What is deep learning?"}],
        "max_tokens": 8,
        "temperature": 0,
        "ignore_eos": True,
    }
    response = httpx.post(booted.usvc_url + "/v1/chat/completions", json=body, timeout=120)
    assert response.status_code == 200, response.text
    assert response.json()["usage"]["completion_tokens"] == 8
    health = httpx.get(booted.usvc_url + "/v1/health_check", timeout=10).json()
    assert health["models"][MODEL]["ready"] is True


def test_opea_stream_through_the_microservice(booted: Booted) -> None:
    body = {"messages": {"system": "", "user": "What is deep learning?"}, "max_new_tokens": 8}
    with httpx.stream(
        "POST", booted.usvc_url + "/v1/chat/completions", json=body, timeout=120
    ) as response:
        assert response.status_code == 200
        events = [data for line in response.iter_lines() if (data := line_data(line)) is not None]
    assert len(events) >= 2
    opea_stream_text(events)  # Python reprs of text, then [DONE]
