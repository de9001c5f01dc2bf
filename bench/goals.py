"""The benchmark's targets (listed in docs/benchmarks.md), each checked against the figure
measured in this run."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from bench.relay import RelayRow
from bench.scenarios import INSTANT_C1, INSTANT_C16, OVER_TWO, PACED_C1, PACED_C16, ROUTER
from bench.summary import Row, relay_routing, routing

GENERIC = ("generic, OpenAI form", "generic, OPEA form")
ROUTING_OVERHEAD = "routing overhead: two-replica proxy CPU per request ÷ single-replica"
PACED_VS_ROUTER = "proxy CPU per paced 64-token stream ÷ Rust router's"
INSTANT_VS_ROUTER = "proxy CPU per non-streaming request ÷ Rust router's, instant upstream"
CONCURRENCY = {PACED_C1: "c=1", PACED_C16: "c=16", INSTANT_C1: "c=1", INSTANT_C16: "c=16"}


@dataclass(frozen=True)
class Goal:
    goal: str
    target: str
    limit: float
    measured: float | None
    higher_is_better: bool
    # The Rust router's own figure for the same measure in the same run, where it has one:
    # what the absolute CPU goals in front of real vLLM come down to on this machine.
    router: float | None = None

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
    relay_rate = {row.target: float(row.chunks_per_core_s) for row in relay}
    out = []
    streamed = [*zip(GENERIC, (2.0, 2.5), strict=True)]
    streamed += [("langchain, OpenAI form", 8.0), ("langchain, OPEA form", 8.0)]
    router_stream = _field(rows, "streaming c=32", ROUTER, "cpu_ms_per_req")
    router_request = _field(rows, "non-streaming c=32", ROUTER, "cpu_ms_per_req")
    for target, limit in streamed:
        cpu = _field(rows, "streaming c=32", target, "cpu_ms_per_req")
        goal = "proxy CPU ms per 64-token stream (c=32)"
        out.append(Goal(goal, target, limit, cpu, False, router_stream))
    for target in GENERIC:
        cpu = _field(rows, "non-streaming c=32", target, "cpu_ms_per_req")
        goal = "proxy CPU ms per non-streaming request (c=32)"
        out.append(Goal(goal, target, 0.7, cpu, False, router_request))
    for target, limit in zip(GENERIC, (40_000, 30_000), strict=True):
        rate = relay_rate.get(target)
        out.append(Goal("relay chunks/s per core (stand-in upstream)", target, limit, rate, True))
    for target in GENERIC:
        ratio = _field(rows, "streaming c=32", target, "ratio")
        out.append(Goal("throughput ratio to vLLM, streaming c=32", target, 0.85, ratio, True))
    for target in GENERIC:
        added = _field(rows, "non-streaming c=1", target, "added_p50_ms")
        out.append(Goal("added p50 latency ms, non-streaming c=1", target, 1.0, added, False))
    for target in GENERIC:
        added = _field(rows, "streaming c=1", target, "added_ttft_p50_ms")
        out.append(Goal("added p50 TTFT ms, streaming c=1", target, 1.0, added, False))
    for scenario in (PACED_C1, PACED_C16):
        for target, limit in zip(GENERIC, (1.5, 2.0), strict=True):
            ratio = _field(rows, scenario, target, "cpu_ratio")
            goal = f"{PACED_VS_ROUTER} ({CONCURRENCY[scenario]})"
            out.append(Goal(goal, target, limit, ratio, False))
    for scenario in (INSTANT_C1, INSTANT_C16):
        for target in GENERIC:
            ratio = _field(rows, scenario, target, "cpu_ratio")
            goal = f"{INSTANT_VS_ROUTER} ({CONCURRENCY[scenario]})"
            out.append(Goal(goal, target, 3.0, ratio, False))
    routed = routing(rows)  # the same microservice over 2 replicas vs over 1, same rounds
    relayed = relay_routing(relay)  # the same, over stand-ins: the upstream's pace taken out
    for entry in [*routed, *([relayed] if relayed else [])]:
        where = f"{OVER_TWO}, {entry.scenario}"
        out.append(Goal(ROUTING_OVERHEAD, where, 1.10, entry.cpu_ratio, False))
    return out
