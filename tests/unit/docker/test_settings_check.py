"""`python -m <service> --check`: an operator's check of a configuration, by the service's own
rules (the launcher loads the same settings directly).

It prints the validated values as NAME=value lines (secrets left out) and exits 0, or prints
the one-line error and exits 2.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from harness.processes import REPO_ROOT
from microservice.__main__ import main as microservice_main
from model_server.__main__ import main as model_server_main

Main = Callable[[list[str] | None], int]


def values(output: str) -> dict[str, str]:
    lines = output.splitlines()
    assert all("=" in line for line in lines), output
    return dict(line.split("=", 1) for line in lines)


def test_model_server_check_prints_the_validated_values(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clean_env.setenv("LLM_DEVICE", "HPU")
    clean_env.setenv("IF_FP8_QUANTIZATION", "yes")
    clean_env.setenv("HF_TOKEN", "hf_secret")
    env_file = REPO_ROOT / "docker" / "hpu" / ".env"
    assert model_server_main(["--check", "--env-file", str(env_file)]) == 0
    out = capsys.readouterr().out
    got = values(out)
    assert got["LLM_DEVICE"] == "hpu"
    assert got["IF_FP8_QUANTIZATION"] == "true"
    assert got["LLM_VLLM_PORT"] == "8008"  # from the env file
    assert got["VLLM_MAX_NUM_SEQS"] == ""  # unset
    assert "HF_TOKEN" not in got and "hf_secret" not in out


def test_microservice_check_prints_the_validated_values(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clean_env.setenv("LLM_VLLM_MODEL_NAME", "/models/tiny")
    clean_env.setenv("LLM_USVC_PORT", "9123")
    env_file = REPO_ROOT / "docker" / "cpu" / ".env"
    assert microservice_main(["--check", "--env-file", str(env_file)]) == 0
    got = values(capsys.readouterr().out)
    assert got["LLM_USVC_PORT"] == "9123"
    assert got["LLM_MODEL_NAME"] == "/models/tiny"  # follows the model server's model
    assert got["LLM_CONNECTOR"] == "generic"


@pytest.mark.parametrize(
    ("main", "name", "value", "line"),
    [
        (model_server_main, "VLLM_TP_SIZE", "0", "model_server: invalid configuration: "),
        (microservice_main, "LLM_USVC_PORT", "0", "microservice: invalid configuration: "),
    ],
)
def test_check_refuses_a_wrong_value_with_one_line(
    clean_env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    main: Main,
    name: str,
    value: str,
    line: str,
) -> None:
    clean_env.setenv(name, value)
    assert main(["--check"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"{line}{name}={value!r}")
    assert captured.err.count("\n") == 1


def test_check_needs_no_model_and_no_network(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clean_env.setenv("LLM_VLLM_MODEL_NAME", "/no/such/model")
    assert model_server_main(["--check"]) == 0
    assert values(capsys.readouterr().out)["LLM_VLLM_MODEL_NAME"] == "/no/such/model"
