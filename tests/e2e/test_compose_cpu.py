"""End to end with a real Docker engine: build the CPU images from the project's Dockerfiles,
`docker compose up --wait` the docker/cpu stack with the tiny model as the model, call the
model server and the microservice (both request forms, streaming and not), `down`, and stop the
engine by its PID.

Runs whenever the machine can start an engine (root on Linux; docker.io and debootstrap are
apt-get installed when missing), else it is skipped with the reason. E2E_DOCKER=0 skips it;
E2E_DOCKER=required turns a skip into a failure (for CI). The stack listens on free loopback
ports, so it does not collide with anything on 8008/9000.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.processes import free_port
from tests.e2e import engine as eng
from tests.e2e.conftest import COMPOSE, E2E, IMAGES, STACK_DIR, compose_build_env
from tests.sse import line_data, opea_stream_text, openai_stream_text

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]


MODEL_IN_CONTAINER = "/data/models/tiny"


@dataclass
class Stack:
    engine: eng.Engine
    env: dict[str, str]
    data_dir: Path
    vllm_url: str
    usvc_url: str

    def compose(self, *args: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*COMPOSE, *args],
            cwd=STACK_DIR,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )

    def docker(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["docker", *args], env=self.env, capture_output=True, text=True, timeout=60, check=False
        )


@pytest.fixture(scope="module")
def stack(
    e2e: E2E,
    cpu_images: dict[str, str],
    tiny_model: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    data_dir = tmp_path_factory.mktemp("e2e-data")
    shutil.copytree(tiny_model, data_dir / "models" / "tiny")
    vllm_port, usvc_port = free_port(), free_port()
    env = compose_build_env(e2e)
    env.update(
        {
            "UID": str(os.getuid()),
            "COMPOSE_PROJECT_NAME": f"xgls-e2e-{os.getpid()}",
            "LLM_DATA_DIR": str(data_dir),
            "LLM_VLLM_MODEL_NAME": MODEL_IN_CONTAINER,
            "LLM_VLLM_HOST": "127.0.0.1",
            "LLM_VLLM_PORT": str(vllm_port),
            "LLM_USVC_HOST": "127.0.0.1",
            "LLM_USVC_PORT": str(usvc_port),
            "LLM_MODEL_SERVER_ENDPOINT": f"http://127.0.0.1:{vllm_port}",
            "VLLM_CPU_KVCACHE_SPACE": "1",
            "VLLM_MAX_MODEL_LEN": "512",
            "HF_HUB_OFFLINE": "1",
            "VLLM_JSON_COMPACT": "true",  # JSON answers without runs of whitespace
            "VLLM_START_PERIOD": "600s",  # a slow start on a busy 2-core host
            # torch.compile in the image is exercised by the Helm pod (read-only root, where its
            # caches must land on the rendered emptyDir volumes); here vLLM starts eagerly.
            "VLLM_ENFORCE_EAGER": "true",
        }
    )
    stack = Stack(
        e2e.engine, env, data_dir, f"http://127.0.0.1:{vllm_port}", f"http://127.0.0.1:{usvc_port}"
    )
    try:
        with e2e.phases.phase("compose up --wait"):
            up = stack.compose("up", "--wait", "--wait-timeout", "900", "-d", timeout_s=1000)
        assert up.returncode == 0, f"compose up failed:\n{up.stderr[-3000:]}"
        yield stack
    finally:
        logs = stack.compose("logs", "--no-color", "--timestamps")
        (eng.LOG_DIR / "e2e-compose.log").write_text(logs.stdout + logs.stderr)
        with e2e.phases.phase("compose down"):
            down = stack.compose("down", "--volumes", "--remove-orphans", "--timeout", "20")
        assert down.returncode == 0, down.stderr
        left = stack.docker("ps", "-aq")
        assert left.stdout.strip() == "", f"containers left after down: {left.stdout}"


def _inspect(stack: Stack, *names: str) -> list[dict[str, Any]]:
    result = stack.docker("inspect", *names)
    assert result.returncode == 0, result.stderr
    parsed: list[dict[str, Any]] = json.loads(result.stdout)
    return parsed


def _containers(stack: Stack) -> dict[str, str]:
    """service name -> container id, stopped ones included."""
    result = stack.compose("ps", "-a", "--format", "{{.Service}} {{.ID}}")
    assert result.returncode == 0, result.stderr
    return dict(line.split() for line in result.stdout.splitlines() if line.strip())


def test_services_are_healthy_and_run_as_uid_1000(stack: Stack) -> None:
    containers = _containers(stack)
    assert set(containers) == {"data-init", "llm-vllm-model-server", "llm-usvc"}
    by_service = dict(zip(containers, _inspect(stack, *containers.values()), strict=True))
    init = by_service["data-init"]["State"]
    assert (init["Status"], init["ExitCode"]) == ("exited", 0)
    for service in ("llm-vllm-model-server", "llm-usvc"):
        info = by_service[service]
        assert info["State"]["Health"]["Status"] == "healthy", service
        assert info["Config"]["User"] == "1000:1000", service
        assert info["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped", service
    # The token is a run-time pass-through: none exported here, so none in the container.
    server_env = dict(v.split("=", 1) for v in by_service["llm-vllm-model-server"]["Config"]["Env"])
    assert server_env["HF_TOKEN"] == ""


def test_model_server_starts_without_openmp_warnings(stack: Stack) -> None:
    """The .env leaves OMP_NUM_THREADS empty (unset); the runtimes would warn on an empty one."""
    logs = stack.compose("logs", "--no-color", "llm-vllm-model-server")
    assert logs.returncode == 0, logs.stderr
    assert "Starting vLLM server" in logs.stdout
    assert "Invalid value for environment variable OMP_NUM_THREADS" not in logs.stdout  # libgomp
    assert "OMP_NUM_THREADS: Invalid symbols found" not in logs.stdout  # Intel OpenMP


def test_images_are_non_root_with_healthcheck(stack: Stack) -> None:
    images = _inspect(stack, *IMAGES.values())
    for image in images:
        config = image["Config"]
        assert config["User"] == "1000:1000"
        assert config["Healthcheck"]["Test"][0] == "CMD"
        assert config["Entrypoint"][:2] == ["python3", "-m"]
        assert not any(var.startswith("HF_TOKEN=") for var in config["Env"])


def test_data_folder_belongs_to_uid_1000(stack: Stack) -> None:
    assert stack.data_dir.stat().st_uid == 1000
    assert (stack.data_dir / "models" / "tiny" / "config.json").stat().st_uid == 1000


def test_model_server_serves_the_tiny_model(stack: Stack) -> None:
    models = httpx.get(stack.vllm_url + "/v1/models", timeout=10).json()
    assert [m["id"] for m in models["data"]] == [MODEL_IN_CONTAINER]
    response = httpx.post(
        stack.vllm_url + "/v1/chat/completions",
        json={
            "model": MODEL_IN_CONTAINER,
            "messages": [{"role": "user", "content": "what is deep learning"}],
            "max_tokens": 8,
            "temperature": 0,
            "ignore_eos": True,
        },
        timeout=60,
    )
    assert response.status_code == 200, response.text
    assert response.json()["usage"]["completion_tokens"] == 8


def test_microservice_health(stack: Stack) -> None:
    response = httpx.get(stack.usvc_url + "/v1/health_check", timeout=10)
    assert response.status_code == 200, response.text


OPEA_BODY = {
    "messages": {"system": "You are helpful.", "user": "What is deep learning?"},
    "max_new_tokens": 8,
    "top_p": 0.95,
    "temperature": 0.01,
    "top_k": 10,
    "typical_p": 0.95,
    "repetition_penalty": 1.03,
    "output_guardrail_params": None,
}


def _chat(stack: Stack, body: dict[str, Any]) -> dict[str, Any]:
    response = httpx.post(stack.usvc_url + "/v1/chat/completions", json=body, timeout=60)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def _vllm_text(stack: Stack, opea: dict[str, Any]) -> str:
    """What vLLM answers directly to the OPEA body's messages and sampling: the reference."""
    messages = opea["messages"]
    sampling = {k: opea[k] for k in ("top_p", "temperature", "top_k", "repetition_penalty")}
    body = {
        "model": MODEL_IN_CONTAINER,
        "messages": [
            {"role": "system", "content": messages["system"]},
            {"role": "user", "content": messages["user"]},
        ],
        "max_tokens": opea["max_new_tokens"],
        **sampling,
    }
    response = httpx.post(stack.vllm_url + "/v1/chat/completions", json=body, timeout=60)
    assert response.status_code == 200, response.text
    return str(response.json()["choices"][0]["message"]["content"])


