"""``cache_aware`` routing in front of two real vLLM CPU servers, judged by vLLM's own counters:
which server finished each request, and how many prompt tokens its prefix cache served.

The prompts are RAG-shaped and sized for the test servers' 512-token context (the tiny
model's tokenizer makes about 1.7 characters a token): a shared instruction template, then a
set of retrieved documents, then the question.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.processes import Server, wait_until_healthy
from tests.integration.microservice.helpers import metric, microservice
from tests.integration.microservice.second_vllm import SecondVllm

pytestmark = pytest.mark.integration

SETS = 6


def counters(url: str) -> tuple[float, float]:
    """(requests finished, prompt tokens its prefix cache served) by this vLLM's counters."""
    text = httpx.get(url + "/metrics", timeout=10).text
    return (
        metric(text, "vllm:request_success_total"),
        metric(text, "vllm:prefix_cache_hits_total"),
    )


class Rag:
    """Prompts of this test only (a fresh salt): no server has seen them before."""

    def __init__(self) -> None:
        salt = uuid.uuid4().hex[:8]
        self.template = f"[{salt}] Answer from the documents below, briefly and exactly."

    def body(self, documents: int, question: str) -> dict[str, Any]:
        """About 330 tokens: two full blocks of vLLM's 128 tokens, and the documents start in
        the first (a template of a whole block would be a third of so short a prompt)."""
        facts = " ".join(f"Fact {i}: item {i} weighs {i * 7 % 13} kg." for i in range(12))
        return {
            "messages": [
                {"role": "system", "content": self.template},
                {"role": "user", "content": f"Documents {documents}:\n{facts}\n\nQ: {question}"},
            ],
            "max_tokens": 2,
        }


@pytest.fixture(scope="module")
def usvc_cache_aware(vllm_server: Server, vllm_b: SecondVllm, tiny_model: Path) -> Iterator[Server]:
    endpoints = f"{vllm_server.base_url},{vllm_b.base_url}"
    with microservice("cache-aware", endpoints, str(tiny_model)) as server:
        wait_until_healthy(server, "/v1/health_check", timeout_s=60)
        yield server


def ask(usvc: Server, body: dict[str, Any], urls: list[str]) -> tuple[str, float]:
    """Send one request alone; (the server that finished it, its prefix-cache hit tokens)."""
    before = [counters(url) for url in urls]
    reply = httpx.post(usvc.base_url + "/v1/chat/completions", json=body, timeout=120)
    assert reply.status_code == 200, reply.text
    after = [counters(url) for url in urls]
    done = [url for url, b, a in zip(urls, before, after, strict=True) if a[0] > b[0]]
    assert len(done) == 1, (before, after)
    index = urls.index(done[0])
    return done[0], after[index][1] - before[index][1]


def test_questions_on_the_same_documents_go_where_the_documents_are(
    usvc_cache_aware: Server, vllm_server: Server, vllm_b: SecondVllm, tiny_model: Path
) -> None:
    urls, rag = [vllm_server.base_url, vllm_b.base_url], Rag()
    homes = {
        n: ask(usvc_cache_aware, rag.body(n, "What is heaviest?"), urls)[0] for n in range(SETS)
    }
    assert set(homes.values()) == set(urls), homes  # new documents spread over both
    probe = {**rag.body(99, "How many?"), "model": str(tiny_model)}
    reply = httpx.post(vllm_server.base_url + "/v1/chat/completions", json=probe, timeout=120)
    prompt_tokens = reply.json()["usage"]["prompt_tokens"]
    for n in reversed(range(SETS)):  # not in turn: round robin would pass in turn
        home, hits = ask(usvc_cache_aware, rag.body(n, f"Which item is number {n}?"), urls)
        assert home == homes[n], (n, home, homes)
        # Its documents came out of the cache: most of the prompt, not just the template.
        assert hits >= prompt_tokens / 2, (n, hits, prompt_tokens)


async def test_load_still_spreads_over_both(
    usvc_cache_aware: Server, vllm_server: Server, vllm_b: SecondVllm
) -> None:
    urls, rag = [vllm_server.base_url, vllm_b.base_url], Rag()
    before = [counters(url)[0] for url in urls]
    bodies = [rag.body(n % 4, f"Question {n}?") for n in range(24)]
    limits = httpx.Limits(max_connections=4)
    async with httpx.AsyncClient(
        base_url=usvc_cache_aware.base_url, timeout=120, limits=limits
    ) as client:
        gate = asyncio.Semaphore(4)

        async def one(body: dict[str, Any]) -> int:
            async with gate:
                return (await client.post("/v1/chat/completions", json=body)).status_code

        codes = await asyncio.gather(*(one(b) for b in bodies))
    assert codes == [200] * len(bodies)
    grew = [counters(url)[0] - b for url, b in zip(urls, before, strict=True)]
    assert sum(grew) == len(bodies) and min(grew) >= len(bodies) * 0.25, grew


