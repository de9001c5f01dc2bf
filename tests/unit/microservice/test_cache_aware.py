"""``cache_aware`` routing: the prompt-block index and the picker over it, then the policy in
the real app in front of two STAND-IN replicas (not vLLM). Which replica really held the
prefix is read from vLLM's own counters in tests/integration/microservice/test_cache_aware.py."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from microservice.routing import cache_aware
from microservice.routing.cache_aware import CacheAwarePicker
from microservice.routing.policies import turning
from microservice.routing.prefix_index import PrefixIndex, chained_hashes
from microservice.routing.prompt_text import prompt_text
from microservice.routing.replica import Replica
from microservice.upstream.model_call import ModelCall
from tests.unit.microservice.standin_model_server import (
    StandinModelServer,
    completion,
    microservice,
)

A, B = "http://replica-a:8000", "http://replica-b:8000"
TEMPLATE = "You answer from the documents below only. " * 20  # ~860 characters, on every call


def rag(documents: str, question: str) -> dict[str, Any]:
    return {
        "messages": [
            {"role": "system", "content": TEMPLATE},
            {"role": "user", "content": f"{documents}\n\nQuestion: {question}"},
        ]
    }


def docs(n: int) -> str:
    return f"Document set {n}: " + " ".join(f"fact {n}-{i} is true." for i in range(120))


def call(body: dict[str, Any]) -> ModelCall:
    return ModelCall(body=body, request_id="r")


def test_blocks_chain_so_a_hash_names_its_whole_prefix() -> None:
    a = chained_hashes("x" * 100 + "y" * 100, 50)
    b = chained_hashes("z" * 50 + "x" * 50 + "y" * 100, 50)
    assert len(a) == len(b) == 4
    assert a[2:] != b[2:]  # the same blocks after a different start are different prefixes
    assert chained_hashes("x" * 149, 50) == a[:2]  # only whole blocks count


def test_a_conversation_turn_shares_the_previous_turns_blocks() -> None:
    first = {"messages": [{"role": "user", "content": "hello " * 100}]}
    second = {
        "messages": [
            *first["messages"],
            {"role": "assistant", "content": "hi"},
            {"role": "user", "content": "more"},
        ]
    }
    one, two = chained_hashes(prompt_text(first), 64), chained_hashes(prompt_text(second), 64)
    assert two[: len(one)] == one


def test_prompt_text_of_completions_parts_and_token_ids() -> None:
    assert prompt_text({"prompt": "once upon"}) == "once upon"
    assert prompt_text({"prompt": [[1, 2], [3]]}) == "1 2"
    parts = [{"type": "text", "text": "see "}, {"type": "image_url", "image_url": {"url": "u"}}]
    assert prompt_text({"messages": [{"role": "user", "content": parts}]}) == "user:see u\n"


def test_the_index_is_an_lru_bounded_by_the_replicas_kv_cache() -> None:
    index = PrefixIndex(block_chars=4, max_blocks=10)
    index.add(A, index.hashes("a" * 40))
    assert index.blocks(A) == 10
    index.size_to(A, kv_tokens=4)  # 4 tokens of about 4 characters: 4 blocks
    assert index.blocks(A) == 4
    index.add(A, index.hashes("b" * 16))
    assert index.matched(A, index.hashes("b" * 16)) == 4
    assert index.matched(A, index.hashes("a" * 40)) == 0  # its oldest blocks went first
    index.clear(A)
    assert index.blocks(A) == 0
    index.add(A, index.hashes("c" * 40))
    assert index.blocks(A) == 4  # a restart keeps the replica's capacity
    index.remove(A)
    assert index.matched(A, index.hashes("c" * 40)) == 0


def test_prompts_that_share_documents_go_where_the_documents_are() -> None:
    pool = [Replica(A), Replica(B)]
    pick = CacheAwarePicker(PrefixIndex(128, 10_000), None, turning(), 0.5)
    homes = {n: pick(call(rag(docs(n), "first?")), pool) for n in range(4)}
    # Only the template is shared: new document sets spread, least loaded and turning.
    assert {c.reason for c in homes.values()} == {cache_aware.NO_CACHE_ADVANTAGE}
    assert {c.replica.url for c in homes.values()} == {A, B}
    for n in range(4):
        again = pick(call(rag(docs(n), f"question {n}?")), pool)
        assert again.replica is homes[n].replica
        assert again.reason == cache_aware.CACHE_MATCH


def test_no_match_anywhere_is_least_loaded() -> None:
    pool = [Replica(A), Replica(B)]
    pool[0].in_flight = 3
    pick = CacheAwarePicker(PrefixIndex(128, 10_000), None, turning(), 0.5)
    choice = pick(call({"messages": [{"role": "user", "content": "short"}]}), pool)
    assert (choice.replica.url, choice.reason) == (B, cache_aware.NO_CACHE_ADVANTAGE)


def test_a_hot_prefix_spills_over_the_load_bound() -> None:
    pool = [Replica(A), Replica(B)]
    pick = CacheAwarePicker(PrefixIndex(128, 10_000), None, turning(), 0.5)
    home = pick(call(rag(docs(1), "q")), pool).replica
    other = pool[1] if home is pool[0] else pool[0]
    home.in_flight = 3  # average with this one 2: 3 + 1 is within two requests of it
    assert pick(call(rag(docs(1), "q2")), pool).replica is home
    home.in_flight = 4  # average 2.5: 4 + 1 is over both 1.25 x 2.5 and 2.5 + 2
    spill = pick(call(rag(docs(1), "q3")), pool)
    assert (spill.replica, spill.reason) == (other, cache_aware.LOAD_BOUND)
    # The spilled request's blocks are now on both replicas: the least loaded takes the next.
    home.in_flight = 1
    other.in_flight = 0
    both = pick(call(rag(docs(1), "q3")), pool)
    assert (both.replica, both.reason) == (other, cache_aware.NO_CACHE_ADVANTAGE)


def answering(name: str) -> StandinModelServer:
    return StandinModelServer(chat=lambda body: httpx.Response(200, json=completion(name, 1)))


async def test_cache_aware_is_the_default_and_counts_its_reasons() -> None:
    replicas = {A: answering("a"), B: answering("b")}
    async with microservice(replicas) as client:
        homes = {}
        for n in range(6):
            reply = await client.post("/v1/chat/completions", json=rag(docs(n % 3), f"{n}?"))
            homes.setdefault(n % 3, set()).add(reply.json()["choices"][0]["message"]["content"])
        page = (await client.get("/metrics")).text
    assert all(len(seen) == 1 for seen in homes.values()), homes
    assert set().union(*homes.values()) == {"a", "b"}
    assert 'llm_usvc_routing_decisions_total{reason="cache_match"} 3.0' in page
    assert "llm_usvc_replica_cache_index_blocks{" in page


async def test_a_restarted_replica_loses_its_entries() -> None:
    replicas = {A: answering("a"), B: answering("b")}
    async with microservice(replicas, llm_probe_interval_s=0.05) as client:
        await asyncio.sleep(0.2)  # both probed
        first = await client.post("/v1/chat/completions", json=rag(docs(7), "q"))
        home = A if first.json()["choices"][0]["message"]["content"] == "a" else B
        replicas[home].started = 2.0  # a new process behind the same address
        page = ""
        for _ in range(100):
            await asyncio.sleep(0.05)
            page = (await client.get("/metrics")).text
            if f'llm_usvc_replica_cache_index_blocks{{replica="{home}"}} 0.0' in page:
                break
        assert f'llm_usvc_replica_cache_index_blocks{{replica="{home}"}} 0.0' in page
