"""Results as JSON (everything, raw segments included) and as the markdown that
docs/benchmarks.md links to (bench/results/results.md)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from bench.goals import Goal
from bench.relay import RelayRow
from bench.run import Results
from bench.scenarios import STAND_IN, TWO_REPLICAS
from bench.summary import Routing, Row, Workers, relay_routing, routing, workers


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    return str(value)


def _table(header: list[str], lines: list[list[object]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(_cell(v) for v in line) + " |" for line in lines]
    return out


def _split(per_replica: list[float]) -> str:
    return " / ".join(f"{count:.0f}" for count in per_replica) if per_replica else "-"


def _idle_note(results: Results) -> list[str]:
    if results.idle_replica_cpu_s is None:
        return []
    return [
        f"The second vLLM replica, loaded at the start and idle until the two-replica "
        f"scenarios, used {results.idle_replica_cpu_s:.2f} s of CPU during the single-replica "
        "ones.",
        "",
    ]


def _cores_note(results: Results) -> list[str]:
    if not results.cores:
        return ["Nothing pinned to cores (fewer than 2).", ""]
    pinned = "; ".join(f"{who}: {where}" for who, where in results.cores.items())
    return [f"Pinned (affinity read back from the processes): {pinned}.", ""]


def _workers_table(entries: list[Workers]) -> list[str]:
    if not entries:
        return []
    text = [
        "**1 vs 2 uvicorn workers** (generic connector, OpenAI form; the default is 1, "
        "`LLM_USVC_WORKERS`; p50 is TTFT for streams, latency otherwise)",
        "",
    ]
    text += _table(
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


def _stand_in_table(rows: list[Row], scenario: str) -> list[str]:
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
            r.cpu_ms_per_req,
            r.cpu_ratio,
            r.ratio,
            r.errors,
        ]
        for r in rows
        if r.scenario == scenario
    ]
    return [*_table(header, lines), ""]


def _routing(rows: list[Row], relay: list[RelayRow]) -> list[Routing]:
    relayed = relay_routing(relay)
    return [*routing(rows), *([relayed] if relayed else [])]


def _routing_table(entries: list[Routing]) -> list[str]:
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
    text += _table(
        [
            "scenario",
            "throughput ratio to direct over 2",
            "CPU ms/req over 2",
            "CPU ms/req over 1",
            "CPU ratio (goal ≤ 1.10)",
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
                _split(e.spread_over_two),
                e.busiest_share,
                _split(e.spread_direct),
            ]
            for e in entries
        ],
    )
    return [*text, ""]


def markdown(results: Results, rows: list[Row], goals: list[Goal], rounds: int) -> str:
    load = ", ".join(f"{when}: {' / '.join(map(str, avg))}" for when, avg in results.load.items())
    text = [
        f"Run of {results.seconds:.0f} s, {rounds} interleaved rounds per scenario, "
        f"{os.cpu_count()} cores, load average (1/5/15 min) {load}.",
        "",
        *_cores_note(results),
        *_idle_note(results),
    ]
    stand_in = [
        scenario for scenario in dict.fromkeys(r.scenario for r in rows) if scenario in STAND_IN
    ]
    for scenario in dict.fromkeys(row.scenario for row in rows):
        if scenario in STAND_IN:
            continue
        two = scenario.startswith(TWO_REPLICAS)
        mine = [r for r in rows if r.scenario == scenario]
        beside_router = any(r.cpu_ratio is not None for r in mine)
        text += [f"**{scenario}**", ""]
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
                r.cpu_ms_per_req,
                *([r.cpu_ratio] if beside_router else []),
                r.ratio,
                r.errors,
                *([_split(r.per_replica)] if two else []),
            ]
            for r in mine
        ]
        text += [*_table(header, lines), ""]
    if stand_in:
        text += [
            "**Stand-in upstream: each proxy beside vLLM's Rust router** (no vLLM: a STAND-IN "
            "replays a recorded vLLM answer, streams paced one event per write "
            f"{results.pace_ms:g} ms apart as a GPU-served vLLM sends them, non-streaming "
            "answers at once; CPU ratio = proxy CPU per request ÷ the router's, same rounds)",
            "",
        ]
        for scenario in stand_in:
            text += [f"**{scenario}**", "", *_stand_in_table(rows, scenario)]
    text += _workers_table(workers(rows))
    text += _routing_table(_routing(rows, results.relay))
    text += ["**Relay micro-benchmark** (stand-in upstream replaying a recorded vLLM stream)", ""]
    text += _table(
        ["target", "requests", "chunks/req", "proxy CPU s", "chunks/s per core", "chunks/s wall"],
        [
            [
                r.target,
                r.requests,
                r.upstream_chunks_per_req,
                r.cpu_s,
                r.chunks_per_core_s,
                r.wall_chunks_s,
            ]
            for r in results.relay
        ],
    )
    text += ["", "**Memory** (resident, process tree)", ""]
    text += _table(
        ["microservice", "after start MB", "after 1,000 requests MB"],
        [
            [name, m["rss_after_start_mb"], m["rss_after_1000_mb"]]
            for name, m in results.memory.items()
        ],
    )
    text += ["", "**Targets** (set in `bench/goals.py`)", ""]
    text += _table(
        ["target", "for", "goal", "measured", "Rust router, same run", "met"],
        [
            [
                g.goal,
                g.target,
                ("≥ " if g.higher_is_better else "≤ ") + _cell(float(g.limit)),
                g.measured,
                g.router,
                {True: "yes", False: "**no**", None: "-"}[g.met],
            ]
            for g in goals
        ],
    )
    return "\n".join(text) + "\n"


def write(
    out: Path,
    results: Results,
    rows: list[Row],
    relay: list[RelayRow],
    goals: list[Goal],
    rounds: int,
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    doc = {
        "seconds": results.seconds,
        "rounds": rounds,
        "load_average": results.load,
        "idle_replica_cpu_s": results.idle_replica_cpu_s,
        "cores": results.cores,
        "stand_in_pace_ms": results.pace_ms,
        "rows": [row.to_json() for row in rows],
        "workers": [entry.to_json() for entry in workers(rows)],
        "routing": [entry.to_json() for entry in _routing(rows, relay)],
        "relay": [row.to_json() for row in relay],
        "memory": results.memory,
        "goals": [goal.to_json() for goal in goals],
        "segments": [record.to_json() for record in results.records],
    }
    (out / "results.json").write_text(json.dumps(doc, indent=1) + "\n")
    (out / "results.md").write_text(markdown(results, rows, goals, rounds))
