"""Microservice processes (``python -m microservice``) in front of the session's real vLLM.

One process per connector for the session; extra ones (stand-in model server, special settings) are
started by the tests that need them. Every process is stopped by its PID.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from harness.processes import Server, free_port, python_module, running
from tests.integration.microservice.helpers import microservice
from tests.integration.microservice.second_vllm import SecondVllm, warm_up

CONNECTORS = ("generic", "langchain")


@pytest.fixture(scope="session")
def usvc_generic(vllm_server: Server, tiny_model: Path) -> Iterator[Server]:
    with microservice("generic", vllm_server.base_url, str(tiny_model)) as server:
        yield server


@pytest.fixture(scope="session")
def usvc_langchain(vllm_server: Server, tiny_model: Path) -> Iterator[Server]:
    with microservice(
        "langchain", vllm_server.base_url, str(tiny_model), LLM_CONNECTOR="LangChain"
    ) as server:
        yield server


@pytest.fixture(params=CONNECTORS)
def usvc(request: pytest.FixtureRequest) -> Server:
    """The microservice, once per connector."""
    server: Server = request.getfixturevalue(f"usvc_{request.param}")
    return server


@pytest.fixture(scope="session")
def standin_model_server() -> Iterator[Server]:
    """The fault-injecting STAND-IN for vLLM (standin_model_server_http.py); not the real one."""
    port = free_port()
    args = python_module("tests.integration.microservice.standin_model_server_http", str(port))
    log_path = Path("test-logs") / "standin-model-server.log"
    with running(args, {}, port, log_path, "/v1/models", 30) as server:
        yield server


@pytest.fixture(scope="session", params=CONNECTORS)
def usvc_on_standin(
    request: pytest.FixtureRequest, standin_model_server: Server
) -> Iterator[Server]:
    """The microservice, per connector, in front of the stand-in, with a 1 s request timeout."""
    with microservice(
        f"standin-{request.param}",
        standin_model_server.base_url,
        "standin-model",
        LLM_CONNECTOR=request.param,
        LLM_REQUEST_TIMEOUT_S="1",
        LLM_HEALTH_CACHE_S="2",
        # No background probes: the readiness-cache test counts the stand-in's /health calls.
        LLM_PROBE_INTERVAL_S="3600",
    ) as server:
        yield server


@pytest.fixture(scope="package")
def vllm_b(
    vllm_server: Server, tiny_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SecondVllm]:
    """vLLM B, booted once for every test of several replicas in this package."""
    port = urlsplit(vllm_server.base_url).port
    assert port is not None
    second = SecondVllm(tiny_model, port, tmp_path_factory.mktemp("hf-home-b"))
    second.start()
    warm_up(second.base_url, str(tiny_model))
    try:
        yield second
    finally:
        second.kill()
