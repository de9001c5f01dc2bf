"""From raw segment records to the benchmark's figures, per scenario and target.

Rates are the median over rounds; each round's ratio is taken against the baseline segment
of the same round (measured minutes apart at most, under the same machine load): vLLM itself
in the single-replica scenarios, the load generator spreading over both replicas in the
two-replica ones, vLLM's Rust router in the stand-in ones. CPU per request sums CPU and requests
over all rounds; where the baseline is a proxy too (the router), each target's CPU per request
is also given as a ratio to the baseline's.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from dataclasses import asdict, dataclass, field

from bench.measure import Record
from bench.relay import RelayRow
from bench.scenarios import (
    DIRECT_SPREAD,
    ONE_WORKER,
    OVER_ONE,
    OVER_TWO,
    ROUTER,
    TWO_REPLICAS,
    TWO_WORKERS,
)

DIRECT = "vLLM direct"
BASELINES = (DIRECT, DIRECT_SPREAD, ROUTER)  # each scenario's ratios are to the one it measured


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None when there is nothing to rank."""
    if not values:
        return None
    ranked = sorted(values)
    return ranked[max(0, math.ceil(q / 100 * len(ranked)) - 1)]


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 2)


@dataclass
class Row:
    scenario: str
    target: str
    requests: int
    errors: int
    req_s: float
    tok_s: float
    tokens_per_req: float
    p50_ms: float | None
    p99_ms: float | None
    ttft_p50_ms: float | None
    ttft_p99_ms: float | None
    cpu_ms_per_req: float | None
    ratio: float | None
    added_p50_ms: float | None
    added_ttft_p50_ms: float | None
    # Requests each vLLM replica finished, summed over rounds (vLLM's own counters).
    per_replica: list[float] = field(default_factory=list)
    # CPU per request ÷ the Rust router's in the same scenario, where the router was measured.
    cpu_ratio: float | None = None
    # Across runs: each figure's lowest and highest value, where more than one run measured it.
    spread: dict[str, list[float]] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def _cpu_per_req(records: list[Record]) -> float | None:
    """CPU seconds per request over all rounds, unrounded; None where no CPU was read."""
    cpu = [r.cpu_s for r in records if r.cpu_s is not None]
    ok = sum(r.ok for r in records)
    return sum(cpu) / ok if cpu and ok else None


def cpu_ratio(records: list[Record], baseline: list[Record]) -> float | None:
    """Proxy CPU per request of ``records`` ÷ that of ``baseline`` (both over all rounds)."""
    mine, base = _cpu_per_req(records), _cpu_per_req(baseline)
    return round(mine / base, 3) if mine is not None and base else None


def _row(
    records: list[Record], direct: list[Record], direct_row: Row | None, router: list[Record]
) -> Row:
    ok = sum(r.ok for r in records)
    lat = [x for r in records for x in r.latencies_s]
    ttft = [x for r in records for x in r.ttfts_s]
    by_round = {r.round: r for r in direct}
    ratios = [
        (r.ok / r.wall_s) / (by_round[r.round].ok / by_round[r.round].wall_s)
        for r in records
        if r.round in by_round and r.wall_s and by_round[r.round].ok
    ]
    cpu = _cpu_per_req(records)
    p50, ttft_p50 = _ms(percentile(lat, 50)), _ms(percentile(ttft, 50))
    return Row(
        scenario=records[0].scenario,
        target=records[0].target,
        requests=ok,
        errors=sum(len(r.errors) for r in records),
        req_s=round(statistics.median(r.ok / r.wall_s for r in records), 2),
        tok_s=round(statistics.median(r.tokens / r.wall_s for r in records), 1),
        tokens_per_req=round(sum(r.tokens for r in records) / ok, 1) if ok else 0.0,
        p50_ms=p50,
        p99_ms=_ms(percentile(lat, 99)),
        ttft_p50_ms=ttft_p50,
        ttft_p99_ms=_ms(percentile(ttft, 99)),
        cpu_ms_per_req=None if cpu is None else round(cpu * 1000, 3),
        ratio=round(statistics.median(ratios), 3) if ratios else None,
        added_p50_ms=_diff(p50, direct_row.p50_ms if direct_row else None),
        added_ttft_p50_ms=_diff(ttft_p50, direct_row.ttft_p50_ms if direct_row else None),
        per_replica=_per_replica(records),
        cpu_ratio=cpu_ratio(records, router),
    )


def _per_replica(records: list[Record]) -> list[float]:
    widths = {len(r.per_replica) for r in records}
    if len(widths) != 1:  # not read, or read over different replica sets: no spread to show
        return []
    return [round(sum(column), 1) for column in zip(*(r.per_replica for r in records), strict=True)]


def _diff(value: float | None, base: float | None) -> float | None:
    return None if value is None or base is None else round(value - base, 2)


def summarise(records: list[Record]) -> list[Row]:
    """One row per (scenario, target), in the order first measured; direct vLLM first."""
    groups: dict[tuple[str, str], list[Record]] = defaultdict(list)
    for record in records:
        groups[(record.scenario, record.target)].append(record)
    rows: list[Row] = []
    for scenario in dict.fromkeys(r.scenario for r in records):
        baseline = next((b for b in BASELINES if (scenario, b) in groups), None)
        direct = groups[(scenario, baseline)] if baseline else []
        # CPU ratios are to the Rust router wherever it was measured: the baseline of the
        # stand-in scenarios, one more target in front of real vLLM.
        router = groups.get((scenario, ROUTER), [])
        direct_row = _row(direct, direct, None, router) if direct else None
        if direct_row:
            rows.append(direct_row)
        for (name, target), group in groups.items():
            if name == scenario and target != baseline:
                rows.append(_row(group, direct, direct_row, router))
    return rows


