"""The benchmark's arithmetic on hand-built records: CPU ratios to the Rust router (in front of
the stand-in upstream and of real vLLM), the goals they feed, the 1 vs 2 workers table, the
report; and the clocks and frames the figures rest on. No servers (tests/integration/bench runs
the real ones)."""

from __future__ import annotations

import json

import pytest

from bench import replay_upstream, report
from bench.goals import INSTANT_VS_ROUTER, PACED_VS_ROUTER, VLLM_REQUEST, VLLM_STREAM, goals
from bench.measure import Record
from bench.procstat import CpuSample, cpu_between
from bench.run import Results
from bench.runs import Run, combine
from bench.scenarios import INSTANT_C1, PACED_C1, PACED_C16, ROUTER, TWO_WORKERS
from bench.summary import summarise, workers

OPENAI, OPEA = "generic, OpenAI form", "generic, OPEA form"


def record(scenario: str, target: str, round_: int, ok: int, cpu_s: float | None) -> Record:
    return Record(
        scenario=scenario,
        target=target,
        round=round_,
        ok=ok,
        errors=[],
        wall_s=1.0,
        latencies_s=[0.1] * ok,
        ttfts_s=[0.01] * ok if scenario in (PACED_C1, PACED_C16) else [],
        events=0,
        cpu_s=cpu_s,
        tokens=0.0,
    )


def stand_in_records() -> list[Record]:
    """Two rounds; the router spends 4 ms per request, the others a multiple of it."""
    per_request = {ROUTER: 0.004, OPENAI: 0.006, OPEA: 0.010, TWO_WORKERS: 0.008}
    return [
        record(scenario, target, round_, 10, cpu * 10)
        for scenario in (PACED_C1, PACED_C16, INSTANT_C1)
        for round_ in (0, 1)
        for target, cpu in per_request.items()
    ]


def test_cpu_ratio_is_to_the_router_of_the_same_scenario() -> None:
    rows = {(r.scenario, r.target): r for r in summarise(stand_in_records())}
    assert rows[(PACED_C1, ROUTER)].cpu_ms_per_req == 4.0
    assert rows[(PACED_C1, ROUTER)].cpu_ratio == 1.0
    assert rows[(PACED_C1, OPENAI)].cpu_ratio == 1.5
    assert rows[(PACED_C16, OPEA)].cpu_ratio == 2.5
    assert rows[(PACED_C1, OPENAI)].ratio == 1.0  # same req/s as the router: throughput ratio


def test_cpu_ratio_sums_over_rounds_before_dividing() -> None:
    records = [
        record(PACED_C1, ROUTER, 0, 10, 0.02),
        record(PACED_C1, ROUTER, 1, 10, 0.06),  # 4 ms per request over both rounds
        record(PACED_C1, OPENAI, 0, 10, 0.12),
        record(PACED_C1, OPENAI, 1, 30, 0.12),  # 6 ms per request over both rounds
    ]
    rows = {r.target: r for r in summarise(records)}
    assert rows[OPENAI].cpu_ratio == 1.5


def test_no_cpu_ratio_where_the_baseline_is_vllm_itself() -> None:
    records = [
        record("streaming c=1", "vLLM direct", 0, 4, None),
        record("streaming c=1", OPENAI, 0, 4, 0.1),
    ]
    assert [r.cpu_ratio for r in summarise(records)] == [None, None]


def test_in_front_of_real_vllm_cpu_is_to_the_router_and_throughput_to_vllm() -> None:
    """The router is one more target there: vLLM direct stays the throughput baseline."""
    scenario = "streaming c=32"
    records = [
        record(scenario, "vLLM direct", 0, 10, None),
        record(scenario, ROUTER, 0, 10, 0.04),
        record(scenario, OPENAI, 0, 5, 0.06),
    ]
    rows = {r.target: r for r in summarise(records)}
    assert rows["vLLM direct"].cpu_ratio is None
    assert (rows[ROUTER].cpu_ratio, rows[ROUTER].ratio) == (1.0, 1.0)
    assert (rows[OPENAI].cpu_ms_per_req, rows[OPENAI].cpu_ratio) == (12.0, 3.0)
    assert rows[OPENAI].ratio == 0.5  # half vLLM's requests per second
    checked = {(g.goal, g.target): g for g in goals(summarise(records), [])}
    stream = checked[(VLLM_STREAM, OPENAI)]
    assert (stream.limit, stream.measured, stream.met) == (1.5, 3.0, False)  # a ratio, not ms
    request = checked[(VLLM_REQUEST, OPENAI)]
    assert (request.measured, request.met) == (None, None)  # not measured here


