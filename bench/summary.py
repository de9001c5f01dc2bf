"""From raw segment records to the benchmark's figures, per scenario and target.

Rates are the median over rounds; each round's ratio is taken against the direct-vLLM segment
of the same round (measured minutes apart at most, under the same machine load). CPU per
request sums CPU and requests over all rounds, so /proc's 10 ms tick matters less.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from dataclasses import asdict, dataclass

from bench.measure import Record

DIRECT = "vLLM direct"


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

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def _row(records: list[Record], direct: list[Record], direct_row: Row | None) -> Row:
    ok = sum(r.ok for r in records)
    lat = [x for r in records for x in r.latencies_s]
    ttft = [x for r in records for x in r.ttfts_s]
    by_round = {r.round: r for r in direct}
    ratios = [
        (r.ok / r.wall_s) / (by_round[r.round].ok / by_round[r.round].wall_s)
        for r in records
        if r.round in by_round and r.wall_s and by_round[r.round].ok
    ]
    cpu = [r.cpu_s for r in records if r.cpu_s is not None]
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
        cpu_ms_per_req=round(sum(cpu) * 1000 / ok, 2) if cpu and ok else None,
        ratio=round(statistics.median(ratios), 3) if ratios else None,
        added_p50_ms=_diff(p50, direct_row.p50_ms if direct_row else None),
        added_ttft_p50_ms=_diff(ttft_p50, direct_row.ttft_p50_ms if direct_row else None),
    )


def _diff(value: float | None, base: float | None) -> float | None:
    return None if value is None or base is None else round(value - base, 2)


def summarise(records: list[Record]) -> list[Row]:
    """One row per (scenario, target), in the order first measured; direct vLLM first."""
    groups: dict[tuple[str, str], list[Record]] = defaultdict(list)
    for record in records:
        groups[(record.scenario, record.target)].append(record)
    rows: list[Row] = []
    for scenario in dict.fromkeys(r.scenario for r in records):
        direct = groups.get((scenario, DIRECT), [])
        direct_row = _row(direct, direct, None) if direct else None
        if direct_row:
            rows.append(direct_row)
        for (name, target), group in groups.items():
            if name == scenario and target != DIRECT:
                rows.append(_row(group, direct, direct_row))
    return rows