@dataclass
class Routing:
    """One two-replica scenario (or the relay over two stand-ins), summed up: what routing costs
    and how it spreads."""

    scenario: str  # the single-replica scenario it mirrors, e.g. "streaming c=32"
    throughput_ratio: float | None  # microservice over 2 / direct over 2, median of rounds
    cpu_ms_over_two: float | None
    cpu_ms_over_one: float | None
    cpu_ratio: float | None  # over 2 / over 1; the routing-overhead target is <= 1.10
    spread_over_two: list[float]  # requests per replica, microservice over 2
    spread_direct: list[float]  # requests per replica, load generator over 2
    busiest_share: float | None  # busiest replica's share of the microservice's requests, %

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def busiest_share(per_replica: list[float]) -> float | None:
    """The busiest replica's share of the requests in %: 50 is an even split over two."""
    total = sum(per_replica)
    return round(100 * max(per_replica) / total, 1) if per_replica and total else None


def routing(rows: list[Row]) -> list[Routing]:
    """One entry per two-replica scenario measured in ``rows``."""
    out = []
    for scenario in dict.fromkeys(r.scenario for r in rows if r.scenario.startswith(TWO_REPLICAS)):
        by_target = {r.target: r for r in rows if r.scenario == scenario}
        two, one, direct = (
            by_target.get(OVER_TWO),
            by_target.get(OVER_ONE),
            by_target.get(DIRECT_SPREAD),
        )
        cpu_two = two.cpu_ms_per_req if two else None
        cpu_one = one.cpu_ms_per_req if one else None
        spread = two.per_replica if two else []
        out.append(
            Routing(
                scenario=scenario.removeprefix(TWO_REPLICAS),
                throughput_ratio=two.ratio if two else None,
                cpu_ms_over_two=cpu_two,
                cpu_ms_over_one=cpu_one,
                cpu_ratio=round(cpu_two / cpu_one, 3) if cpu_two and cpu_one else None,
                spread_over_two=spread,
                spread_direct=direct.per_replica if direct else [],
                busiest_share=busiest_share(spread),
            )
        )
    return out


RELAY_ROUTING = "relay, stand-in upstreams, streaming c=8"
RELAY_OVER_ONE = "generic, OpenAI form"


def relay_routing(relay: list[RelayRow]) -> Routing | None:
    """The relay micro-benchmark's routed row against the same microservice over one stand-in:
    routing's cost per request with the upstream's pace taken out."""
    by_target = {row.target: row for row in relay}
    two, one = by_target.get(OVER_TWO), by_target.get(RELAY_OVER_ONE)
    if two is None or one is None:
        return None
    cpu_two = round(two.cpu_s * 1000 / two.requests, 2) if two.requests else None
    cpu_one = round(one.cpu_s * 1000 / one.requests, 2) if one.requests else None
    return Routing(
        scenario=RELAY_ROUTING,
        throughput_ratio=None,
        cpu_ms_over_two=cpu_two,
        cpu_ms_over_one=cpu_one,
        cpu_ratio=round(cpu_two / cpu_one, 3) if cpu_two and cpu_one else None,
        spread_over_two=[],
        spread_direct=[],
        busiest_share=None,
    )


def all_routing(rows: list[Row], relay: list[RelayRow]) -> list[Routing]:
    """The two-replica scenarios' entries, then the relay's over two stand-ins, if measured."""
    relayed = relay_routing(relay)
    return [*routing(rows), *([relayed] if relayed else [])]


@dataclass
class Workers:
    """One scenario's default microservice (one uvicorn worker) beside the same with two."""

    scenario: str
    req_s: tuple[float, float]  # one worker, two workers (median over rounds)
    p50_ms: tuple[float | None, float | None]  # TTFT p50 for streams, latency p50 otherwise
    cpu_ms_per_req: tuple[float | None, float | None]
    throughput_ratio: float | None  # two workers ÷ one, of the medians

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def workers(rows: list[Row]) -> list[Workers]:
    """Every scenario that measured both ``ONE_WORKER`` and ``TWO_WORKERS``."""
    out = []
    for scenario in dict.fromkeys(r.scenario for r in rows):
        by_target = {r.target: r for r in rows if r.scenario == scenario}
        one, two = by_target.get(ONE_WORKER), by_target.get(TWO_WORKERS)
        if one is None or two is None:
            continue
        streamed = one.ttft_p50_ms is not None
        out.append(
            Workers(
                scenario=scenario,
                req_s=(one.req_s, two.req_s),
                p50_ms=(one.ttft_p50_ms, two.ttft_p50_ms) if streamed else (one.p50_ms, two.p50_ms),
                cpu_ms_per_req=(one.cpu_ms_per_req, two.cpu_ms_per_req),
                throughput_ratio=round(two.req_s / one.req_s, 3) if one.req_s else None,
            )
        )
    return out
