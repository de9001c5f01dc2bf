"""Microservice settings: upstream names and defaults, strict booleans, one-line refusals."""

from __future__ import annotations

import subprocess
import sys

import pytest

from common.config_errors import ConfigError
from common.constants import DEFAULT_MODEL
from harness.processes import REPO_ROOT
from microservice.settings import load_settings


def test_defaults_match_design(clean_env: pytest.MonkeyPatch) -> None:
    s = load_settings()
    assert s.llm_model_name == DEFAULT_MODEL
    assert s.llm_connector == "generic"
    assert s.llm_model_server_endpoint == "http://localhost:8008"
    assert (s.llm_usvc_host, s.llm_usvc_port) == ("0.0.0.0", 9000)
    assert s.llm_disable_streaming is False and s.llm_output_guard_exists is False


def test_model_name_falls_back_to_the_model_servers(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("LLM_VLLM_MODEL_NAME", "/models/tiny")
    assert load_settings().llm_model_name == "/models/tiny"
    clean_env.setenv("LLM_MODEL_NAME", "explicit")
    assert load_settings().llm_model_name == "explicit"


def test_connector_any_case_and_endpoint_trailing_slash(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("LLM_CONNECTOR", " LangChain ")
    clean_env.setenv("LLM_MODEL_SERVER_ENDPOINT", "http://vllm:8008/")
    s = load_settings()
    assert s.llm_connector == "langchain"
    assert s.llm_model_server_endpoint == "http://vllm:8008"


@pytest.mark.parametrize(
    ("word", "value"),
    [("true", True), ("1", True), ("YES", True), ("On", True), ("false", False), ("0", False),
     ("No", False), ("OFF", False)],
)  # fmt: skip
def test_booleans_usual_spellings(clean_env: pytest.MonkeyPatch, word: str, value: bool) -> None:
    clean_env.setenv("LLM_DISABLE_STREAMING", word)
    clean_env.setenv("LLM_OUTPUT_GUARD_EXISTS", word)
    s = load_settings()
    assert s.llm_disable_streaming is value and s.llm_output_guard_exists is value


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("LLM_CONNECTOR", "openai"),
        ("LLM_MODEL_SERVER", "tgi"),
        ("LLM_USVC_PORT", "70000"),
        ("LLM_USVC_PORT", "http"),
        ("LLM_DISABLE_STREAMING", "False-ish"),
        ("LLM_OUTPUT_GUARD_EXISTS", "2"),
        ("LLM_MODEL_SERVER_ENDPOINT", "localhost:8008"),
        ("OPEA_LOGGER_LEVEL", "LOUD"),
        ("LLM_REQUEST_TIMEOUT_S", "0"),
    ],
)
def test_wrong_value_is_one_line_naming_it(
    clean_env: pytest.MonkeyPatch, name: str, value: str
) -> None:
    clean_env.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert f"{name}={value!r}" in message and "\n" not in message


def test_python_m_microservice_exits_2_with_one_line(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("LLM_CONNECTOR", "openai")
    result = subprocess.run(
        [sys.executable, "-m", "microservice"],
        capture_output=True, text=True, timeout=60, cwd=REPO_ROOT, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "microservice: invalid configuration: LLM_CONNECTOR='openai': "
        "Input should be 'generic' or 'langchain'"
    ]
