"""Running ``run_vllm.sh`` for real in tests: against a fake ``docker`` that records what it
was asked (Docker mode), or with ``--native --dry-run``; copies of the repository show the cases
without .venv/ or with changed env files."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from harness.processes import REPO_ROOT, free_port

RUN_VLLM = REPO_ROOT / "run_vllm.sh"
VENV_PYTHON = REPO_ROOT / ".venv" / "bin" / "python"
STACK_PREFIXES = ("LLM_", "VLLM_", "HF_", "HABANA_", "PT_HPU_", "IF_FP8", "STOP_GRACE")

# Each call appends what it was asked and the environment it saw; `info` answers the probes.
FAKE_DOCKER = r"""#!/usr/bin/env bash
case "$1" in
    compose)
        [[ "$2" == version ]] && exit "${FAKE_NO_COMPOSE:-0}"
        { echo "cwd=${PWD}"; echo "args=$*"; env | sort; echo "---"; } >> "${FAKE_LOG}"
        exit 0 ;;
    info)
        [[ -n "${FAKE_INFO_FAIL:-}" ]] && exit 1
        [[ "$*" == *Runtimes* ]] && echo "${FAKE_RUNTIMES:-{\"runc\":{}\}}"
        exit 0 ;;
esac
exit 0
"""


def clean_environ(**extra: str) -> dict[str, str]:
    """This process's environment without the stack's variables, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(STACK_PREFIXES)}
    return {**env, **extra}


def repo_copy(tmp_path: Path, *, venv: bool, env_lines: dict[str, list[str]] | None = None) -> Path:
    """A copy of the repository (code linked, docker/*/.env copied and extended), without
    .venv/ unless ``venv``."""
    root = tmp_path / "repo"
    root.mkdir()
    for name in ("run_vllm.sh", "common", "model_server", "microservice", "launcher", "scripts"):
        (root / name).symlink_to(REPO_ROOT / name)
    if venv:
        (root / ".venv").symlink_to(REPO_ROOT / ".venv")
    for device in ("cpu", "hpu"):
        stack = root / "docker" / device
        stack.mkdir(parents=True)
        shutil.copy(REPO_ROOT / "docker" / device / "docker-compose.yaml", stack)
        text = (REPO_ROOT / "docker" / device / ".env").read_text()
        (stack / ".env").write_text(
            text + "".join(f"{line}\n" for line in (env_lines or {}).get(device, []))
        )
    return root


def run_docker_mode(
    tmp_path: Path, *args: str, script: Path = RUN_VLLM, python3: str | None = None, **env: str
) -> tuple[subprocess.CompletedProcess[str], str]:
    """Run run_vllm.sh with the fake docker first on PATH and none of the stack's variables;
    returns the result and what the fake docker recorded.

    ``python3``: a host `python3` put first on PATH ("venv": .venv's; "broken": one that
    cannot import anything), for the copies of the repository without .venv/.
    """
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    docker = bin_dir / "docker"
    docker.write_text(FAKE_DOCKER)
    docker.chmod(0o755)
    if python3 is not None:
        fake = bin_dir / "python3"
        fake.write_text(
            f'#!/bin/sh\nexec {VENV_PYTHON} "$@"\n' if python3 == "venv" else "#!/bin/sh\nexit 1\n"
        )
        fake.chmod(0o755)
    log = tmp_path / "docker.log"
    base = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "HOME": os.environ.get("HOME", "/root"),
        "FAKE_LOG": str(log),
        "LLM_DATA_DIR": str(tmp_path / "data"),
    }
    result = subprocess.run(
        ["bash", str(script), *args],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return result, log.read_text() if log.exists() else ""


def native_dry_run(*args: str, **env: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """run_vllm.sh --native --dry-run, and its output lines (the .venv/ check's left out)."""
    result = subprocess.run(
        [str(RUN_VLLM), "--native", "--dry-run", *args],
        env=clean_environ(**env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    lines = [line for line in result.stdout.splitlines() if not line.startswith("bootstrap:")]
    return result, lines


def native_env(hf_home: Path, vllm_port: int, model: Path | None = None) -> dict[str, str]:
    """For real native runs: loopback ports of the test's own, the CPU device, nothing from the
    developer's shell; ``model``: served instead of the configured one (``--demo`` chooses its
    own)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLM_", "VLLM_", "HF_"))}
    env.update(
        LLM_DEVICE="cpu",
        LLM_VLLM_HOST="127.0.0.1",
        LLM_VLLM_PORT=str(vllm_port),
        VLLM_CPU_KVCACHE_SPACE="1",
        VLLM_MAX_MODEL_LEN="512",
        LLM_MODEL_SERVER_ENDPOINT=f"http://127.0.0.1:{vllm_port}",
        LLM_USVC_HOST="127.0.0.1",
        LLM_USVC_PORT=str(free_port()),
        HF_HUB_OFFLINE="1",
        HF_HOME=str(hf_home),
        STOP_GRACE_S="30",
    )
    if model is not None:
        env["LLM_VLLM_MODEL_NAME"] = str(model)
    return env


def launcher_lines(stderr: str) -> list[str]:
    """The launcher's own JSON log lines (logger ``run_vllm``) in ``stderr``."""
    return [line for line in stderr.splitlines() if line.startswith("{") and '"run_vllm"' in line]
