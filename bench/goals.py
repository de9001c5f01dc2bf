"""The benchmark's targets (listed in docs/benchmarks.md): each run checks them, and the verdict
is the median over the runs.

Proxy CPU is a ratio to vLLM's Rust router measured in the same rounds, in front of real vLLM as
in front of the stand-in upstream: on 2 shared cores an absolute figure moves with the machine,
and the router is what the same requests cost a lean proxy there. One limit per measure, wherever
it is measured: a 64-token stream ≤ 1.5x the router's CPU (OPEA form 2x: it rewrites every event),
a non-streaming request ≤ 3x.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import asdict, dataclass, replace

from bench.relay import RelayRow
from bench.scenarios import INSTANT_C1, INSTANT_C16, OVER_TWO, PACED_C1, PACED_C16
from bench.summary import Row, all_routing

GENERIC = ("generic, OpenAI form", "generic, OPEA form")
LANGCHAIN = ("langchain, OpenAI form", "langchain, OPEA form")
# Proxy CPU ÷ the Rust router's, per target.
STREAM_LIMITS = dict(zip(GENERIC, (1.5, 2.0), strict=True)) | dict.fromkeys(LANGCHAIN, 2.0)
REQUEST_LIMIT = 3.0
RELAY_LIMITS = dict(zip(GENERIC, (40_000, 30_000), strict=True))
THROUGHPUT_LIMIT = 0.85
ROUTING_LIMIT = 1.10

VLLM_STREAM = "proxy CPU per 64-token stream ÷ Rust router's, real vLLM (c=32)"
VLLM_REQUEST = "proxy CPU per non-streaming request ÷ Rust router's, real vLLM (c=32)"
RELAY = "relay chunks/s per core (stand-in upstream)"
THROUGHPUT = "throughput ratio to vLLM, streaming c=32"
ROUTING_OVERHEAD = "routing overhead: two-replica proxy CPU per request ÷ single-replica"
PACED_VS_ROUTER = "proxy CPU per paced 64-token stream ÷ Rust router's"
INSTANT_VS_ROUTER = "proxy CPU per non-streaming request ÷ Rust router's, instant upstream"
CONCURRENCY = {PACED_C1: "c=1", PACED_C16: "c=16", INSTANT_C1: "c=1", INSTANT_C16: "c=16"}


@dataclass(frozen=True)
class Goal:
    goal: str
    target: str
    limit: float
    measured: float | None  # one run's figure, or the median over the runs
    higher_is_better: bool
    # The lowest and highest of the runs' figures, where more than one run measured it.
    spread: tuple[float, float] | None = None

    @property
    def met(self) -> bool | None:
        if self.measured is None:
            return None
        if self.higher_is_better:
            return self.measured >= self.limit
        return self.measured <= self.limit

    def to_json(self) -> dict[str, object]:
        return {**asdict(self), "met": self.met}


def _field(rows: list[Row], scenario: str, target: str, name: str) -> float | None:
    for row in rows:
        if row.scenario == scenario and row.target == target:
            value = getattr(row, name)
            return None if value is None else float(value)
    return None


def goals(rows: list[Row], relay: list[RelayRow]) -> list[Goal]:
    """Every goal checked against one run's figures."""
    relay_rate = {row.target: float(row.chunks_per_core_s) for row in relay}
    out = []
    for target, limit in STREAM_LIMITS.items():
        ratio = _field(rows, "streaming c=32", target, "cpu_ratio")
        out.append(Goal(VLLM_STREAM, target, limit, ratio, False))
    for target in GENERIC:
        ratio = _field(rows, "non-streaming c=32", target, "cpu_ratio")
        out.append(Goal(VLLM_REQUEST, target, REQUEST_LIMIT, ratio, False))
    for target, rate_limit in RELAY_LIMITS.items():
        out.append(Goal(RELAY, target, rate_limit, relay_rate.get(target), True))
    for target in GENERIC:
        ratio = _field(rows, "streaming c=32", target, "ratio")
        out.append(Goal(THROUGHPUT, target, THROUGHPUT_LIMIT, ratio, True))
    for scenario in (PACED_C1, PACED_C16):
        for target in GENERIC:
            ratio = _field(rows, scenario, target, "cpu_ratio")
            goal = f"{PACED_VS_ROUTER} ({CONCURRENCY[scenario]})"
            out.append(Goal(goal, target, STREAM_LIMITS[target], ratio, False))
    for scenario in (INSTANT_C1, INSTANT_C16):
        for target in GENERIC:
            ratio = _field(rows, scenario, target, "cpu_ratio")
            goal = f"{INSTANT_VS_ROUTER} ({CONCURRENCY[scenario]})"
            out.append(Goal(goal, target, REQUEST_LIMIT, ratio, False))
    # The same microservice over 2 replicas vs over 1 in the same rounds; then the same over
    # stand-ins, the upstream's pace taken out.
    for entry in all_routing(rows, relay):
        where = f"{OVER_TWO}, {entry.scenario}"
        out.append(Goal(ROUTING_OVERHEAD, where, ROUTING_LIMIT, entry.cpu_ratio, False))
    return out


def judge(per_run: list[list[Goal]]) -> list[Goal]:
    """Each goal on the median of the runs' figures (a run that did not measure it has no say),
    with their spread; in the order the first run lists them."""
    figures: dict[tuple[str, str], list[float]] = defaultdict(list)
    first: dict[tuple[str, str], Goal] = {}
    for run in per_run:
        for goal in run:
            first.setdefault((goal.goal, goal.target), goal)
            if goal.measured is not None:
                figures[(goal.goal, goal.target)].append(goal.measured)
    out = []
    for key, goal in first.items():
        values = figures[key]
        median = round(statistics.median(values), 3) if values else None
        spread = (min(values), max(values)) if len(values) > 1 else None
        out.append(replace(goal, measured=median, spread=spread))
    return out
