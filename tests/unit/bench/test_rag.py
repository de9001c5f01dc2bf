"""The RAG phase without servers: the work is deterministic and RAG-shaped, and the figures and
goals come out of vLLM's counters as docs/benchmarks.md says."""

from __future__ import annotations

from bench import rag_work
from bench.rag_measure import RagRecord
from bench.rag_run import MICROSERVICE, REFERENCE, ROUTER_CACHE_AWARE, RagPhase, salt
from bench.rag_summary import CACHE_AWARE, HEAVY, MISS_GOAL, TTFT_GOAL, goals, summarise
from bench.report import markdown
from bench.run import Results
from bench.runs import Run, combine


def test_the_work_is_seeded_and_rag_shaped() -> None:
    asks = rag_work.build()
    assert asks == rag_work.build()
    shape = rag_work.BENCH
    assert len(asks) == shape.questions * (shape.sets + shape.conversations)
    per_pass = shape.sets + shape.conversations
    last: dict[str, int] = {}
    gaps = []
    for ask in asks:  # one set's questions arrive spread out, not back to back
        if ask.index % per_pass < shape.sets:  # a question on a set, not a conversation's turn
            if ask.documents in last:
                gaps.append(ask.index - last[ask.documents])
            last[ask.documents] = ask.index
    assert min(gaps) > shape.conversations and sum(gaps) / len(gaps) == per_pass
    sizes = {len(ask.documents) for ask in asks}
    assert min(sizes) >= 1500 and max(sizes) <= 3100
    assert len(rag_work.TEMPLATE) in range(850, 1000)


def test_prompts_are_template_history_documents_question() -> None:
    asks = rag_work.build()
    turn = next(ask for ask in asks if len(ask.earlier) == 2)
    answers = {index: f"answer {index}" for index in turn.earlier}
    system = rag_work.template(rag_work.BENCH, "s1")
    messages = rag_work.messages(turn, asks, system, answers)
    assert [m["role"] for m in messages] == [
        "system",
        *("user", "assistant") * 2,
        "user",
    ]
    assert messages[0]["content"].startswith("Session s1. ")
    assert messages[2]["content"] == f"answer {turn.earlier[0]}"
    assert messages[-1]["content"] == f"{turn.documents}\n\n{turn.question}"
    assert turn.after == turn.earlier[-1]


def test_salts_differ_per_segment() -> None:
    salts = {salt("run", r, t) for r in range(3) for t in range(7)}
    assert len(salts) == 21


def _record(target: str, round_index: int, misses: float, finished: list[float]) -> RagRecord:
    queries = [1000.0, 1000.0]
    hits = [queries[0] - misses / 2, queries[1] - misses / 2]
    cpu = None if target == REFERENCE else 0.2
    return RagRecord(target, round_index, 100, 0, [], 2.0, [0.1] * 90 + [0.5] * 10, cpu, queries,
                     hits, finished)  # fmt: skip


def _records() -> list[RagRecord]:
    out = []
    for r in range(3):
        out += [
            _record(REFERENCE, r, 400, [100, 0]),
            _record(MICROSERVICE + "round_robin", r, 600, [50, 50]),
            _record(MICROSERVICE + "least_loaded", r, 600, [50, 50]),
            _record(CACHE_AWARE, r, 440, [52, 48]),
            _record(ROUTER_CACHE_AWARE, r, 520, [50, 50]),
        ]
    return out


def test_miss_ratio_shares_and_goals_from_the_counters() -> None:
    rows = {row.target: row for row in summarise(_records())}
    assert rows[REFERENCE].miss_ratio == 1.0 and rows[REFERENCE].shares == [100.0, 0.0]
    assert rows[CACHE_AWARE].miss_ratio == 1.1 and rows[CACHE_AWARE].shares == [52.0, 48.0]
    assert rows[MICROSERVICE + "round_robin"].miss_ratio == 1.5
    assert rows[CACHE_AWARE].hit_rate == 78.0 and rows[CACHE_AWARE].ttft_p90_ms == 100.0
    checked = {(g.goal, g.target): g for g in goals(list(rows.values()))}
    assert checked[(MISS_GOAL, CACHE_AWARE)].met is True
    assert checked[(TTFT_GOAL, HEAVY + CACHE_AWARE)].met is None  # not measured


def test_a_run_keeps_its_rag_phase_through_results_json() -> None:
    heavy = [
        _record(HEAVY + MICROSERVICE + "round_robin", 0, 600, [6, 6]),
        _record(HEAVY + CACHE_AWARE, 0, 500, [6, 6]),
    ]
    phase = RagPhase(_records(), 90.0, {}, [2e6, 2e6], 128, {"sets": 24}, True, heavy, 100.0)
    run = Run.from_json(Run.of(Results(rag=phase), 3).to_json())
    assert run.results.rag == phase
    assert [r.target for r in run.rag][-2:] == [h.target for h in heavy]
    text = markdown(combine([run]))
    assert "- Run 1: the RAG phase only, 90 s." in text
    assert "**RAG TTFT on the prefill-heavy model**" in text
    assert "| RAG: TTFT p90 ÷ round robin's, prefill-heavy model |" in text
