"""The benchmark harness on a handful of requests against real servers: figures are produced
and sane (counts, orderings, tokens per request). No timing assertions: timings are the
benchmark's job, not the tests'."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import loadgen, procstat, relay, servers
from bench.measure import segment
from bench.scenarios import Scenario, Target
from bench.summary import DIRECT, summarise
from harness.processes import Server

pytestmark = pytest.mark.integration

SCENARIOS = [
    Scenario("non-streaming c=2", False, 8, 2, 4),
    Scenario("streaming c=2", True, 8, 2, 4),
]


async def test_segments_give_every_figure(
    vllm_server: Server, tiny_model: Path, tmp_path: Path
) -> None:
    model, url = str(tiny_model), vllm_server.base_url
    with (
        servers.passthrough("test", url, tmp_path) as floor,
        servers.microservice("test", url, model, tmp_path) as usvc,
    ):
        async with loadgen.make_client(4) as client:
            targets = [
                Target(DIRECT, url, "openai", None, client),
                Target("floor", floor.base_url, "openai", floor.process.pid, client),
                Target("opea", usvc.base_url, "opea", usvc.process.pid, client),
            ]
            records = [await segment(t, s, 0, model, url, 60) for s in SCENARIOS for t in targets]
        assert procstat.rss_bytes(usvc.process.pid) > 10 * 2**20
    rows = {(r.scenario, r.target): r for r in summarise(records)}
    assert len(rows) == 6
    for (scenario, target), row in rows.items():
        assert (row.requests, row.errors) == (4, 0)
        assert row.tokens_per_req == 8  # vLLM's own counter: every request ran its full length
        assert row.req_s > 0 and row.tok_s > 0
        assert row.p50_ms is not None and row.p99_ms is not None and row.p50_ms <= row.p99_ms
        assert row.ratio is not None and row.ratio > 0
        assert (row.cpu_ms_per_req is None) == (target == DIRECT)
        if scenario.startswith("streaming"):
            assert row.ttft_p50_ms is not None and row.ttft_p50_ms <= row.p50_ms
            assert (row.added_ttft_p50_ms is None) == (target == DIRECT)
        else:
            assert row.ttft_p50_ms is None
    streamed = [r for r in records if r.scenario == "streaming c=2"]
    assert all(r.events >= 4 * 2 for r in streamed)  # at least a text event and [DONE] each


async def test_relay_micro_benchmark_reports_chunks_per_core(
    vllm_server: Server, tiny_model: Path, tmp_path: Path
) -> None:
    async with loadgen.make_client(1) as client:
        recording = await relay.record(client, vllm_server.base_url, str(tiny_model))
    assert recording["stream"].rstrip().endswith("data: [DONE]")
    rows = await relay.run(recording, str(tiny_model), tmp_path, requests=8)
    assert len(rows) == 5
    for row in rows:
        assert (row.requests, row.errors) == (8, 0), row
        assert row.upstream_chunks_per_req >= relay.STREAM_TOKENS
        assert row.chunks_per_core_s >= 0 and row.wall_chunks_s > 0
