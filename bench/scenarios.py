"""What is measured: the targets (each a base URL, a request form and the proxy's PID) and the
scenarios (docs/benchmarks.md), one interleaved segment per target, scenario and round."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import httpx

from bench.forms import Form

# Scenarios measured over two vLLM replicas carry this prefix before the single-replica name
# they mirror ("2 replicas, streaming c=32" mirrors "streaming c=32").
TWO_REPLICAS = "2 replicas, "
# Their targets: the baseline (the load generator spreading over both replicas itself), the
# microservice over both, and the same microservice build over one replica (the single-replica
# path), measured in the same rounds. The relay micro-benchmark uses the last two names too.
DIRECT_SPREAD = "vLLM direct, spread over 2 replicas by the client"
OVER_TWO = "generic over 2 replicas, OpenAI form"
OVER_ONE = "generic over 1 replica, OpenAI form"


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    base_url: str
    form: Form
    pid: int | None  # the proxy process whose tree's CPU is measured; None for vLLM itself
    client: httpx.AsyncClient
    # Base URLs the load generator spreads requests over itself, round robin at the client
    # (the direct baseline over several replicas); empty: every request goes to ``base_url``.
    spread: tuple[str, ...] = ()

    @property
    def urls(self) -> tuple[str, ...]:
        return self.spread or (self.base_url,)


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    stream: bool
    max_tokens: int
    concurrency: int
    requests: int


def _counter(scale: float) -> Callable[[int, int], int]:
    """Request counts times ``scale``, never below one request per concurrent client."""

    def n(count: int, concurrency: int) -> int:
        return max(concurrency, round(count * scale))

    return n


def scenarios(scale: float = 1.0) -> list[Scenario]:
    """The four scenarios; ``scale`` shrinks the request counts (tests, quick runs)."""
    n = _counter(scale)
    return [
        Scenario("non-streaming c=1", False, 16, 1, n(30, 1)),
        Scenario("non-streaming c=32", False, 16, 32, n(96, 32)),
        Scenario("streaming c=1", True, 64, 1, n(12, 1)),
        Scenario("streaming c=32", True, 64, 32, n(64, 32)),
    ]


def two_replica_scenarios(scale: float = 1.0) -> list[Scenario]:
    """The c=32 scenarios again, over two vLLM replicas, with twice the requests per segment:
    the routing-overhead target compares proxy CPU per request within 10 %, so each figure
    rests on more requests than a single-replica one."""
    n = _counter(scale)
    return [
        Scenario(TWO_REPLICAS + "non-streaming c=32", False, 16, 32, n(192, 32)),
        Scenario(TWO_REPLICAS + "streaming c=32", True, 64, 32, n(128, 32)),
    ]
