"""Several runs of the benchmark, each kept whole, and the medians over them.

On 2 shared cores one run's figure moves between runs by more than several goals' margins, so
every figure shown and every goal is the median over the runs that measured it, with the lowest
and highest value beside it. Each run's figures are recomputed from its raw segments, so a
reader of results.json can check every median.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bench.goals import Goal, goals, judge
from bench.measure import Record
from bench.rag_run import RagPhase
from bench.rag_summary import RagRow
from bench.rag_summary import goals as rag_goals
from bench.rag_summary import summarise as rag_summarise
from bench.relay import RelayRow
from bench.run import Results
from bench.summary import Routing, Row, all_routing, summarise, workers

Doc = dict[str, Any]


def _figures(
    rows: list[Row],
    routing: list[Routing],
    relay: list[RelayRow],
    memory: dict[str, dict[str, float]],
    checked: list[Goal],
    rag: list[RagRow],
) -> Doc:
    """The figures of one run or of the medians, as results.json keeps them."""
    return {
        "rows": [row.to_json() for row in rows],
        "rag": [row.to_json() for row in rag],
        "workers": [entry.to_json() for entry in workers(rows)],
        "routing": [entry.to_json() for entry in routing],
        "relay": [row.to_json() for row in relay],
        "memory": memory,
        "goals": [goal.to_json() for goal in checked],
    }


@dataclass
class Run:
    """One run of ``python -m bench``: what it measured and the figures made from that."""

    results: Results
    rounds: int
    rows: list[Row]
    goals: list[Goal]
    rag: list[RagRow]

    @classmethod
    def of(cls, results: Results, rounds: int) -> Run:
        rows = summarise(results.records)
        phase = results.rag
        rag = rag_summarise(phase.records) + rag_summarise(phase.ttft_records) if phase else []
        checked = goals(rows, results.relay) if rows else []
        return cls(results, rounds, rows, checked + (rag_goals(rag) if rag else []), rag)

    @property
    def routing(self) -> list[Routing]:
        return all_routing(self.rows, self.results.relay)

    def to_json(self) -> Doc:
        results = self.results
        return {
            "seconds": results.seconds,
            "rounds": self.rounds,
            "load_average": results.load,
            "idle_replica_cpu_s": results.idle_replica_cpu_s,
            "cores": results.cores,
            "stand_in_pace_ms": results.pace_ms,
            **_figures(
                self.rows, self.routing, results.relay, results.memory, self.goals, self.rag
            ),
            "segments": [record.to_json() for record in results.records],
            "rag_phase": results.rag.to_json() if results.rag else None,
        }

    @classmethod
    def from_json(cls, doc: Doc) -> Run:
        """A run as results.json keeps it; its figures recomputed from its segments."""
        results = Results(
            records=[Record(**segment) for segment in doc["segments"]],
            memory=doc["memory"],
            relay=[RelayRow(**row) for row in doc["relay"]],
            load=doc["load_average"],
            seconds=doc["seconds"],
            idle_replica_cpu_s=doc["idle_replica_cpu_s"],
            cores=doc["cores"],
            pace_ms=doc["stand_in_pace_ms"],
            rag=RagPhase.from_json(doc["rag_phase"]) if doc.get("rag_phase") else None,
        )
        return cls.of(results, doc["rounds"])


def load(doc: Doc) -> list[Run]:
    """The runs of a results.json; a file without ``runs`` is one run."""
    return [Run.from_json(each) for each in doc.get("runs", [doc])]


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _median(values: Sequence[float]) -> float:
    return round(statistics.median(values), 3)


def merge(entries: Sequence[Doc]) -> tuple[Doc, dict[str, list[float]]]:
    """One entry from the same entry of several runs: each number the median of the runs that
    have one, each list of numbers the median column by column (runs with another length left
    out), anything else the first run's. Also each number's [lowest, highest] where more than one
    run has it."""
    out, spread = dict(entries[0]), {}
    for name, first in entries[0].items():
        numbers = [e[name] for e in entries if _number(e.get(name))]
        if numbers:
            out[name] = _median(numbers)
            if len(numbers) > 1:
                spread[name] = [min(numbers), max(numbers)]
        elif isinstance(first, list | tuple) and first and all(_number(v) for v in first):
            same = [e[name] for e in entries if len(e.get(name) or ()) == len(first)]
            out[name] = [_median(column) for column in zip(*same, strict=True)]
    return out, spread


def medians(
    per_run: Sequence[Sequence[Doc]], key: Sequence[str]
) -> list[tuple[Doc, dict[str, list[float]]]]:
    """``merge`` of the entries that share ``key``'s fields, in the order first seen."""
    groups: dict[tuple[object, ...], list[Doc]] = {}
    for entries in per_run:
        for entry in entries:
            groups.setdefault(tuple(entry[k] for k in key), []).append(entry)
    return [merge(group) for group in groups.values()]


@dataclass
class Medians:
    """The runs and the median of every figure over them (the rows carry their spread)."""

    runs: list[Run]
    rows: list[Row]
    routing: list[Routing]
    relay: list[RelayRow]
    memory: dict[str, dict[str, float]]
    goals: list[Goal]
    rag: list[RagRow]

    def to_json(self) -> Doc:
        return {
            "run_count": len(self.runs),
            **_figures(self.rows, self.routing, self.relay, self.memory, self.goals, self.rag),
            "runs": [run.to_json() for run in self.runs],
        }


def combine(runs: list[Run]) -> Medians:
    rows = medians([[r.to_json() for r in run.rows] for run in runs], ("scenario", "target"))
    routed = medians([[e.to_json() for e in run.routing] for run in runs], ("scenario",))
    relayed = medians([[r.to_json() for r in run.results.relay] for run in runs], ("target",))
    memory = medians(
        [[{"name": k, **v} for k, v in run.results.memory.items()] for run in runs], ("name",)
    )
    rag = medians([[r.to_json() for r in run.rag] for run in runs], ("target",))
    return Medians(
        runs=runs,
        rows=[Row(**{**row, "spread": spread}) for row, spread in rows],
        routing=[Routing(**entry) for entry, _ in routed],
        relay=[RelayRow(**row) for row, _ in relayed],
        memory={m.pop("name"): m for m, _ in memory},
        goals=judge([run.goals for run in runs]),
        rag=[RagRow(**{**row, "spread": spread}) for row, spread in rag],
    )
