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

# The stand-in scenarios (no vLLM: bench/replay_upstream.py replays a recorded vLLM answer):
# streams paced one event per write, non-streaming answers at once. Their reference is vLLM's
# Rust router in front of the same stand-in, measured in the same rounds.
ROUTER = "vLLM router (Rust), OpenAI form"
# The thinnest FastAPI + httpx passthrough (bench/passthrough.py): what the same web stack costs
# with nothing of the service's work on top.
PASSTHROUGH = "FastAPI + httpx passthrough"
PACE_MS = 2.0
PACED_C1 = "paced stand-in, 64-token stream c=1"
PACED_C16 = "paced stand-in, 64-token stream c=16"
INSTANT_C1 = "instant stand-in, non-streaming c=1"
INSTANT_C16 = "instant stand-in, non-streaming c=16"
STAND_IN = (INSTANT_C1, INSTANT_C16, PACED_C1, PACED_C16)
# The default microservice (one uvicorn worker) and the same with LLM_USVC_WORKERS=2.
ONE_WORKER = "generic, OpenAI form"
TWO_WORKERS = "generic, 2 workers, OpenAI form"


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


def stand_in_scenarios(scale: float = 1.0) -> list[Scenario]:
    """Against the stand-in upstream: the proxies' own cost per request beside the Rust
    router's, without vLLM's pace and CPU in the way. Each segment lasts about a second or more
    (a paced stream takes about 150 ms at c=1, an instant answer 3 ms): at 48 instant requests
    a segment lasted 0.15 s, and one form of the same process came out 10 % cheaper than the
    other (docs/benchmarks.md). About two minutes of segments at 3 rounds."""
    n = _counter(scale)
    return [
        Scenario(INSTANT_C1, False, 16, 1, n(240, 1)),
        Scenario(INSTANT_C16, False, 16, 16, n(480, 16)),
        Scenario(PACED_C1, True, 64, 1, n(16, 1)),
        Scenario(PACED_C16, True, 64, 16, n(96, 16)),
    ]
