"""Results as JSON (every run whole, raw segments included, and the medians over the runs) and
as the markdown that docs/benchmarks.md links to (bench/results/results.md)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from bench import tables
from bench.goals import ROUTING_LIMIT, Goal
from bench.rag_report import rag_table
from bench.runs import Medians, Run
from bench.scenarios import STAND_IN
from bench.summary import workers
from bench.tables import cell, table


def runs_note(count: int) -> str:
    """How many runs the medians are over, and whether they have a spread."""
    if count == 1:
        return "1 run (no spread yet)"
    return f"median of {count} runs (lowest-highest)"


def _run_line(index: int, run: Run) -> str:
    results = run.results
    if results.rag and not results.records:
        return f"- Run {index}: the RAG phase only, {results.rag.seconds:.0f} s."
    load = ", ".join(f"{when}: {' / '.join(map(str, avg))}" for when, avg in results.load.items())
    idle = (
        ""
        if results.idle_replica_cpu_s is None
        else f"; the second vLLM replica, idle until the two-replica scenarios, used "
        f"{results.idle_replica_cpu_s:.2f} s of CPU during the single-replica ones"
    )
    rag = ""
    if results.rag:
        apart = " (measured in a run of its own, `--only rag`)" if results.rag.alone else ""
        rag = f"; then the RAG phase{apart}, {results.rag.seconds:.0f} s"
    return (
        f"- Run {index}: {results.seconds:.0f} s, {run.rounds} interleaved rounds per scenario, "
        f"load average (1/5/15 min) {load}{idle}{rag}."
    )


def _cores_note(runs: list[Run]) -> list[str]:
    if runs and all(run.results.rag and not run.results.records for run in runs):
        return []  # the RAG phase alone: its own table says where it ran
    pinned = runs[0].results.cores if runs else {}
    if not pinned:
        return ["Nothing pinned to cores (fewer than 2).", ""]
    where = "; ".join(f"{who}: {at}" for who, at in pinned.items())
    return [f"Pinned (affinity read back from the processes): {where}.", ""]


def _goal_line(goal: Goal) -> list[object]:
    spread = "-" if goal.spread is None else f"{cell(goal.spread[0])}-{cell(goal.spread[1])}"
    return [
        goal.goal,
        goal.target,
        ("≥ " if goal.higher_is_better else "≤ ") + cell(float(goal.limit)),
        goal.measured,
        spread,
        {True: "yes", False: "**no**", None: "-"}[goal.met],
    ]


def markdown(medians: Medians) -> str:
    rows, runs = medians.rows, medians.runs
    pace = runs[0].results.pace_ms if runs else 0.0
    text = [
        f"{os.cpu_count()} cores; {runs_note(len(runs))}.",
        "",
        *(_run_line(index, run) for index, run in enumerate(runs, start=1)),
        "",
        *_cores_note(runs),
    ]
    scenarios = list(dict.fromkeys(row.scenario for row in rows))
    for scenario in scenarios:
        if scenario not in STAND_IN:
            text += [f"**{scenario}**", "", *tables.vllm_table(rows, scenario)]
    stand_in = [scenario for scenario in scenarios if scenario in STAND_IN]
    if stand_in:
        text += [
            "**Stand-in upstream: each proxy beside vLLM's Rust router** (no vLLM: a STAND-IN "
            "replays a recorded vLLM answer, streams paced one event per write "
            f"{pace:g} ms apart as a GPU-served vLLM sends them, non-streaming "
            "answers at once; CPU ratio = proxy CPU per request ÷ the router's, same rounds)",
            "",
        ]
        for scenario in stand_in:
            text += [f"**{scenario}**", "", *tables.stand_in_table(rows, scenario)]
    text += tables.workers_table(workers(rows))
    text += tables.routing_table(medians.routing, ROUTING_LIMIT)
    text += rag_table(medians.rag, [run.results.rag for run in runs if run.results.rag])
    text += _relay_and_memory(medians)
    text += ["", "**Targets** (set in `bench/goals.py`; each judged on the median)", ""]
    text += table(
        ["target", "for", "goal", "measured", "lowest-highest of the runs", "met"],
        [_goal_line(goal) for goal in medians.goals],
    )
    return "\n".join(text) + "\n"


def _relay_and_memory(medians: Medians) -> list[str]:
    """The relay micro-benchmark and the memory table; nothing when only the RAG phase ran."""
    if not medians.relay and not medians.memory:
        return []
    text = ["**Relay micro-benchmark** (stand-in upstream replaying a recorded vLLM stream)", ""]
    text += table(
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
            for r in medians.relay
        ],
    )
    text += ["", "**Memory** (resident, process tree)", ""]
    text += table(
        ["microservice", "after start MB", "after 1,000 requests MB"],
        [
            [name, m["rss_after_start_mb"], m["rss_after_1000_mb"]]
            for name, m in medians.memory.items()
        ],
    )
    return text


def write(out: Path, medians: Medians) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(medians.to_json(), indent=1) + "\n")
    (out / "results.md").write_text(markdown(medians))
