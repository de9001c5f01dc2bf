"""docs/benchmarks.md's goal table states the goals bench/goals.py judges, with their limits."""

from __future__ import annotations

import re

from bench.goals import goals
from bench.rag_run import MICROSERVICE
from bench.rag_summary import RagRow
from bench.rag_summary import goals as rag_goals
from harness.processes import REPO_ROOT

DOC = REPO_ROOT / "docs" / "benchmarks.md"
NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")


def _goal(row: str) -> str:
    """The last cell of a table row: the goal."""
    return row.rstrip(" |").rsplit("|", 1)[1]


def _targets_table() -> str:
    text = DOC.read_text()
    section = text[text.index("## Targets\n") :]
    return section[: section.index("\n## ")]


def test_every_goal_of_the_code_is_in_the_docs_table_with_its_limit() -> None:
    table = _targets_table()
    lines = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line]
    routed = RagRow(MICROSERVICE + "round_robin", 1, 0, 1.0, None, None, None, 1, None, [50, 50])
    for goal in goals([], []) + rag_goals([routed]):
        name = re.sub(r" \(c=\d+\)$", "", goal.goal)
        rows = [line for line in lines if line.startswith(f"| {name}")]
        assert rows, f"{name!r} is not in the docs' goal table"
        limits = {float(n.replace(",", "")) for row in rows for n in NUMBER.findall(_goal(row))}
        assert goal.limit in limits, (name, goal.limit, limits)


def test_no_goal_in_the_docs_table_is_absolute_milliseconds() -> None:
    table = _targets_table()
    rows = [line for line in table.splitlines() if line.startswith("| proxy CPU")]
    assert rows and all("÷" in row for row in rows)