GREEDY_OPEA = {**OPEA_BODY, "temperature": 0}  # the same text every time, to compare


def test_microservice_opea_form_non_streaming(stack: Stack) -> None:
    body = _chat(stack, {**GREEDY_OPEA, "streaming": False})
    assert list(body) == ["id", "text", "prompt", "streaming", "output_guardrail_params"]
    assert body["prompt"] == "What is deep learning?"
    assert body["streaming"] is False
    assert body["text"] == _vllm_text(stack, GREEDY_OPEA)
    int(body["id"], 16)  # hex, as upstream


def _sse_data(stack: Stack, body: dict[str, Any]) -> tuple[str, list[str]]:
    with httpx.stream(
        "POST", stack.usvc_url + "/v1/chat/completions", json=body, timeout=60
    ) as response:
        assert response.status_code == 200, response.read()
        content_type = response.headers["content-type"]
        events = [data for line in response.iter_lines() if (data := line_data(line)) is not None]
    return content_type, events


def test_microservice_opea_form_streaming(stack: Stack) -> None:
    content_type, events = _sse_data(stack, {**GREEDY_OPEA, "streaming": True})
    assert content_type.startswith("text/event-stream")
    assert len(events) >= 2
    assert opea_stream_text(events) == _vllm_text(stack, GREEDY_OPEA)


