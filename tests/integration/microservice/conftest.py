"""Microservice processes (``python -m microservice``) in front of the session's real vLLM.

One process per connector for the session; extra ones (stand-in upstream, special settings) are
started by the tests that need them. Every process is stopped by its PID.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.helpers.processes import Server, free_port, python_module, running
from tests.helpers.server_envs import microservice_env

CONNECTORS = ("generic", "langchain")


@contextmanager
def microservice(name: str, endpoint: str, model: str, **extra: str) -> Iterator[Server]:
    """Start ``python -m microservice`` on a free port; yield once its liveness answers."""
    port = free_port()
    env = microservice_env(model, endpoint, port, **extra)
    log_path = Path("test-logs") / f"microservice-{name}.log"
    with running(python_module("microservice"), env, port, log_path, "/health", 60) as server:
        yield server


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
def standin_upstream() -> Iterator[Server]:
    """The fault-injecting STAND-IN for vLLM (see standin_upstream.py); not the real server."""
    port = free_port()
    args = python_module("tests.integration.microservice.standin_upstream", str(port))
    log_path = Path("test-logs") / "standin-upstream.log"
    with running(args, {}, port, log_path, "/v1/models", 30) as server:
        yield server


@pytest.fixture(scope="session", params=CONNECTORS)
def usvc_on_standin(request: pytest.FixtureRequest, standin_upstream: Server) -> Iterator[Server]:
    """The microservice, per connector, in front of the stand-in, with a 1 s upstream timeout."""
    with microservice(
        f"standin-{request.param}",
        standin_upstream.base_url,
        "standin-model",
        LLM_CONNECTOR=request.param,
        LLM_REQUEST_TIMEOUT_S="1",
        LLM_HEALTH_CACHE_S="2",
    ) as server:
        yield server
