"""run_vllm.sh in Docker mode, against a fake `docker` that records what it was asked to do."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]
RUN_VLLM = REPO_ROOT / "run_vllm.sh"

FAKE_DOCKER = r"""#!/usr/bin/env bash
case "$1" in
    compose)
        [[ "$2" == version ]] && exit "${FAKE_NO_COMPOSE:-0}"
        { echo "cwd=${PWD}"; echo "args=$*"; env | sort; } > "${FAKE_LOG}"
        exit 0 ;;
    info)
        [[ -n "${FAKE_INFO_FAIL:-}" ]] && exit 1
        [[ "$*" == *Runtimes* ]] && echo "${FAKE_RUNTIMES:-{\"runc\":{}\}}"
        exit 0 ;;
esac
exit 0
"""


def run(tmp_path: Path, *args: str, **env: str) -> tuple[subprocess.CompletedProcess[str], str]:
    """Run run_vllm.sh with the fake docker first on PATH and none of the stack's variables."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    docker = bin_dir / "docker"
    docker.write_text(FAKE_DOCKER)
    docker.chmod(0o755)
    log = tmp_path / "docker.log"
    base = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "HOME": os.environ.get("HOME", "/root"),
        "FAKE_LOG": str(log),
        "LLM_DATA_DIR": str(tmp_path / "data"),
    }
    result = subprocess.run(
        ["bash", str(RUN_VLLM), *args],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return result, log.read_text() if log.exists() else ""


def test_cpu_stack_runs_the_upstream_compose_command(tmp_path: Path) -> None:
    result, log = run(tmp_path, LLM_DEVICE="cpu")
    assert result.returncode == 0, result.stderr
    assert f"cwd={REPO_ROOT}/docker/cpu" in log
    assert "args=compose --env-file=.env -f docker-compose.yaml up --build -d" in log
    assert f"UID={os.getuid()}" in log
    assert (tmp_path / "data").is_dir()


def test_env_file_is_loaded_and_exported_variables_win(tmp_path: Path) -> None:
    result, log = run(tmp_path, LLM_DEVICE="cpu", LLM_VLLM_MODEL_NAME="/models/mine")
    assert result.returncode == 0, result.stderr
    assert "LLM_VLLM_MODEL_NAME=/models/mine" in log.splitlines()
    assert "LLM_USVC_PORT=9000" in log.splitlines()  # from docker/cpu/.env


def test_fp8_selects_the_fp8_profile_on_hpu(tmp_path: Path) -> None:
    result, log = run(tmp_path, LLM_DEVICE="hpu", IF_FP8_QUANTIZATION="true")
    assert result.returncode == 0, result.stderr
    assert f"cwd={REPO_ROOT}/docker/hpu" in log
    assert "args=compose --profile fp8 --env-file=.env -f docker-compose.yaml up --build -d" in log
    assert "IF_FP8_QUANTIZATION=true" in log.splitlines()


def test_no_fp8_profile_by_default_on_hpu(tmp_path: Path) -> None:
    result, log = run(tmp_path, LLM_DEVICE="HPU")
    assert result.returncode == 0, result.stderr
    assert "--profile" not in log


def test_hpu_is_detected_from_a_habana_docker_runtime(tmp_path: Path) -> None:
    result, log = run(tmp_path, FAKE_RUNTIMES='{"habana":{},"runc":{}}')
    assert result.returncode == 0, result.stderr
    assert f"cwd={REPO_ROOT}/docker/hpu" in log


def test_cpu_is_detected_without_gaudi(tmp_path: Path) -> None:
    if Path("/dev/accel").exists() or Path("/usr/bin/hl-smi").exists():
        pytest.skip("this machine has a Gaudi")
    result, log = run(tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"cwd={REPO_ROOT}/docker/cpu" in log


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"LLM_DEVICE": "tpu"}, "LLM_DEVICE='tpu' is not supported (allowed: cpu, hpu)"),
        (
            {"LLM_DEVICE": "cpu", "IF_FP8_QUANTIZATION": "true"},
            "IF_FP8_QUANTIZATION=true needs LLM_DEVICE=hpu",
        ),
        ({"LLM_DEVICE": "cpu", "FAKE_INFO_FAIL": "1"}, "cannot reach the Docker engine"),
        ({"LLM_DEVICE": "cpu", "FAKE_NO_COMPOSE": "1"}, "Docker Compose v2 is missing"),
        (
            {"LLM_DEVICE": "cpu", "LLM_DATA_DIR": "/proc/no/such/data"},
            "cannot create the data folder /proc/no/such/data",
        ),
    ],
)
def test_one_line_errors(tmp_path: Path, env: dict[str, str], message: str) -> None:
    result, log = run(tmp_path, **env)
    assert result.returncode != 0
    assert log == ""  # compose was never started
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0] == f"run_vllm.sh: error: {message}" or message in lines[0]


def test_missing_docker_is_a_one_line_error(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"  # the few tools run_vllm.sh needs, and no docker
    bin_dir.mkdir()
    for name in ("dirname", "date", "mkdir"):
        (bin_dir / name).symlink_to(
            f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else f"/bin/{name}"
        )
    result = subprocess.run(
        ["/bin/bash", str(RUN_VLLM)],
        env={"PATH": str(bin_dir), "LLM_DEVICE": "cpu", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode != 0
    assert result.stderr.strip() == "run_vllm.sh: error: docker is not installed (or use --native)"


def test_help(tmp_path: Path) -> None:
    result, log = run(tmp_path, "--help")
    assert result.returncode == 0
    assert "LLM_DEVICE" in result.stdout and "IF_FP8_QUANTIZATION" in result.stdout
    assert log == ""
