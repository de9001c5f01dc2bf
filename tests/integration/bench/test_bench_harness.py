"""The benchmark harness on a handful of requests against real servers: figures are produced
and sane (counts, orderings, tokens per request). No timing assertions: timings are the
benchmark's job, not the tests'.

The two-replica scenario and the RAG phase are exercised on the session's one vLLM reached under
two names (``127.0.0.1`` and ``localhost``), which the microservice and the load generator treat
as two replicas: no second vLLM is booted here. ``make bench`` runs them over two real ones."""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path

import httpx
import pytest

from bench import loadgen, procstat, rag_run, rag_work, relay, replay_upstream, report, servers
from bench.goals import ROUTING_OVERHEAD, goals
from bench.measure import segment
from bench.rag_measure import RagTarget, Work
from bench.rag_run import RagPhase
from bench.rag_summary import MISS_GOAL
from bench.rag_summary import summarise as rag_summarise
from bench.rag_work import Shape
from bench.run import Results
from bench.runs import Run, combine
from bench.scenarios import (
    DIRECT_SPREAD,
    INSTANT_C1,
    OVER_ONE,
    OVER_TWO,
    PACED_C1,
    PASSTHROUGH,
    ROUTER,
    TWO_REPLICAS,
    Scenario,
    Target,
)
from bench.summary import DIRECT, relay_routing, routing, summarise
from harness.processes import Server
from tests.sse import sse_data

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def recording(vllm_server: Server, tiny_model: Path) -> dict[str, str]:
    """Real vLLM answers, as the stand-in upstream replays them."""
    async with loadgen.make_client(1) as client:
        return await relay.record(client, vllm_server.base_url, str(tiny_model))


SCENARIOS = [
    Scenario("non-streaming c=2", False, 8, 2, 4),
    Scenario("streaming c=2", True, 8, 2, 4),
]


async def test_segments_give_every_figure(
    vllm_server: Server, tiny_model: Path, tmp_path: Path
) -> None:
    model, url = str(tiny_model), vllm_server.base_url
    with (
        servers.passthrough("test", url, tmp_path) as passthrough,
        servers.microservice("test", url, model, tmp_path) as usvc,
    ):
        async with loadgen.make_client(4) as client:
            targets = [
                Target(DIRECT, url, "openai", None, client),
                Target(
                    PASSTHROUGH, passthrough.base_url, "openai", passthrough.process.pid, client
                ),
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
    recording: dict[str, str], tiny_model: Path, tmp_path: Path
) -> None:
    events = sse_data(recording["stream"])
    assert events[-1] == "[DONE]"
    # the whole 64-token answer (vLLM may put several tokens in one chunk when it falls behind)
    assert json.loads(events[-2])["usage"]["completion_tokens"] == relay.STREAM_TOKENS
    rows = await relay.run(recording, str(tiny_model), tmp_path, requests=8)
    assert len(rows) == 6  # the generic connector over two stand-ins included
    for row in rows:
        assert (row.requests, row.errors) == (8, 0), row
        assert row.upstream_chunks_per_req == len(events) - 1  # every chunk of the recording
        assert row.chunks_per_core_s >= 0 and row.wall_chunks_s > 0
    routed = relay_routing(rows)
    assert routed is not None and routed.cpu_ms_over_two is not None


PACE_S = 0.005


