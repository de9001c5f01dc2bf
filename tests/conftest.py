"""Fixtures shared by every tier: the tiny model and one real vLLM CPU server per session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import servers
from harness.processes import Server
from tests.otlp_receiver import OtlpReceiver

# Variables that would leak the developer's own configuration into the tests.
CONFIG_PREFIXES = (
    "LLM_",
    "VLLM_",
    "HF_",
    "HABANA_",
    "PT_HPU_",
    "QUANT_CONFIG",
    "IF_FP8",
    "FP8_",
    "OTEL_",
)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """An environment with none of the stack's variables set, for settings tests."""
    import os

    for name in list(os.environ):
        if name.upper().startswith(CONFIG_PREFIXES) or name == "OMP_NUM_THREADS":
            monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny offline Llama model, built once per session."""
    from model_server.tiny_model import build

    return build(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def otlp_receiver() -> Iterator[OtlpReceiver]:
    """The session's OTLP collector STAND-IN (tests/otlp_receiver.py), which the session's vLLM
    exports its request spans to, so a test can see a trace continue into vLLM."""
    with OtlpReceiver() as receiver:
        yield receiver


@pytest.fixture(scope="session")
def vllm_server(
    tiny_model: Path, tmp_path_factory: pytest.TempPathFactory, otlp_receiver: OtlpReceiver
) -> Iterator[Server]:
    """A real vLLM CPU server on the tiny model, started through ``python -m model_server``."""
    hf_home = tmp_path_factory.mktemp("hf-home")
    log_path = Path("test-logs") / "vllm-server.log"
    env = {
        # compact JSON: the random-weight model would pad structured outputs with blanks
        "VLLM_JSON_COMPACT": "true",
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_receiver.endpoint,
        # eager: it boots in half the time; vLLM's compiled graphs (the default) are exercised
        # by the Helm pod of tests/e2e and by `make bench`, which measures the default
        "VLLM_ENFORCE_EAGER": "true",
    }
    with servers.vllm(str(tiny_model), hf_home, log_path, **env) as server:
        yield server


@pytest.fixture(scope="session")
def vllm_embedding_server(
    tiny_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """The tiny model served for embeddings (``VLLM_RUNNER=pooling``, ``VLLM_CONVERT=embed``)
    by a second real vLLM CPU server, started through ``python -m model_server``."""
    hf_home = tmp_path_factory.mktemp("hf-home-embedding")
    log_path = Path("test-logs") / "vllm-embedding-server.log"
    # eager: no graph compilation, so this second server boots in seconds, not minutes
    embedding = {"VLLM_RUNNER": "pooling", "VLLM_CONVERT": "embed", "VLLM_ENFORCE_EAGER": "true"}
    with servers.vllm(str(tiny_model), hf_home, log_path, **embedding) as server:
        yield server
