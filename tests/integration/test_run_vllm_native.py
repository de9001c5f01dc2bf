"""`./run_vllm.sh --native`: wrong configuration, or a model that is not there, stops it at once
with one line, before vLLM loads anything.

The full native stack (`--native --demo`: the tiny model, vLLM, then the microservice, SIGTERM
stopping both) is exercised in tests/integration/microservice/test_native_stack.py, which
starts it once for every check.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from harness.processes import free_port
from model_server.model_source import DEMO_COMMAND
from tests.run_vllm_script import RUN_VLLM, launcher_lines, native_env

pytestmark = pytest.mark.integration

SCRIPT = str(RUN_VLLM)


def run_script(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SCRIPT, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.parametrize(
    ("name", "value", "line"),
    [
        ("VLLM_TP_SIZE", "0", "model_server: invalid configuration: VLLM_TP_SIZE='0'"),
        ("LLM_CONNECTOR", "nope", "microservice: invalid configuration: LLM_CONNECTOR='nope'"),
    ],
)
def test_wrong_value_stops_native_start_with_one_line(
    tmp_path: Path, name: str, value: str, line: str
) -> None:
    env = native_env(tmp_path, free_port())
    env[name] = value
    result = run_script(env, "--native")
    assert result.returncode == 2
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith(line), result.stderr


def test_a_model_that_is_not_there_stops_native_start_with_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    result = run_script(native_env(tmp_path, free_port(), missing), "--native")
    assert result.returncode == 2
    own = launcher_lines(result.stderr)
    lines = [line for line in result.stderr.splitlines() if line not in own]
    assert lines == [
        f"model_server: model '{missing}' is not on disk (looked in {missing}) and cannot be "
        f"downloaded (it is a local path); try the built-in tiny model: {DEMO_COMMAND}"
    ], result.stderr


def test_unknown_device_is_one_line(tmp_path: Path) -> None:
    env = {"PATH": os.environ["PATH"], "LLM_DEVICE": "tpu"}
    result = run_script(env, "--native")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "model_server: invalid configuration: LLM_DEVICE='tpu': Input should be 'cpu' or 'hpu'"
    ]


def test_help() -> None:
    result = run_script({"PATH": os.environ["PATH"]}, "--help")
    assert result.returncode == 0
    assert "--native" in result.stdout and "--demo" in result.stdout
    assert "LLM_DEVICE" in result.stdout
