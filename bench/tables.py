"""The markdown tables of results.md: one per scenario, the 1 vs 2 workers and routing tables.

Figures are medians over the runs; the CPU and ratio columns carry their spread over the runs
(lowest-highest) where more than one run measured them.
"""

from __future__ import annotations

from bench.scenarios import TWO_REPLICAS
from bench.summary import Routing, Row, Workers

SPREAD_SHOWN = ("cpu_ms_per_req", "cpu_ratio", "ratio")


def cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    return str(value)


def spread_cell(row: Row, name: str) -> str:
    """The median, then its lowest-highest over the runs in brackets where there is one."""
    value, spread = getattr(row, name), row.spread.get(name)
    if value is None or not spread or spread[0] == spread[1]:
        return cell(value)
    low, high = (float(x) for x in spread)
    return f"{cell(float(value))} ({cell(low)}-{cell(high)})"


def table(header: list[str], lines: list[list[object]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(cell(v) for v in line) + " |" for line in lines]
    return out


def split(per_replica: list[float]) -> str:
    return " / ".join(f"{count:.0f}" for count in per_replica) if per_replica else "-"


def vllm_table(rows: list[Row], scenario: str) -> list[str]:
    """A scenario in front of real vLLM: throughput ratios to vLLM itself (over two replicas, to
    the load generator spreading over both), proxy CPU also as a ratio to the Rust router's."""
    two = scenario.startswith(TWO_REPLICAS)
    mine = [r for r in rows if r.scenario == scenario]
    beside_router = any(r.cpu_ratio is not None for r in mine)
    header = [
        "target",
        "req/s",
        "tok/s",
        "tok/req",
        "p50 ms",
        "p99 ms",
        "TTFT p50",
        "TTFT p99",
        "CPU ms/req",
        *(["CPU ratio to router"] if beside_router else []),
        "ratio to direct over 2" if two else "ratio to vLLM",
        "errors",
        *(["per replica"] if two else []),
    ]
    lines: list[list[object]] = [
        [
            r.target,
            r.req_s,
            r.tok_s,
            r.tokens_per_req,
            r.p50_ms,
            r.p99_ms,
            r.ttft_p50_ms,
            r.ttft_p99_ms,
            spread_cell(r, "cpu_ms_per_req"),
            *([spread_cell(r, "cpu_ratio")] if beside_router else []),
            spread_cell(r, "ratio"),
            r.errors,
            *([split(r.per_replica)] if two else []),
        ]
        for r in mine
    ]
    return [*table(header, lines), ""]


def stand_in_table(rows: list[Row], scenario: str) -> list[str]:
    """A stand-in scenario: no vLLM, so no token counts; ratios to the Rust router."""
    header = [
        "target",
        "req/s",
        "p50 ms",
        "p99 ms",
        "TTFT p50",
        "TTFT p99",
        "CPU ms/req",
        "CPU ratio to router",
        "throughput ratio to router",
        "errors",
    ]
    lines: list[list[object]] = [
        [
            r.target,
            r.req_s,
            r.p50_ms,
            r.p99_ms,
            r.ttft_p50_ms,
            r.ttft_p99_ms,
            *(spread_cell(r, name) for name in SPREAD_SHOWN),
            r.errors,
        ]
        for r in rows
        if r.scenario == scenario
    ]
    return [*table(header, lines), ""]


def workers_table(entries: list[Workers]) -> list[str]:
    if not entries:
        return []
    text = [
        "**1 vs 2 uvicorn workers** (generic connector, OpenAI form; the default is 1, "
        "`LLM_USVC_WORKERS`; p50 is TTFT for streams, latency otherwise)",
        "",
    ]
    text += table(
        [
            "scenario",
            "req/s, 1 worker",
            "req/s, 2 workers",
            "2 ÷ 1",
            "p50 ms, 1",
            "p50 ms, 2",
            "CPU ms/req, 1",
            "CPU ms/req, 2",
        ],
        [[e.scenario, *e.req_s, e.throughput_ratio, *e.p50_ms, *e.cpu_ms_per_req] for e in entries],
    )
    return [*text, ""]


def routing_table(entries: list[Routing], limit: float) -> list[str]:
    if not entries:
        return []
    text = [
        "**Two replicas: routing** (the microservice over both vLLM replicas against the load "
        "generator spreading over both itself; proxy CPU against the same microservice over one "
        "replica, in the same rounds; requests per replica from each vLLM's own counter; the "
        "relay line routes over two stand-in upstreams, so the upstream's pace is the same for "
        "both)",
        "",
    ]
    text += table(
        [
            "scenario",
            "throughput ratio to direct over 2",
            "CPU ms/req over 2",
            "CPU ms/req over 1",
            f"CPU ratio (goal ≤ {limit:.2f})",
            "requests per replica, microservice",
            "busiest replica share %",
            "requests per replica, direct",
        ],
        [
            [
                e.scenario,
                e.throughput_ratio,
                e.cpu_ms_over_two,
                e.cpu_ms_over_one,
                e.cpu_ratio,
                split(e.spread_over_two),
                e.busiest_share,
                split(e.spread_direct),
            ]
            for e in entries
        ],
    )
    return [*text, ""]