def test_a_restarted_server_loses_its_entries_and_its_cached_traffic(
    usvc_cache_aware: Server, vllm_server: Server, vllm_b: SecondVllm
) -> None:
    """Both indexes forget it: the sent prompts' (its start time changed) and its events'
    (the connection dropped); its documents' follow-ups go by load, not to it for its cache."""
    urls, rag = [vllm_server.base_url, vllm_b.base_url], Rag()
    homes = {n: ask(usvc_cache_aware, rag.body(n, "Anything?"), urls)[0] for n in range(4)}
    assert vllm_b.base_url in homes.values(), homes  # new documents spread
    label = f'replica="{vllm_b.base_url}"'
    page = httpx.get(usvc_cache_aware.base_url + "/metrics", timeout=10).text
    assert metric(page, "llm_usvc_replica_cache_index_blocks", label) > 0
    wait_for(lambda: bool(event_blocks(usvc_cache_aware, vllm_b.base_url)))
    vllm_b.kill()
    vllm_b.start()
    wait_until_healthy(usvc_cache_aware, "/v1/health_check", timeout_s=60)

    def forgotten() -> bool:
        page = httpx.get(usvc_cache_aware.base_url + "/metrics", timeout=10).text
        index = metric(page, "llm_usvc_replica_cache_index_blocks", label)
        return index == 0 and not event_blocks(usvc_cache_aware, vllm_b.base_url)

    wait_for(forgotten, timeout_s=10)
    before = decisions(usvc_cache_aware)
    for n in (n for n, home in homes.items() if home == vllm_b.base_url):
        ask(usvc_cache_aware, rag.body(n, "Again?"), urls)
    assert decisions(usvc_cache_aware)["cache_match"] == before["cache_match"]


def decisions(usvc: Server) -> dict[str, float]:
    page = httpx.get(usvc.base_url + "/metrics", timeout=10).text
    reasons = ("cache_match", "no_cache_advantage", "load_bound")
    return {r: metric(page, "llm_usvc_routing_decisions_total", f'reason="{r}"') for r in reasons}


def event_blocks(usvc: Server, replica: str) -> float | None:
    """Blocks a replica's KV-cache events say it holds; None while they are not followed."""
    page = httpx.get(usvc.base_url + "/metrics", timeout=10).text
    label = f'replica="{replica}"'
    if f"llm_usvc_replica_kv_event_blocks{{{label}}}" not in page:
        return None
    return metric(page, "llm_usvc_replica_kv_event_blocks", label)


def wait_for(condition: Callable[[], bool], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_with_events_a_reset_cache_gets_no_cached_traffic(
    usvc_cache_aware: Server, vllm_server: Server, vllm_b: SecondVllm, tiny_model: Path
) -> None:
    """The approximate index cannot see a cache reset; the replica's events can."""
    urls, rag = [vllm_server.base_url, vllm_b.base_url], Rag()
    homes = {n: ask(usvc_cache_aware, rag.body(n, "Heaviest?"), urls)[0] for n in range(4)}
    wait_for(lambda: all(event_blocks(usvc_cache_aware, url) for url in urls))
    n, home = next((n, h) for n, h in homes.items() if h == vllm_b.base_url)
    before = decisions(usvc_cache_aware)
    assert ask(usvc_cache_aware, rag.body(n, "Lightest?"), urls)[0] == home
    assert decisions(usvc_cache_aware)["cache_match"] == before["cache_match"] + 1

    assert httpx.post(home + "/reset_prefix_cache", timeout=30).status_code == 200
    # vLLM publishes the reset with its next step: a prompt shorter than a block stores none
    short = {"messages": [{"role": "user", "content": "Hi."}], "max_tokens": 2}
    short["model"] = str(tiny_model)
    httpx.post(home + "/v1/chat/completions", json=short, timeout=120).raise_for_status()
    wait_for(lambda: event_blocks(usvc_cache_aware, home) == 0)
    before = decisions(usvc_cache_aware)
    ask(usvc_cache_aware, rag.body(n, "Which is number 3?"), urls)
    after = decisions(usvc_cache_aware)
    assert after["cache_match"] == before["cache_match"], (before, after)
    assert sum(after.values()) == sum(before.values()) + 1


def test_with_events_every_process_sends_follow_ups_home(
    vllm_server: Server, vllm_b: SecondVllm, tiny_model: Path
) -> None:
    """Two processes: a follow-up that reaches the process which did not route its documents
    still finds them, through the replicas' events (without events, about half would not)."""
    urls, rag = [vllm_server.base_url, vllm_b.base_url], Rag()
    endpoints = ",".join(urls)
    with microservice(
        "cache-aware-workers", endpoints, str(tiny_model), LLM_USVC_WORKERS="2"
    ) as usvc:
        wait_until_healthy(usvc, "/v1/health_check", timeout_s=60)
        for n in range(4):  # each process starts following the replicas' events
            ask(usvc, rag.body(1000 + n, "Warm?"), urls)
        homes = {n: ask(usvc, rag.body(n, "Heaviest?"), urls)[0] for n in range(4)}
        time.sleep(1)  # the last documents' events reach both processes
        for turn in range(3):
            for n in range(4):
                assert ask(usvc, rag.body(n, f"Question {turn}?"), urls)[0] == homes[n], (n, turn)
