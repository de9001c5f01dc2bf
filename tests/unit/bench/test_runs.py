"""Several runs of the benchmark: each figure the median over the runs with its spread, every
goal judged on the median, results.json keeping each run whole, the README block from it. Runs
built from hand-made segment records; no servers."""

from __future__ import annotations

import json

from bench import readme, report
from bench.goals import PACED_VS_ROUTER, VLLM_STREAM
from bench.measure import Record
from bench.run import Results
from bench.runs import Run, combine, load, merge
from bench.scenarios import PACED_C1, PASSTHROUGH, ROUTER

OPENAI, OPEA = "generic, OpenAI form", "generic, OPEA form"
PACED_GOAL = f"{PACED_VS_ROUTER} (c=1)"


def segment(scenario: str, target: str, ok: int, cpu_s: float | None) -> Record:
    return Record(
        scenario=scenario,
        target=target,
        round=0,
        ok=ok,
        errors=[],
        wall_s=1.0,
        latencies_s=[0.1] * ok,
        ttfts_s=[0.01] * ok,
        events=0,
        cpu_s=cpu_s,
        tokens=0.0,
    )


def paced_run(openai_ms: float, opea_ms: float | None = 8.0) -> Run:
    """One run of the paced c=1 scenario: the router spends 4 ms per stream, 10 streams each."""
    per_stream = {ROUTER: 4.0, PASSTHROUGH: 16.0, OPENAI: openai_ms, OPEA: opea_ms}
    records = [
        segment(PACED_C1, target, 10, ms / 100)
        for target, ms in per_stream.items()
        if ms is not None
    ]
    return Run.of(Results(records=records, seconds=600.0), rounds=1)


def three_runs() -> list[Run]:
    # The OpenAI form at 1.4x, 1.75x and 1.45x the router: one run above the 1.5x limit.
    return [paced_run(5.6), paced_run(7.0, opea_ms=None), paced_run(5.8, opea_ms=10.0)]


def test_each_figure_is_the_median_over_the_runs_with_its_spread() -> None:
    rows = {row.target: row for row in combine(three_runs()).rows}
    openai = rows[OPENAI]
    assert openai.cpu_ms_per_req == 5.8 and openai.spread["cpu_ms_per_req"] == [5.6, 7.0]
    assert openai.cpu_ratio == 1.45 and openai.spread["cpu_ratio"] == [1.4, 1.75]
    opea = rows[OPEA]  # measured in two runs of three: the median of those two
    assert opea.cpu_ms_per_req == 9.0 and opea.spread["cpu_ms_per_req"] == [8.0, 10.0]
    assert rows[ROUTER].spread["cpu_ms_per_req"] == [4.0, 4.0]


def test_one_run_has_no_spread() -> None:
    (row,) = [r for r in combine([paced_run(6.0)]).rows if r.target == OPENAI]
    assert (row.cpu_ratio, row.spread) == (1.5, {})


def test_every_goal_is_judged_on_the_median() -> None:
    runs = three_runs()
    one_run = {(g.goal, g.target): g for g in runs[1].goals}
    assert one_run[(PACED_GOAL, OPENAI)].met is False  # 1.75x alone would miss
    judged = {(g.goal, g.target): g for g in combine(runs).goals}
    paced = judged[(PACED_GOAL, OPENAI)]
    assert (paced.limit, paced.measured, paced.spread, paced.met) == (1.5, 1.45, (1.4, 1.75), True)
    assert judged[(PACED_GOAL, OPEA)].spread == (2.0, 2.5)  # the two runs that measured it
    unmeasured = judged[(VLLM_STREAM, OPENAI)]
    assert (unmeasured.measured, unmeasured.spread, unmeasured.met) == (None, None, None)
    # A run that missed is outvoted the other way too: two misses of three decide.
    missed = combine([paced_run(7.0), paced_run(5.6), paced_run(6.4)]).goals
    assert next(g for g in missed if (g.goal, g.target) == (PACED_GOAL, OPENAI)).met is False


def test_merge_takes_lists_column_by_column_and_keeps_the_rest() -> None:
    merged, spread = merge(
        [
            {"target": "a", "per_replica": [10, 30], "cpu": None, "ok": True},
            {"target": "b", "per_replica": [20, 10], "cpu": 2.0, "ok": False},
            {"target": "c", "per_replica": [30, 20], "cpu": 4.0, "ok": False},
            {"target": "d", "per_replica": [99], "cpu": None, "ok": False},  # another length
        ]
    )
    assert merged == {"target": "a", "per_replica": [20, 20], "cpu": 3.0, "ok": True}
    assert spread == {"cpu": [2.0, 4.0]}


def test_results_json_keeps_every_run_and_recomputes_the_same_medians() -> None:
    doc = json.loads(json.dumps(combine(three_runs()).to_json()))
    assert doc["run_count"] == 3 and len(doc["runs"]) == 3
    assert all(run["segments"] for run in doc["runs"])  # raw records kept per run
    again = combine(load(doc))
    assert json.loads(json.dumps(again.to_json())) == doc
    single = doc["runs"][0]  # a results.json from before several runs: one run, no "runs"
    assert [run.rows for run in load(single)] == [three_runs()[0].rows]


def test_results_md_shows_medians_and_spread() -> None:
    text = report.markdown(combine(three_runs()))
    assert "median of 3 runs (lowest-highest)" in text
    assert "- Run 3: 600 s, 1 interleaved rounds per scenario" in text
    assert (
        f"| {OPENAI} | 10.00 | 100 | 100 | 10.00 | 10.00 | 5.80 (5.60-7.00) | 1.45 (1.40-1.75) |"
        in text
    )
    assert f"| {PACED_GOAL} | {OPENAI} | ≤ 1.50 | 1.45 | 1.40-1.75 | yes |" in text


def test_readme_block_shows_medians_spread_and_the_goals_of_the_code() -> None:
    block = readme.summary(combine(three_runs()).to_json())
    lines = block.splitlines()
    assert lines[0] == readme.START and lines[-1] == readme.END
    assert "median of 3 runs" in lines[1]
    head = "| CPU ms per request | vLLM's Rust router | FastAPI + httpx passthrough |"
    assert lines[3].startswith(head) and "floor" not in block
    paced = next(line for line in lines if line.startswith("| paced stream, c=1 |"))
    assert paced == (
        "| paced stream, c=1 | 4.0 | 16.0 (4.00x) | 5.8 (1.45x, 1.40-1.75) "
        "| 9.0 (2.25x, 2.00-2.50) | ≤ 1.5x (OPEA 2x) |"
    )
    single = readme.summary(combine([paced_run(6.0)]).to_json())
    assert "1 run" in single and "| 6.0 (1.50x) |" in single