async def test_paced_stand_in_writes_each_event_apart(
    recording: dict[str, str], tmp_path: Path
) -> None:
    path = relay.save(recording, tmp_path)
    arrivals, received = [], b""
    with servers.replay_upstream(path, tmp_path, pace_ms=PACE_S * 1000) as upstream:
        async with httpx.AsyncClient(base_url=upstream.base_url) as client:
            start = time.perf_counter()
            asked = client.stream("POST", "/v1/chat/completions", content=b'{"stream": true}')
            async with asked as response:
                async for part in response.aiter_raw():
                    arrivals.append(time.perf_counter())
                    received += part
            whole = await client.post("/v1/chat/completions", content=b'{"stream": false}')
    events = replay_upstream.events(recording["stream"].encode())
    assert received == recording["stream"].encode()
    assert len(arrivals) >= len(events) // 2  # one write per event, not one for the stream
    gaps = sorted(later - earlier for earlier, later in itertools.pairwise(arrivals))
    assert gaps[len(gaps) // 2] >= 0.8 * PACE_S
    assert arrivals[-1] - start >= (len(events) - 1) * PACE_S
    assert whole.text == recording["completion"]  # non-streaming: at once, whole


async def test_rust_router_in_front_of_the_stand_in_is_the_cpu_reference(
    recording: dict[str, str], tiny_model: Path, tmp_path: Path
) -> None:
    path = relay.save(recording, tmp_path)
    plan = [Scenario(INSTANT_C1, False, 16, 1, 4), Scenario(PACED_C1, True, 64, 2, 4)]
    with (
        servers.replay_upstream(path, tmp_path, "-paced", pace_ms=2.0) as upstream,
        servers.vllm_router("test", [upstream.base_url], tmp_path) as router,
        servers.passthrough("test-stand-in", upstream.base_url, tmp_path) as passthrough,
    ):
        async with loadgen.make_client(2) as client:
            targets = [
                Target(ROUTER, router.base_url, "openai", router.process.pid, client),
                Target(
                    PASSTHROUGH, passthrough.base_url, "openai", passthrough.process.pid, client
                ),
            ]
            records = [
                await segment(t, s, 0, str(tiny_model), [], 30) for s in plan for t in targets
            ]
    events = len(replay_upstream.events(recording["stream"].encode()))
    assert [r.events for r in records if r.scenario == PACED_C1] == [4 * events, 4 * events]
    rows = summarise(records)
    assert [(r.scenario, r.target) for r in rows] == [
        (s.name, t.name) for s in plan for t in targets
    ]
    for row in rows:
        assert (row.requests, row.errors) == (4, 0)
        assert row.cpu_ms_per_req is not None and row.cpu_ms_per_req > 0
        assert row.cpu_ratio is not None and row.cpu_ratio > 0
        assert (row.cpu_ratio == 1.0) == (row.target == ROUTER)


async def test_load_generator_spreads_round_robin_over_several_urls() -> None:
    hosts: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        hosts.append(request.url.host)
        return httpx.Response(200, json={})

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        urls = ["http://a", "http://b"]
        result = await loadgen.run_segment(client, urls, b"{}", "openai", False, 3, 10, 10)
    assert all(shot.ok for shot in result.shots) and len(result.shots) == 10
    assert (hosts.count("a"), hosts.count("b")) == (5, 5)


TWO_REPLICA_SCENARIOS = [
    Scenario(TWO_REPLICAS + "non-streaming c=2", False, 8, 2, 4),
    Scenario(TWO_REPLICAS + "streaming c=2", True, 8, 2, 4),
]


async def test_two_replica_segments_give_routing_figures(
    vllm_server: Server, tiny_model: Path, tmp_path: Path
) -> None:
    model, url = str(tiny_model), vllm_server.base_url
    names = [url, url.replace("127.0.0.1", "localhost")]  # one vLLM, two replica names
    with (
        servers.microservice("test-over-2", ",".join(names), model, tmp_path) as over_two,
        servers.microservice("test-over-1", url, model, tmp_path) as over_one,
    ):
        async with loadgen.make_client(4) as client:
            targets = [
                Target(DIRECT_SPREAD, url, "openai", None, client, tuple(names)),
                Target(OVER_TWO, over_two.base_url, "openai", over_two.process.pid, client),
                Target(OVER_ONE, over_one.base_url, "openai", over_one.process.pid, client),
            ]
            records = [
                await segment(t, s, 0, model, names, 60)
                for s in TWO_REPLICA_SCENARIOS
                for t in targets
            ]
    rows = summarise(records)
    assert [(r.scenario, r.target) for r in rows[:3]] == [
        (TWO_REPLICA_SCENARIOS[0].name, t.name) for t in targets
    ]
    for row in rows:
        assert (row.requests, row.errors) == (4, 0)
        # Both names read the same counters, so each finished request and token counts twice.
        assert row.per_replica == [4, 4]
        assert row.tokens_per_req == 2 * 8
        assert row.ratio is not None and row.ratio > 0
        assert (row.cpu_ms_per_req is None) == (row.target == DIRECT_SPREAD)
    entries = routing(rows)
    assert [e.scenario for e in entries] == ["non-streaming c=2", "streaming c=2"]
    for entry in entries:
        assert entry.throughput_ratio is not None and entry.cpu_ms_over_two is not None
        assert entry.spread_direct == [4, 4] and entry.busiest_share == 50.0
    overhead = [g for g in goals(rows, []) if g.goal == ROUTING_OVERHEAD]
    assert [g.limit for g in overhead] == [1.10, 1.10]
    text = report.markdown(combine([Run.of(Results(records=records), 1)]))
    assert "**Two replicas: routing**" in text and "| 4 / 4 |" in text


# The RAG phase scaled down to the session's vLLM (VLLM_MAX_MODEL_LEN 512): a short template,
# small document sets, six asks per segment.
RAG_SHAPE = Shape(
    template_chars=200, sets=2, questions=2, conversations=1, documents=(2, 3), set_chars=(300, 500)
)


async def test_rag_phase_counts_prefix_cache_and_spread(
    vllm_server: Server, tiny_model: Path, tmp_path: Path
) -> None:
    model, url = str(tiny_model), vllm_server.base_url
    names = [url, url.replace("127.0.0.1", "localhost")]  # one vLLM, two replica names
    asks = rag_work.build(RAG_SHAPE)
    assert [a.earlier for a in asks if a.earlier] == [(2,)]  # the conversation's second turn
    with (
        servers.microservice("rag-rr", ",".join(names), model, tmp_path, LLM_ROUTING="round_robin")
        as usvc,
        servers.vllm_router("rag", names, tmp_path, policy="cache_aware") as router,
    ):  # fmt: skip
        targets = [
            RagTarget(rag_run.REFERENCE, url, None),
            RagTarget(rag_run.MICROSERVICE + "round_robin", usvc.base_url, usvc.process.pid),
            RagTarget(rag_run.ROUTER_CACHE_AWARE, router.base_url, router.process.pid),
        ]
        work = Work(model, RAG_SHAPE, concurrency=2, max_tokens=8)
        records = await rag_run.measure(targets, names, work, rounds=1)
        sizes, block = await rag_run.cache_config(names)
    assert sizes[0] == sizes[1] > 0 and block > 0
    assert [(r.target, r.round) for r in records] == [(t.name, 0) for t in targets]
    for record in records:
        assert (record.ok, record.failed) == (len(asks), 0), record.errors
        # Both names read the same counters: every figure counts twice, alike.
        assert record.finished == [len(asks), len(asks)]
        assert record.queries[0] == record.queries[1] > 0 and record.hits[0] > 0
        assert len(record.ttfts_s) == len(asks)
    rows = rag_summarise(records)
    assert [r.target for r in rows] == [t.name for t in targets]
    for row in rows:
        assert row.requests == len(asks) and row.failed == 0
        assert row.shares == [50.0, 50.0] and row.miss_ratio is not None
        assert row.hit_rate is not None and 0 < row.hit_rate < 100
        assert row.ttft_p50_ms is not None and row.ttft_p90_ms is not None
        assert (row.cpu_ms_per_req is None) == (row.target == rag_run.REFERENCE)
    assert rows[0].miss_ratio == 1.0
    phase = RagPhase(records, 1.0, {}, sizes, block, {"sets": 2, "questions": 2})
    run = Run.from_json(Run.of(Results(rag=phase), 1).to_json())  # through results.json
    assert [g.goal for g in run.goals][:1] == [MISS_GOAL] and run.rag == rows
    text = report.markdown(combine([run]))
    assert "**RAG routing over two replicas**" in text and "| 50 / 50 |" in text
    assert "no cached block was evicted" in text