OPENAI_BODY = {
    "model": MODEL_IN_CONTAINER,
    "messages": [{"role": "user", "content": "What is deep learning?"}],
    "max_tokens": 8,
    "temperature": 0,
}


def test_microservice_openai_form_non_streaming(stack: Stack) -> None:
    body = _chat(stack, {**OPENAI_BODY, "stream": False})
    assert body["object"] == "chat.completion"
    assert isinstance(body["choices"][0]["message"]["content"], str)


def test_microservice_openai_form_streaming(stack: Stack) -> None:
    content_type, events = _sse_data(stack, {**OPENAI_BODY, "stream": True})
    assert content_type.startswith("text/event-stream")
    openai_stream_text(events)  # chat.completion.chunk events, then [DONE]


def test_structured_output_without_triton(stack: Stack) -> None:
    """The image leaves triton out (a GPU compiler, about 1 GB); JSON-schema answers, which use
    xgrammar, still work on CPU."""
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "string", "maxLength": 8}},
        "required": ["answer"],
        "additionalProperties": False,
    }
    response = httpx.post(
        stack.vllm_url + "/v1/chat/completions",
        json={
            "model": MODEL_IN_CONTAINER,
            "messages": [{"role": "user", "content": "Answer in JSON."}],
            "max_tokens": 64,
            "temperature": 0,
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "answer", "schema": schema},
            },
        },
        timeout=120,
    )
    assert response.status_code == 200, response.text
    assert set(json.loads(response.json()["choices"][0]["message"]["content"])) == {"answer"}
    listed = stack.docker(
        "run", "--rm", "--entrypoint", "python3", IMAGES["llm-vllm-model-server"], "-c",
        "import importlib.util as u; print(u.find_spec('triton'))",
    )  # fmt: skip
    assert listed.stdout.strip() == "None", listed.stdout + listed.stderr
