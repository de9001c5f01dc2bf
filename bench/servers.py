"""The real processes the benchmark measures, each started on a free loopback port.

Starts them through ``harness`` (new process group, polled until healthy, stopped by PID with
its children), so the benchmark starts servers exactly as the integration tests do.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path

from harness import servers
from harness.processes import Server, free_port, python_module, running


@contextlib.contextmanager
def vllm(model_dir: Path, work: Path) -> Iterator[Server]:
    """vLLM CPU on the tiny model, through ``python -m model_server`` as in production."""
    with servers.vllm(str(model_dir), work / "hf-home", work / "logs" / "vllm.log") as server:
        yield server


@contextlib.contextmanager
def vllm_replicas(
    model_dir: Path,
    work: Path,
    count: int,
    name: str = "vllm",
    port_variables: tuple[str, ...] = (),
    **env: str,
) -> Iterator[list[Server]]:
    """``count`` vLLM CPU servers on the tiny model, loaded in parallel; logs <name>-<n>.log;
    ``env`` overrides any variable of every replica; ``port_variables`` get a free port each."""
    logs = [work / "logs" / f"{name}-{n}.log" for n in range(1, count + 1)]
    boots = [servers.VllmBoot(work / "hf-home", log, env, port_variables) for log in logs]
    with servers.vllm_together(str(model_dir), boots) as started:
        yield started


@contextlib.contextmanager
def microservice(
    name: str, endpoint: str, model: str, work: Path, **extra: str
) -> Iterator[Server]:
    """``python -m microservice`` with its shipped defaults (INFO logs included)."""
    log = work / "logs" / f"microservice-{name}.log"
    with servers.microservice(endpoint, model, log, **extra) as server:
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
def replay_upstream(
    recording: Path, work: Path, name: str = "", pace_ms: float = 0.0
) -> Iterator[Server]:
    """The STAND-IN upstream (bench/replay_upstream.py): every answer in one write (the relay
    micro-benchmark), or with ``pace_ms`` each stream event on its own, that far apart."""
    port = free_port()
    args = python_module("bench.replay_upstream", str(recording), str(port), str(pace_ms))
    log = work / "logs" / f"replay-upstream{name}.log"
    with running(args, {}, port, log, "/health", 30) as server:
        yield server


@contextlib.contextmanager
def vllm_router(
    name: str, worker_urls: Sequence[str], work: Path, policy: str = "round_robin"
) -> Iterator[Server]:
    """vLLM's Rust router (PyPI ``vllm-router``, the ``bench`` extra) in front of
    ``worker_urls``, round robin by default; the reference proxies are compared to (in front of
    real vLLM and of the stand-in upstream), and with ``cache_aware`` the routing reference.
    Its Prometheus endpoint (on by default) gets a free port of its own."""
    port = free_port()
    args = python_module(
        "vllm_router.launch_router",
        "--host", "127.0.0.1",
        "--port", str(port),
        "--worker-urls", *worker_urls,
        "--policy", policy,
        "--prometheus-host", "127.0.0.1",
        "--prometheus-port", str(free_port()),
        "--worker-startup-check-interval", "1",
    )  # fmt: skip
    log = work / "logs" / f"vllm-router-{name}.log"
    with running(args, {}, port, log, "/health", 60) as server:
        yield server
