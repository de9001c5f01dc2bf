"""The two real services, each started on a free loopback port exactly as production starts them
(``python -m model_server``, ``python -m microservice``), for the tests and the benchmark."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from harness.processes import Server, free_port, python_module, running
from harness.server_envs import microservice_env, vllm_env


@contextlib.contextmanager
def vllm(model: str, hf_home: Path, log_path: Path) -> Iterator[Server]:
    """vLLM CPU on ``model``; yields once ``/health`` answers (loading takes 20-60 s)."""
    port = free_port()
    env = vllm_env(model, port, hf_home)
    with running(python_module("model_server"), env, port, log_path, "/health", 300) as server:
        yield server


@contextlib.contextmanager
def microservice(endpoint: str, model: str, log_path: Path, **extra: str) -> Iterator[Server]:
    """The microservice in front of ``endpoint``; ``extra`` overrides any variable."""
    port = free_port()
    env = microservice_env(model, endpoint, port, **extra)
    with running(python_module("microservice"), env, port, log_path, "/health", 60) as server:
        yield server
