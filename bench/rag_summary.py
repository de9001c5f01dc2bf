"""From RAG segments to one row per target, and the RAG goals.

Miss tokens (prefix-cache queries minus hits, summed over both replicas) are divided by the
one-replica reference's in the same round, then the median over rounds is taken: the reference
is what one replica computes of the same work, so a ratio of 1 is perfect routing and each
recomputed prefix adds to it. Shares are each replica's finished requests over all rounds.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field

from bench.goals import Goal
from bench.rag_measure import RagRecord
from bench.rag_run import (
    CACHE_AWARE_EVENTS,
    KV_EVENTS_TARGETS,
    MICROSERVICE,
    REFERENCE,
    ROUTER_CACHE_AWARE,
)
from bench.summary import percentile

CACHE_AWARE = MICROSERVICE + "cache_aware"
LEAST_LOADED = MICROSERVICE + "least_loaded"
MISS_LIMIT = 1.15
SHARE_LIMIT = 30.0
HIT_RATE_LIMIT = 1.0
CPU_LIMIT = 1.10
MISS_GOAL = "RAG: prefix-cache miss tokens ÷ one replica's"
SHARE_GOAL = "RAG: smallest replica share of requests, %"
FAILED_GOAL = "RAG: failed requests"
HIT_GOAL = "RAG: prefix-cache hit rate ÷ vLLM router cache_aware's"
CPU_GOAL = "RAG: proxy CPU per request ÷ least_loaded's"
TTFT_LIMIT = 0.5
TTFT_GOAL = "RAG: TTFT p90 ÷ round robin's, prefill-heavy model"
HEAVY = "prefill-heavy, "  # bench.rag_ttft.PREFIX


@dataclass
class RagRow:
    target: str
    requests: int
    failed: int
    req_s: float
    ttft_p50_ms: float | None
    ttft_p90_ms: float | None
    hit_rate: float | None  # %, hits ÷ queries over all rounds
    miss_tokens: float  # per segment, median over rounds
    miss_ratio: float | None  # ÷ the reference's in the same round, median over rounds
    shares: list[float] = field(default_factory=list)  # % of requests per replica
    cpu_ms_per_req: float | None = None
    spread: dict[str, list[float]] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 1)


def _row(records: list[RagRecord], reference: dict[int, RagRecord]) -> RagRow:
    ok = sum(r.ok for r in records)
    ttfts = [t for r in records for t in r.ttfts_s]
    queries = sum(sum(r.queries) for r in records)
    hits = sum(sum(r.hits) for r in records)
    ratios = [
        r.misses / reference[r.round].misses
        for r in records
        if r.round in reference and reference[r.round].misses
    ]
    finished = [sum(column) for column in zip(*(r.finished for r in records), strict=True)]
    total = sum(finished)
    cpu = [r.cpu_s for r in records if r.cpu_s is not None]
    return RagRow(
        target=records[0].target,
        requests=ok,
        failed=sum(r.failed for r in records),
        req_s=round(statistics.median(r.ok / r.wall_s for r in records if r.wall_s), 2),
        ttft_p50_ms=_ms(percentile(ttfts, 50)),
        ttft_p90_ms=_ms(percentile(ttfts, 90)),
        hit_rate=round(100 * hits / queries, 2) if queries else None,
        miss_tokens=round(statistics.median(r.misses for r in records)),
        miss_ratio=round(statistics.median(ratios), 3) if ratios else None,
        shares=[round(100 * f / total, 1) for f in finished] if total else [],
        cpu_ms_per_req=round(1000 * sum(cpu) / ok, 3) if cpu and ok else None,
    )


def summarise(records: list[RagRecord]) -> list[RagRow]:
    """One row per target, in the order first measured; the warm-up (round -1) left out.
    Without the one-replica reference among them (the prefill-heavy part) no miss ratio."""
    measured = [r for r in records if r.round >= 0]
    reference = {r.round: r for r in measured if r.target == REFERENCE}
    targets = dict.fromkeys(r.target for r in measured)
    return [_row([r for r in measured if r.target == t], reference) for t in targets]


def _get(rows: list[RagRow], target: str, name: str) -> float | None:
    row = next((r for r in rows if r.target == target), None)
    value = None if row is None else getattr(row, name)
    return None if value is None else float(value)


def _ratio(mine: float | None, base: float | None) -> float | None:
    return round(mine / base, 3) if mine is not None and base else None


def goals(rows: list[RagRow]) -> list[Goal]:
    """The issue's goals for cache_aware (None, not met, until it is measured), and no failed
    request and a fair share for every routed target."""
    routed = [r for r in rows if r.target != REFERENCE and not r.target.startswith(HEAVY)]
    cache_aware = [CACHE_AWARE, *KV_EVENTS_TARGETS]  # without events, then with
    out = [Goal(MISS_GOAL, t, MISS_LIMIT, _get(rows, t, "miss_ratio"), False) for t in cache_aware]
    for row in routed:
        if row.target.startswith(MICROSERVICE):
            share = min(row.shares) if row.shares else None
            out.append(Goal(SHARE_GOAL, row.target, SHARE_LIMIT, share, True))
    out.append(Goal(FAILED_GOAL, "every target", 0, float(sum(r.failed for r in rows)), False))
    router_hits = _get(rows, ROUTER_CACHE_AWARE, "hit_rate")
    for target in cache_aware:
        hit = _ratio(_get(rows, target, "hit_rate"), router_hits)
        out.append(Goal(HIT_GOAL, target, HIT_RATE_LIMIT, hit, True))
    cpu = _ratio(
        _get(rows, CACHE_AWARE, "cpu_ms_per_req"), _get(rows, LEAST_LOADED, "cpu_ms_per_req")
    )
    out.append(Goal(CPU_GOAL, CACHE_AWARE, CPU_LIMIT, cpu, False))
    round_robin = _get(rows, HEAVY + MICROSERVICE + "round_robin", "ttft_p90_ms")
    for target in (CACHE_AWARE, CACHE_AWARE_EVENTS):
        heavy = _ratio(_get(rows, HEAVY + target, "ttft_p90_ms"), round_robin)
        out.append(Goal(TTFT_GOAL, HEAVY + target, TTFT_LIMIT, heavy, False))
    return out
