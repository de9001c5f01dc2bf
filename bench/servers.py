"""The real processes the benchmark measures, each started on a free loopback port.

Reuses the test suite's ``running()`` (new process group, polled until healthy, stopped by PID
with its children), so the benchmark starts servers exactly as the integration tests do.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from tests.helpers.processes import Server, free_port, python_module, running
from tests.helpers.server_envs import microservice_env, vllm_env


@contextlib.contextmanager
def vllm(model_dir: Path, work: Path) -> Iterator[Server]:
    """vLLM CPU on the tiny model, through ``python -m model_server`` as in production."""
    port = free_port()
    env = vllm_env(str(model_dir), port, work / "hf-home")
    args = python_module("model_server")
    with running(args, env, port, work / "logs" / "vllm.log", "/health", 300) as server:
        yield server


@contextlib.contextmanager
def microservice(
    name: str, endpoint: str, model: str, work: Path, **extra: str
) -> Iterator[Server]:
    """``python -m microservice`` with its shipped defaults (INFO logs included)."""
    port = free_port()
    env = microservice_env(model, endpoint, port, **extra)
    log = work / "logs" / f"microservice-{name}.log"
    with running(python_module("microservice"), env, port, log, "/health", 60) as server:
        yield server


@contextlib.contextmanager
def passthrough(name: str, endpoint: str, work: Path) -> Iterator[Server]:
    """The REFERENCE FLOOR (bench/passthrough.py), not a product."""
    port = free_port()
    args = python_module("bench.passthrough", endpoint, str(port))
    log = work / "logs" / f"passthrough-{name}.log"
    with running(args, {}, port, log, "/health", 60) as server:
        yield server


@contextlib.contextmanager
def replay_upstream(recording: Path, work: Path) -> Iterator[Server]:
    """The STAND-IN upstream of the relay micro-benchmark (bench/replay_upstream.py)."""
    port = free_port()
    args = python_module("bench.replay_upstream", str(recording), str(port))
    log = work / "logs" / "replay-upstream.log"
    with running(args, {}, port, log, "/health", 30) as server:
        yield server
