"""Fixtures shared by every tier: the tiny model and one real vLLM CPU server per session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import servers
from harness.processes import Server
from harness.server_envs import QUICK_BOOT
from harness.tiny_lora import LISTED_ADAPTER
from tests.config_env import is_config
from tests.otlp_receiver import OtlpReceiver


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """An environment with none of the stack's variables set, for settings tests."""
    for name in list(os.environ):
        if is_config(name):
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


# The session's vLLM servers, by fixture name; booted together, on first use, those that the
# session's tests use.
SESSION_VLLMS = (
    "vllm_server", "vllm_embedding_server", "vllm_rerank_server", "vllm_vision_server",
    "vllm_lora_server",
)  # fmt: skip


@pytest.fixture(scope="session")
def tiny_reranker(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny offline cross-encoder (``harness.tiny_reranker``), built once per session."""
    from harness.tiny_reranker import build

    return build(tmp_path_factory.mktemp("tiny-reranker"))


@pytest.fixture(scope="session")
def tiny_vlm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny offline vision-language model (``harness.tiny_vlm``), built once per session."""
    from harness.tiny_vlm import build

    return build(tmp_path_factory.mktemp("tiny-vlm"))


@pytest.fixture(scope="session")
def tiny_adapters(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two LoRA adapters of the tiny model (``harness.tiny_lora``, seeds 1 and 2): the first
    listed at start by the LoRA server, the second for loading at run time."""
    from harness.tiny_lora import build

    root = tmp_path_factory.mktemp("tiny-lora")
    return build(root / "seed-1", tiny_model, seed=1), build(root / "seed-2", tiny_model, seed=2)


@pytest.fixture(scope="session")
def session_vllms(
    request: pytest.FixtureRequest,
    tiny_model: Path,
    tmp_path_factory: pytest.TempPathFactory,
    otlp_receiver: OtlpReceiver,
) -> Iterator[dict[str, Server]]:
    """Real vLLM CPU servers on the tiny model, started through ``python -m model_server``, at
    once: they load in parallel, each import on a core of its own."""
    used = [
        name
        for name in SESSION_VLLMS
        if any(name in getattr(item, "fixturenames", ()) for item in request.session.items)
    ]
    names = used or list(SESSION_VLLMS)
    reranker = request.getfixturevalue("tiny_reranker") if "vllm_rerank_server" in names else ""
    vlm = request.getfixturevalue("tiny_vlm") if "vllm_vision_server" in names else ""
    lora = request.getfixturevalue("tiny_adapters") if "vllm_lora_server" in names else ("",)
    boots = {
        "vllm_server": servers.VllmBoot(
            tmp_path_factory.mktemp("hf-home"),
            Path("test-logs") / "vllm-server.log",
            {
                **QUICK_BOOT,
                # compact JSON: the random-weight model would pad structured outputs with blanks
                "VLLM_JSON_COMPACT": "true",
                "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_receiver.endpoint,
                # POST /reset_prefix_cache, so a test sees vLLM's AllBlocksCleared event
                "VLLM_SERVER_DEV_MODE": "1",
            },
            port_variables=("VLLM_KV_EVENTS_PORT",),  # its KV-cache events, on a port of its own
        ),
        "vllm_embedding_server": servers.VllmBoot(
            tmp_path_factory.mktemp("hf-home-embedding"),
            Path("test-logs") / "vllm-embedding-server.log",
            {
                **QUICK_BOOT,
                "VLLM_RUNNER": "pooling",
                "VLLM_CONVERT": "embed",
                # On hosts with AMX, vLLM 0.32's bf16 CPU attention runs AMX tiles; in the
                # pooling runner its engine core then sometimes dies of SIGILL on the first
                # request (docs/operating.md). float32 takes the AVX-512 kernel instead.
                "VLLM_DTYPE": "float32",
            },
        ),
        "vllm_rerank_server": servers.VllmBoot(
            tmp_path_factory.mktemp("hf-home-rerank"),
            Path("test-logs") / "vllm-rerank-server.log",
            {**QUICK_BOOT, "VLLM_RUNNER": "pooling", "VLLM_DTYPE": "float32"},  # as embeddings
            model=str(reranker),
        ),
        "vllm_vision_server": servers.VllmBoot(  # vLLM's defaults take images: no flag
            tmp_path_factory.mktemp("hf-home-vision"),
            Path("test-logs") / "vllm-vision-server.log",
            QUICK_BOOT,
            model=str(vlm),
        ),
        "vllm_lora_server": servers.VllmBoot(  # the tiny model with LoRA on
            tmp_path_factory.mktemp("hf-home-lora"),
            Path("test-logs") / "vllm-lora-server.log",
            {
                **QUICK_BOOT,
                "VLLM_LORA_MODULES": f"{LISTED_ADAPTER}={lora[0]}",
                "VLLM_MAX_LORAS": "2",
                "VLLM_MAX_LORA_RANK": "8",
                "VLLM_ALLOW_RUNTIME_LORA": "true",
            },
        ),
    }
    with servers.vllm_together(str(tiny_model), [boots[name] for name in names]) as started:
        yield dict(zip(names, started, strict=True))


def _booted(session_vllms: dict[str, Server], name: str) -> Server:
    if name not in session_vllms:
        pytest.fail(f"{name} was not booted with the session's servers: name it as an argument")
    return session_vllms[name]


@pytest.fixture(scope="session")
def vllm_server(session_vllms: dict[str, Server]) -> Server:
    """The session's chat server (traces exported to the session's OTLP stand-in)."""
    return _booted(session_vllms, "vllm_server")


@pytest.fixture(scope="session")
def vllm_embedding_server(session_vllms: dict[str, Server]) -> Server:
    """The tiny model served for embeddings (``VLLM_RUNNER=pooling``, ``VLLM_CONVERT=embed``)."""
    return _booted(session_vllms, "vllm_embedding_server")


@pytest.fixture(scope="session")
def vllm_rerank_server(session_vllms: dict[str, Server]) -> Server:
    """The tiny cross-encoder served for /rerank and /score (``VLLM_RUNNER=pooling``)."""
    return _booted(session_vllms, "vllm_rerank_server")


@pytest.fixture(scope="session")
def vllm_vision_server(session_vllms: dict[str, Server]) -> Server:
    """The tiny vision-language model, for chat with image parts."""
    return _booted(session_vllms, "vllm_vision_server")


@pytest.fixture(scope="session")
def vllm_lora_server(session_vllms: dict[str, Server]) -> Server:
    """The tiny model with LoRA on: ``tiny_lora.LISTED_ADAPTER`` listed at start, run-time loading
    allowed (tests unload what they load)."""
    return _booted(session_vllms, "vllm_lora_server")
