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
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.processes import REPO_ROOT, free_port
from tests.e2e import engine as eng
from tests.markdown import code_blocks, section, shell_commands

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]

STACK_DIR = eng.REPO_ROOT / "docker" / "cpu"


def documented_compose() -> tuple[str, ...]:
    """`docker compose ...` up to `up`, as docs/operating.md prints it for docker/cpu: the test
    runs what operators are told to run."""
    operating = REPO_ROOT / "docs" / "operating.md"
    block = code_blocks(section(operating, "Docker Compose"), "bash")[0]
    lines = [line for command in shell_commands(block) for line in command.splitlines()]
    up = next(line for line in lines if line.startswith("cd docker/cpu") and " up " in line)
    words = shlex.split(up.split(" && ")[-1])
    return tuple(words[: words.index("up")])


# The documented command, run in STACK_DIR.
COMPOSE = documented_compose()
MODEL_IN_CONTAINER = "/data/models/tiny"
# An optional cache of the debootstrap'ed rootfs (saves about a minute per run).
ROOTFS_CACHE = os.environ.get("E2E_ROOTFS_CACHE", "")


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

    def build_in_parallel(self, services: tuple[str, ...], timeout_s: float) -> None:
        """One `compose build SERVICE` per image at once (the classic builder does one at a
        time); logs in test-logs/e2e-build-SERVICE.log."""
        running = {}
        for service in services:
            log = (eng.LOG_DIR / f"e2e-build-{service}.log").open("w")
            process = subprocess.Popen(
                [*COMPOSE, "--progress", "plain", "build", service],
                cwd=STACK_DIR,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            running[service] = (process, log)
        failed = []
        for service, (process, log) in running.items():
            try:
                if process.wait(timeout=timeout_s) != 0:
                    failed.append(service)
            finally:
                if process.poll() is None:
                    process.kill()
                    process.wait()
                log.close()
        assert not failed, f"image build failed for {failed}: see test-logs/e2e-build-*.log"

    def docker(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["docker", *args], env=self.env, capture_output=True, text=True, timeout=60, check=False
        )


def _report(config: pytest.Config, line: str) -> None:
    """One line on the terminal even while pytest captures output, and in the engine log."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"[e2e] {line}")
    eng.LOG_DIR.mkdir(exist_ok=True)
    with (eng.LOG_DIR / "e2e-engine.log").open("a") as log:
        log.write(f"[e2e] {line}\n")


def _skip_or_fail(reason: str) -> None:
    if os.environ.get("E2E_DOCKER", "").strip().lower() == "required":
        pytest.fail(f"e2e required (E2E_DOCKER=required) but: {reason}")
    pytest.skip(f"e2e (real Docker) skipped: {reason}")


@pytest.fixture(scope="module")
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    reason = eng.unavailable_reason()
    if reason is not None:
        _report(request.config, f"skipped: {reason}")
        _skip_or_fail(reason)
    tiny_model: Path = request.getfixturevalue("tiny_model")
    phases = eng.Phases()
    try:
        with eng.private_engine(phases) as engine:
            yield from _run_stack(request, engine, phases, tiny_model, tmp_path_factory)
    except eng.EngineUnavailable as error:
        _report(request.config, f"skipped: {error}")
        _skip_or_fail(str(error))
    finally:
        if phases.seconds:
            _report(request.config, phases.summary())


def _run_stack(
    request: pytest.FixtureRequest,
    engine: eng.Engine,
    phases: eng.Phases,
    tiny_model: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    with phases.phase("base image"):
        eng.script("base-image", eng.BASE_IMAGE, ROOTFS_CACHE, env=engine.env, timeout_s=600)
    with phases.phase("build inputs"):
        eng.script("build-inputs", timeout_s=300)

    data_dir = tmp_path_factory.mktemp("e2e-data")
    shutil.copytree(tiny_model, data_dir / "models" / "tiny")
    vllm_port, usvc_port = free_port(), free_port()
    env = {key: os.environ[key] for key in ("PATH", "HOME", "LANG", "USER") if key in os.environ}
    env.update(engine.env)
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
            "VLLM_START_PERIOD": "600s",  # first start compiles; slow on a busy 2-core host
            # download.pytorch.org is unreachable here: torch comes from docker/build-inputs/.
            "TORCH_INDEX_URL": "",
        }
    )
    stack = Stack(
        engine, env, data_dir, f"http://127.0.0.1:{vllm_port}", f"http://127.0.0.1:{usvc_port}"
    )
    try:
        with phases.phase("build"):
            stack.build_in_parallel(("llm-vllm-model-server", "llm-usvc"), timeout_s=1500)
        with phases.phase("up --wait"):
            up = stack.compose("up", "--wait", "--wait-timeout", "900", "-d", timeout_s=1000)
        assert up.returncode == 0, f"compose up failed:\n{up.stderr[-3000:]}"
        yield stack
    finally:
        logs = stack.compose("logs", "--no-color", "--timestamps")
        (eng.LOG_DIR / "e2e-compose.log").write_text(logs.stdout + logs.stderr)
        with phases.phase("down"):
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


def test_images_are_non_root_with_healthcheck(stack: Stack) -> None:
    images = _inspect(stack, "opea/llm-vllm-cpu:latest", "opea/llm-usvc:latest")
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


def test_microservice_opea_form_non_streaming(stack: Stack) -> None:
    body = _chat(stack, {**OPEA_BODY, "streaming": False})
    assert body["prompt"] == "What is deep learning?"
    assert body["streaming"] is False
    assert isinstance(body["text"], str)
    assert "id" in body


def _sse_data(stack: Stack, body: dict[str, Any]) -> tuple[str, list[str]]:
    with httpx.stream(
        "POST", stack.usvc_url + "/v1/chat/completions", json=body, timeout=60
    ) as response:
        assert response.status_code == 200, response.read()
        content_type = response.headers["content-type"]
        events = [line[len("data:") :].strip() for line in response.iter_lines() if line]
    return content_type, events


def test_microservice_opea_form_streaming(stack: Stack) -> None:
    content_type, events = _sse_data(stack, {**OPEA_BODY, "streaming": True})
    assert content_type.startswith("text/event-stream")
    assert events[-1] == "[DONE]"
    assert len(events) >= 2


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
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
