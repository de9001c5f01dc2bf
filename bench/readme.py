"""The README's short cost summary, made from results.json: vLLM's Rust router, the FastAPI +
httpx passthrough and the microservice side by side, each figure the median over the runs, with
the goals of bench/goals.py. ``make bench`` writes it between the README's markers; a test holds
the README to the recorded runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.goals import REQUEST_LIMIT, STREAM_LIMITS
from bench.rag_run import CACHE_AWARE_EVENTS, MICROSERVICE, ROUTER_CACHE_AWARE
from bench.rag_summary import HEAVY, TTFT_GOAL
from bench.report import runs_note
from bench.scenarios import INSTANT_C1, INSTANT_C16, PACED_C1, PACED_C16, PASSTHROUGH, ROUTER

START = "<!-- made by make bench from bench/results -->"
END = "<!-- end -->"

OPENAI, OPEA = "generic, OpenAI form", "generic, OPEA form"
COLUMNS = (
    ("vLLM's Rust router", ROUTER),
    (PASSTHROUGH, PASSTHROUGH),
    ("microservice, OpenAI form", OPENAI),
    ("microservice, OPEA form", OPEA),
)
STREAM_GOAL = f"≤ {STREAM_LIMITS[OPENAI]:g}x (OPEA {STREAM_LIMITS[OPEA]:g}x)"
REQUEST_GOAL = f"≤ {REQUEST_LIMIT:g}x"
LINES = (
    ("paced stream, c=1", PACED_C1, STREAM_GOAL),
    ("paced stream, c=16", PACED_C16, STREAM_GOAL),
    ("instant, c=1", INSTANT_C1, REQUEST_GOAL),
    ("instant, c=16", INSTANT_C16, REQUEST_GOAL),
    ("vLLM stream, c=32", "streaming c=32", STREAM_GOAL),
    ("vLLM, c=32", "non-streaming c=32", REQUEST_GOAL),
)


def _ratio_spread(row: dict[str, Any]) -> str:
    low, high = row.get("spread", {}).get("cpu_ratio", (None, None))
    return "" if low is None or low == high else f", {low:.2f}-{high:.2f}"


def _cell(rows: dict[tuple[str, str], dict[str, Any]], scenario: str, target: str) -> str:
    """CPU ms, then the ratio to the router with its lowest-highest over the runs."""
    row = rows.get((scenario, target))
    if row is None or row["cpu_ms_per_req"] is None:
        return "-"
    cpu = f"{row['cpu_ms_per_req']:.1f}"
    ratio = row.get("cpu_ratio")
    if target == ROUTER or ratio is None:
        return cpu  # the reference; its own spread is in results.md
    return f"{cpu} ({ratio:.2f}x{_ratio_spread(row)})"


def summary(doc: dict[str, Any]) -> str:
    """The block between the markers (markers included)."""
    rows = {(r["scenario"], r["target"]): r for r in doc["rows"]}
    count = doc.get("run_count", 1)
    head = ["CPU ms per request", *(name for name, _ in COLUMNS), "goal"]
    text = [
        START,
        f"Proxy CPU ms per 64-token stream or request, {runs_note(count)}; (ratio to the "
        "router's, which the goal limits).",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for label, scenario, goal in LINES:
        cells = [_cell(rows, scenario, target) for _, target in COLUMNS]
        text.append("| " + " | ".join([label, *cells, goal]) + " |")
    rag = _rag_line(doc)
    text.extend(["", rag] if rag else [])
    text.append(END)
    return "\n".join(text)


# The RAG line: (its words, the target) for the prefix-cache miss ratio.
RAG_MISSES = (
    ("`cache_aware`", MICROSERVICE + "cache_aware"),
    ("with events", CACHE_AWARE_EVENTS),
    ("round robin", MICROSERVICE + "round_robin"),
    ("vLLM's Rust router", ROUTER_CACHE_AWARE),
)


def _rag_line(doc: dict[str, Any]) -> str | None:
    """Routing on RAG traffic over two replicas: misses against one replica's, and the TTFT
    goal's median ratio."""
    rows = {r["target"]: r for r in doc.get("rag") or []}
    misses = [
        f"{words} {rows[t]['miss_ratio']:.2f}x"
        for words, t in RAG_MISSES
        if t in rows and rows[t].get("miss_ratio") is not None
    ]
    if not misses:
        return None
    line = f"RAG, two replicas, prefix tokens computed ÷ one replica's: {', '.join(misses)}"
    ttft = next(
        (
            g["measured"]
            for g in doc.get("goals") or []
            if g["goal"] == TTFT_GOAL and g["target"] == HEAVY + MICROSERVICE + "cache_aware"
        ),
        None,
    )
    if ttft is not None:
        line += f"; TTFT p90 (prefill-heavy model) {ttft:.2f}x round robin's"
    return line + "."


def update(readme: Path, doc: dict[str, Any]) -> None:
    """Replace the block between the markers; a README without them is left as it is."""
    text = readme.read_text()
    if START not in text or END not in text:
        return
    before, _, rest = text.partition(START)
    _, _, after = rest.partition(END)
    readme.write_text(before + summary(doc) + after)
