"""The two real services, each started on a free loopback port exactly as production starts them
(``python -m model_server``, ``python -m microservice``), for the tests and the benchmark."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness.processes import (
    Server,
    free_port,
    python_module,
    running,
    spawned,
    wait_until_healthy,
)
from harness.server_envs import microservice_env, vllm_env

VLLM_LOAD_TIMEOUT_S = 300


@contextlib.contextmanager
def vllm(model: str, hf_home: Path, log_path: Path, **extra_env: str) -> Iterator[Server]:
    """vLLM CPU on ``model``; yields once ``/health`` answers (loading takes 20-60 s).
    ``extra_env`` overrides any variable, e.g. ``VLLM_RUNNER="pooling"`` for an embedding server."""
    port = free_port()
    env = vllm_env(model, port, hf_home, **extra_env)
    args = python_module("model_server")
    with running(args, env, port, log_path, "/health", VLLM_LOAD_TIMEOUT_S) as server:
        yield server


@dataclass(frozen=True)
class VllmBoot:
    """One server of a group booted together: its HF home, its log, variables of its own, and
    variables that each get a free port of their own (none of the group's other ports), such
    as ``VLLM_KV_EVENTS_PORT``; vLLM's ``/kv_event_sources`` tells a test which. ``model``, when
    given, replaces the group's (a reranker beside the chat models)."""

    hf_home: Path
    log_path: Path
    env: Mapping[str, str] = field(default_factory=dict)
    port_variables: tuple[str, ...] = ()
    model: str = ""


@contextlib.contextmanager
def vllm_together(model: str, boots: Sequence[VllmBoot]) -> Iterator[list[Server]]:
    """One vLLM CPU server on ``model`` per boot, all started at once so they load in parallel
    (their imports, most of a boot, take a core each; each has its own 1 GiB KV cache); yields
    once every ``/health`` answers. One that exits or times out stops them all."""
    found = _distinct_free_ports(len(boots) + sum(len(b.port_variables) for b in boots))
    ports, more = found[: len(boots)], iter(found[len(boots) :])
    with contextlib.ExitStack() as stack:
        started = [
            stack.enter_context(
                spawned(
                    python_module("model_server"),
                    vllm_env(
                        boot.model or model,
                        port,
                        boot.hf_home,
                        **boot.env,
                        **{name: str(next(more)) for name in boot.port_variables},
                    ),
                    port,
                    boot.log_path,
                )
            )
            for port, boot in zip(ports, boots, strict=True)
        ]
        for server in started:
            wait_until_healthy(server, "/health", VLLM_LOAD_TIMEOUT_S)
        yield started


@contextlib.contextmanager
def vllm_replicas(model: str, hf_home: Path, log_paths: Sequence[Path]) -> Iterator[list[Server]]:
    """Replicas: one vLLM CPU server on ``model`` per log path, the same configuration, booted
    together (30-60 s on shared cores)."""
    with vllm_together(model, [VllmBoot(hf_home, log_path) for log_path in log_paths]) as started:
        yield started


@contextlib.contextmanager
def microservice(endpoint: str, model: str, log_path: Path, **extra: str) -> Iterator[Server]:
    """The microservice in front of ``endpoint``; ``extra`` overrides any variable."""
    port = free_port()
    env = microservice_env(model, endpoint, port, **extra)
    with running(python_module("microservice"), env, port, log_path, "/health", 60) as server:
        yield server


def _distinct_free_ports(count: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports
