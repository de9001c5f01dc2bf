"""`./run_vllm.sh --native`: wrong configuration stops it at once with one line.

The full native stack (vLLM, then the microservice, SIGTERM stopping both) is exercised in
tests/integration/microservice/test_native_stack.py, which starts it once for both checks.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.helpers.processes import REPO_ROOT, free_port

pytestmark = pytest.mark.integration

SCRIPT = str(REPO_ROOT / "run_vllm.sh")


def native_env(tiny_model: Path, hf_home: Path, vllm_port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLM_", "VLLM_"))}
    env.update(
        LLM_DEVICE="cpu",
        LLM_VLLM_MODEL_NAME=str(tiny_model),
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
    return env


def run_script(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SCRIPT, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_wrong_value_stops_native_start_with_one_line(tiny_model: Path, tmp_path: Path) -> None:
    env = native_env(tiny_model, tmp_path, free_port())
    env["VLLM_TP_SIZE"] = "0"
    result = run_script(env, "--native")
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if "invalid configuration" in line]
    assert len(errors) == 1 and "VLLM_TP_SIZE='0'" in errors[0], result.stderr


def test_unknown_device_is_one_line(tmp_path: Path) -> None:
    env = {"PATH": os.environ["PATH"], "LLM_DEVICE": "tpu"}
    result = run_script(env, "--native")
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "run_vllm.sh: error: LLM_DEVICE='tpu' is not supported (allowed: cpu, hpu)"
    ]


def test_help() -> None:
    result = run_script({"PATH": os.environ["PATH"]}, "--help")
    assert result.returncode == 0
    assert "--native" in result.stdout and "LLM_DEVICE" in result.stdout
