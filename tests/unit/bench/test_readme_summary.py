"""The README's cost summary is the recorded run's (bench/results/results.json), as
``make bench`` writes it."""

from __future__ import annotations

import json
from pathlib import Path

from bench import readme
from harness.processes import REPO_ROOT

RESULTS = REPO_ROOT / "bench" / "results" / "results.json"


def test_readme_shows_the_recorded_runs_figures() -> None:
    doc = json.loads(RESULTS.read_text())
    block = readme.summary(doc)
    assert block in (REPO_ROOT / "README.md").read_text()
    assert "| - |" not in block  # every figure of the table was measured in that run


def test_update_replaces_only_the_block(tmp_path: Path) -> None:
    doc = json.loads(RESULTS.read_text())
    path = tmp_path / "README.md"
    path.write_text(f"before\n{readme.START}\nold\n{readme.END}\nafter\n")
    readme.update(path, doc)
    assert path.read_text() == f"before\n{readme.summary(doc)}\nafter\n"
