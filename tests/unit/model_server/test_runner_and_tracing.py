"""VLLM_RUNNER, VLLM_CONVERT, VLLM_SCHEDULING_POLICY and the OTLP settings: absent from the
vLLM command by default, rendered when set, and a wrong value refused with one line before vLLM
starts."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from common.config_errors import ConfigError
from model_server.__main__ import load_settings
from model_server.render import render

OTEL = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL")
NEW_FLAGS = ("--runner", "--convert", "--otlp-traces-endpoint")
MODEL = {"LLM_VLLM_MODEL_NAME": "BAAI/bge-base-en-v1.5"}


@pytest.fixture
def env(clean_env: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """clean_env without the developer's own OpenTelemetry variables either."""
    for name in OTEL:
        clean_env.delenv(name, raising=False)
    return clean_env


def flag(args: list[str], name: str) -> str | None:
    return args[args.index(name) + 1] if name in args else None


def test_defaults_render_none_of_the_new_flags(env: pytest.MonkeyPatch) -> None:
    plan = render(load_settings(None))
    assert not set(NEW_FLAGS) & set(plan.vllm_args)
    assert "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL" not in plan.env


def test_the_embedding_model_is_for_run_vllm_only(env: pytest.MonkeyPatch) -> None:
    """One `python -m model_server` serves one model: LLM_EMBEDDING_* change nothing it runs."""
    plain = render(load_settings(None))
    env.setenv("LLM_EMBEDDING_MODEL", "BAAI/bge-base-en-v1.5")
    env.setenv("LLM_EMBEDDING_PORT", "8100")
    assert render(load_settings(None)) == plain


@pytest.mark.parametrize(
    ("variables", "flags", "added_env"),
    [
        ({"VLLM_RUNNER": "pooling", **MODEL}, {"--runner": "pooling", "--convert": None}, {}),
        ({"VLLM_RUNNER": "Generate"}, {"--runner": "generate"}, {}),
        ({"VLLM_CONVERT": "embed"}, {"--runner": None, "--convert": "embed"}, {}),
        (
            {"VLLM_RUNNER": "pooling", "VLLM_CONVERT": "classify", **MODEL},
            {"--runner": "pooling", "--convert": "classify"},
            {},
        ),
        ({"VLLM_CONVERT": "none"}, {"--convert": "none"}, {}),
        (
            {"VLLM_RUNNER": "auto", "VLLM_CONVERT": "AUTO"},
            {"--runner": None, "--convert": None},
            {},
        ),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"},
            {"--otlp-traces-endpoint": "http://collector:4318/v1/traces"},
            {"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf"},
        ),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "https://collector.example/otlp/"},
            {"--otlp-traces-endpoint": "https://collector.example/otlp/v1/traces"},
            {"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf"},
        ),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/v1/traces"},
            {"--otlp-traces-endpoint": "http://collector:4318/v1/traces"},
            {"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf"},
        ),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "GRPC"},
            {"--otlp-traces-endpoint": "http://c:4317"},
            {"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"},
        ),
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, {"--otlp-traces-endpoint": None}, {}),
    ],
)  # fmt: skip
def test_set_values_reach_vllm(
    env: pytest.MonkeyPatch,
    variables: dict[str, str],
    flags: dict[str, str | None],
    added_env: dict[str, str],
) -> None:
    for name, value in variables.items():
        env.setenv(name, value)
    plan = render(load_settings(None))
    assert {name: flag(plan.vllm_args, name) for name in flags} == flags
    assert {k: v for k, v in plan.env.items() if k.startswith("OTEL_")} == added_env


@pytest.mark.parametrize(
    ("variables", "fragment"),
    [
        ({"VLLM_RUNNER": "draft"}, "VLLM_RUNNER='draft'"),
        ({"VLLM_RUNNER": "embedding"}, "'auto', 'generate' or 'pooling'"),
        ({"VLLM_CONVERT": "reward"}, "VLLM_CONVERT='reward'"),
        ({"VLLM_CONVERT": "embedding"}, "'auto', 'none', 'embed' or 'classify'"),
        (
            {"VLLM_RUNNER": "generate", "VLLM_CONVERT": "embed"},
            "VLLM_CONVERT=embed makes a pooling model: it needs VLLM_RUNNER=pooling",
        ),
        ({"VLLM_RUNNER": "pooling"}, "VLLM_RUNNER=pooling needs LLM_VLLM_MODEL_NAME"),
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, "OTEL_EXPORTER_OTLP_PROTOCOL='http/json'"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"}, "OTEL_EXPORTER_OTLP_ENDPOINT="),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a b"}, "http(s)://host:port"),
    ],
)
def test_a_wrong_value_is_one_line(
    env: pytest.MonkeyPatch, variables: dict[str, str], fragment: str
) -> None:
    for name, value in variables.items():
        env.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_settings(None)
    message = str(caught.value)
    assert fragment in message
    assert "\n" not in message and message.startswith("invalid configuration: ")


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({}, ""),
        (
            {"VLLM_RUNNER": "pooling", "VLLM_CONVERT": "embed", **MODEL},
            "--runner pooling --convert embed",
        ),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"},
            "--otlp-traces-endpoint http://127.0.0.1:4318/v1/traces",
        ),
    ],
)
def test_dry_run_prints_the_flags(
    env: pytest.MonkeyPatch, variables: dict[str, str], expected: str
) -> None:
    """The command `python -m model_server` would exec: the flags appear there, or not at all."""
    result = subprocess.run(
        [sys.executable, "-m", "model_server", "--dry-run"],
        env={**os.environ, **variables},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    for name in NEW_FLAGS:
        assert (name in result.stdout) == (name in expected), name
    assert expected in result.stdout
    tracing = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=http/protobuf" in result.stdout
    assert tracing == ("OTEL_EXPORTER_OTLP_ENDPOINT" in variables)


def test_bad_runner_exits_with_one_line(env: pytest.MonkeyPatch) -> None:
    env.setenv("VLLM_RUNNER", "pool")
    result = subprocess.run(
        [sys.executable, "-m", "model_server", "--dry-run"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "VLLM_RUNNER='pool'" in lines[0], result.stderr


def test_the_priority_scheduler_is_rendered_only_when_asked(env: pytest.MonkeyPatch) -> None:
    assert "--scheduling-policy" not in render(load_settings(None)).vllm_args
    env.setenv("VLLM_SCHEDULING_POLICY", "priority")
    assert flag(render(load_settings(None)).vllm_args, "--scheduling-policy") == "priority"
    env.setenv("VLLM_SCHEDULING_POLICY", "urgent")
    with pytest.raises(ConfigError, match="VLLM_SCHEDULING_POLICY"):
        load_settings(None)
