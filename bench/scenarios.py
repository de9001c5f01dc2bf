"""What is measured: the targets (each a base URL, a request form and the proxy's PID) and the
scenarios (docs/benchmarks.md), one interleaved segment per target, scenario and round."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from bench.forms import Form


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    base_url: str
    form: Form
    pid: int | None  # the proxy process whose tree's CPU is measured; None for vLLM itself
    client: httpx.AsyncClient


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    stream: bool
    max_tokens: int
    concurrency: int
    requests: int


def scenarios(scale: float = 1.0) -> list[Scenario]:
    """The four scenarios; ``scale`` shrinks the request counts (tests, quick runs)."""

    def n(count: int, concurrency: int) -> int:
        return max(concurrency, round(count * scale))

    return [
        Scenario("non-streaming c=1", False, 16, 1, n(30, 1)),
        Scenario("non-streaming c=32", False, 16, 32, n(96, 32)),
        Scenario("streaming c=1", True, 64, 1, n(12, 1)),
        Scenario("streaming c=32", True, 64, 32, n(64, 32)),
    ]