def test_router_goals_read_the_cpu_ratios() -> None:
    checked = {(g.goal, g.target): g for g in goals(summarise(stand_in_records()), [])}
    paced = checked[(f"{PACED_VS_ROUTER} (c=1)", OPENAI)]
    assert (paced.limit, paced.measured, paced.met) == (1.5, 1.5, True)
    opea = checked[(f"{PACED_VS_ROUTER} (c=16)", OPEA)]
    assert (opea.limit, opea.measured, opea.met) == (2.0, 2.5, False)
    instant = checked[(f"{INSTANT_VS_ROUTER} (c=1)", OPEA)]
    assert (instant.limit, instant.measured, instant.met) == (3.0, 2.5, True)
    missing = checked[(f"{INSTANT_VS_ROUTER} (c=16)", OPENAI)]  # scenario not measured
    assert (missing.measured, missing.met) == (None, None)


def test_workers_table_sets_two_workers_beside_one() -> None:
    entries = {e.scenario: e for e in workers(summarise(stand_in_records()))}
    assert set(entries) == {PACED_C1, PACED_C16, INSTANT_C1}
    paced = entries[PACED_C1]
    assert paced.cpu_ms_per_req == (6.0, 8.0)
    assert paced.p50_ms == (10.0, 10.0)  # TTFT for streams
    assert entries[INSTANT_C1].p50_ms == (100.0, 100.0)  # latency otherwise
    assert paced.throughput_ratio == 1.0


def test_report_shows_the_stand_in_tables_and_the_cores() -> None:
    records = stand_in_records()
    results = Results(records=records, cores={"vLLM": "core 0", "the rest": "core 1"})
    text = report.markdown(combine([Run.of(results, 2)]))
    assert "Pinned (affinity read back from the processes): vLLM: core 0; the rest: core 1." in text
    assert f"**{PACED_C1}**" in text and "CPU ratio to router" in text
    assert f"| {OPENAI} | 10.00 | 100 | 100 | 10.00 | 10.00 | 6.00 | 1.50 |" in text  # no tokens
    assert "**1 vs 2 uvicorn workers**" in text
    assert "1 run (no spread yet)" in text
    assert "Nothing pinned" in report.markdown(combine([Run.of(Results(), 1)]))


def test_cpu_between_counts_threads_in_nanoseconds() -> None:
    before = CpuSample({1: 1_000_000, 2: 5_000_000}, ticks_s=0.0)
    after = CpuSample({1: 1_500_000, 2: 5_250_000, 3: 100_000}, ticks_s=0.01)
    assert cpu_between(before, after) == pytest.approx(0.00085)  # thread 3 started in between


def test_cpu_between_falls_back_to_ticks_when_a_thread_exited() -> None:
    before = CpuSample({1: 1_000_000, 2: 5_000_000}, ticks_s=0.5)
    after = CpuSample({1: 1_500_000}, ticks_s=0.53)
    assert cpu_between(before, after) == pytest.approx(0.03)
    assert cpu_between(CpuSample({}, 0.5), CpuSample({1: 9}, 0.6)) == pytest.approx(0.1)


def test_paced_frames_decode_to_the_recorded_stream() -> None:
    stream = 'data: {"a":1}\n\ndata: {"b":2}\n\ndata: [DONE]\n\n'
    recording = {"models": "{}", "completion": json.dumps({"c": 3}), "stream": stream}
    replay = replay_upstream.Replay(recording, pace_s=0.002)
    frames = replay.answer(b"/v1/chat/completions", b'{"stream": true}')
    assert isinstance(frames, list) and len(frames) == 3  # one write per event
    head, _, first = frames[0].partition(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in head
    body, raw = b"", first + b"".join(frames[1:])
    while raw:
        size, _, rest = raw.partition(b"\r\n")
        length = int(size, 16)
        body, raw = body + rest[:length], rest[length + 2 :]
    assert body == stream.encode()
    assert replay.answer(b"/v1/chat/completions", b"{}") == replay.completion  # at once
    unpaced = replay_upstream.Replay(recording)
    assert unpaced.answer(b"/v1/chat/completions", b'{"stream":true}') == unpaced.stream
