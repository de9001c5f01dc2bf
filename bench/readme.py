"""The README's short cost summary, made from a run's results.json: the Rust router, the
reference floor and the microservice side by side, with the targets. ``make bench`` writes it
between the README's markers; a test holds the README to the recorded run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

START = "<!-- made by make bench from bench/results -->"
END = "<!-- end -->"

ROUTER = "vLLM router (Rust), OpenAI form"
COLUMNS = (
    ("Rust router", ROUTER),
    ("floor", "passthrough (reference floor)"),
    ("generic, OpenAI", "generic, OpenAI form"),
    ("generic, OPEA", "generic, OPEA form"),
)
LINES = (
    ("paced stream, c=1", "paced stand-in, 64-token stream c=1", "≤ 1.5x (OPEA 2x)"),
    ("paced stream, c=16", "paced stand-in, 64-token stream c=16", "≤ 1.5x (OPEA 2x)"),
    ("instant, c=16", "instant stand-in, non-streaming c=16", "≤ 3x"),
    ("vLLM stream, c=32", "streaming c=32", "≤ 2 ms (OPEA 2.5)"),
    ("vLLM, c=32", "non-streaming c=32", "≤ 0.7 ms"),
)


def _cell(rows: dict[tuple[str, str], dict[str, Any]], scenario: str, target: str) -> str:
    row = rows.get((scenario, target))
    if row is None or row["cpu_ms_per_req"] is None:
        return "-"
    cpu = f"{row['cpu_ms_per_req']:.1f}"
    ratio = row.get("cpu_ratio")
    return cpu if target == ROUTER or ratio is None else f"{cpu} ({ratio:.1f}x)"


def summary(doc: dict[str, Any]) -> str:
    """The block between the markers (markers included)."""
    rows = {(r["scenario"], r["target"]): r for r in doc["rows"]}
    head = ["CPU ms per request", *(name for name, _ in COLUMNS), "goal"]
    text = [
        START,
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for label, scenario, goal in LINES:
        cells = [_cell(rows, scenario, target) for _, target in COLUMNS]
        text.append("| " + " | ".join([label, *cells, goal]) + " |")
    text.append(END)
    return "\n".join(text)


def update(readme: Path, doc: dict[str, Any]) -> None:
    """Replace the block between the markers; a README without them is left as it is."""
    text = readme.read_text()
    if START not in text or END not in text:
        return
    before, _, rest = text.partition(START)
    _, _, after = rest.partition(END)
    readme.write_text(before + summary(doc) + after)
