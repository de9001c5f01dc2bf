"""The RAG routing table of results.md, from the medians over the runs."""

from __future__ import annotations

from collections.abc import Sequence

from bench.rag_run import RagPhase
from bench.rag_summary import HEAVY, RagRow
from bench.tables import cell, table

SPREAD_SHOWN = ("miss_ratio", "hit_rate", "cpu_ms_per_req")


def _spread(row: RagRow, name: str) -> str:
    value, spread = getattr(row, name), row.spread.get(name)
    if value is None or not spread or spread[0] == spread[1]:
        return cell(value)
    return f"{cell(float(value))} ({cell(float(spread[0]))}-{cell(float(spread[1]))})"


def _shares(shares: Sequence[float]) -> str:
    return " / ".join(f"{share:.0f}" for share in shares) if shares else "-"


def _phase_note(phases: list[RagPhase]) -> str:
    if not phases:
        return ""
    first = phases[0]
    shape = first.shape
    seconds = ", ".join(f"{p.seconds:.0f}" for p in phases)
    computed = max(
        (
            (sum(r.queries[i] - r.hits[i] + r.finished[i] * 16 for r in p.records), size)
            for p in phases
            for i, size in enumerate(p.kv_cache_tokens)
        ),
        default=(0.0, 0.0),
    )
    pinned = "; ".join(f"{who}: {at}" for who, at in first.cores.items()) or "not pinned"
    return (
        f"Per segment {shape.get('sets')} document sets of {shape.get('questions')} questions each "
        f"and {shape.get('conversations')} conversations of {shape.get('questions')} turns, "
        f"streamed, c=4; phase {seconds} s per run; {pinned}. KV-cache block "
        f"{first.block_size} tokens; the most any replica computed in a run, misses plus "
        f"16 tokens per request, {computed[0]:,.0f} tokens of its {computed[1]:,.0f}: no "
        "cached block was evicted, the per-segment salts alone keep targets apart."
    )


def rag_table(rows: list[RagRow], phases: list[RagPhase]) -> list[str]:
    heavy = [r for r in rows if r.target.startswith(HEAVY)]
    rows = [r for r in rows if not r.target.startswith(HEAVY)]
    if not rows:
        return []
    text = [
        "**RAG routing over two replicas** (the same work per target, each segment salted; "
        "miss ratio = prefix-cache miss tokens ÷ those of the same work sent to ONE replica, same "
        "round; hit rate and shares from vLLM's own counters; TTFT to the first token chunk)",
        "",
        _phase_note(phases),
        "",
    ]
    header = [
        "target",
        "req/s",
        "TTFT p50 ms",
        "TTFT p90 ms",
        "hit rate %",
        "miss tokens",
        "miss ratio",
        "requests per replica %",
        "CPU ms/req",
        "failed",
    ]
    lines: list[list[object]] = [
        [
            r.target,
            r.req_s,
            r.ttft_p50_ms,
            r.ttft_p90_ms,
            _spread(r, "hit_rate"),
            r.miss_tokens,
            _spread(r, "miss_ratio"),
            _shares(r.shares),
            _spread(r, "cpu_ms_per_req"),
            r.failed,
        ]
        for r in rows
    ]
    return [*text, *table(header, lines), "", *_heavy_table(heavy, phases)]


def _heavy_table(rows: list[RagRow], phases: list[RagPhase]) -> list[str]:
    if not rows:
        return []
    seconds = ", ".join(f"{p.ttft_seconds:.0f}" for p in phases if p.ttft_records)
    text = [
        "**RAG TTFT on the prefill-heavy model** (bench/rag_model.py: the tiny tokenizer, "
        "a random-weight Llama of 12 layers of 1,536; the same kind of work, fewer requests, "
        f"4 tokens each; {seconds} s per run)",
        "",
    ]
    header = ["target", "req/s", "TTFT p50 ms", "TTFT p90 ms", "hit rate %", "miss tokens"]
    header += ["requests per replica %", "failed"]
    lines: list[list[object]] = [
        [
            *(r.target, r.req_s, r.ttft_p50_ms, r.ttft_p90_ms, _spread(r, "hit_rate")),
            *(r.miss_tokens, _shares(r.shares), r.failed),
        ]
        for r in rows
    ]
    return [*text, *table(header, lines), ""]
