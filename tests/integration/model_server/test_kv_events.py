"""VLLM_KV_EVENTS_PORT on a real vLLM CPU: the session's chat server publishes its KV-cache
events, /kv_event_sources names where, and the microservice's reader sees a chat request's
prompt blocks stored, under the hashes an outside program computes from the model's tokenizer
and chat template, then a prefix-cache reset as AllCleared."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncGenerator, Callable
from pathlib import Path

import httpx
import pytest

from harness.processes import Server
from microservice.routing.kv_events import (
    KV_EVENT_SOURCES,
    AllCleared,
    BlocksStored,
    EventBatch,
    Gap,
    KvEvent,
    KvEventsReader,
    endpoints,
)
from microservice.routing.vllm_block_hashes import block_hashes

pytestmark = pytest.mark.integration

BLOCK_SIZE = 128  # vLLM's default block size on CPU (platforms/cpu.py)
WORDS = ("the", "model", "server", "answers", "every", "request", "with", "tokens", "on", "xeon")
_prompts = itertools.count()


def messages() -> list[dict[str, str]]:
    """A chat no earlier request shares a block with: two full blocks and a part of one."""
    n = next(_prompts)
    text = " ".join(WORDS[(n + i) % len(WORDS)] for i in range(150))
    return [
        {"role": "system", "content": f"conversation {n} of the kv events test"},
        {"role": "user", "content": text},
    ]


def expected_hashes(tiny_model: Path, chat: list[dict[str, str]]) -> list[int]:
    """The prompt's full blocks as vLLM hashes them (`sha256_cbor`, seed 0): the chat template
    and tokenizer of the model folder, no special tokens added, then the chained digests."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    text = tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
    tokens = tokenizer.encode(text, add_special_tokens=False)
    return block_hashes(tokens, BLOCK_SIZE)  # seed: the PYTHONHASHSEED rendered


async def chat(http: httpx.AsyncClient, model: Path, conversation: list[dict[str, str]]) -> None:
    body = {"model": str(model), "messages": conversation, "max_tokens": 2}
    response = await http.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text


async def batches_until(
    items: AsyncGenerator[EventBatch | Gap, None],
    done: Callable[[list[KvEvent]], bool],
    timeout_s: float = 30,
) -> list[EventBatch]:
    """The batches read until the events so far are ``done``; none may be a Gap."""
    seen: list[EventBatch] = []
    async with asyncio.timeout(timeout_s):
        async for item in items:
            assert isinstance(item, EventBatch), item
            seen.append(item)
            if done([event for batch in seen for event in batch.events]):
                return seen
    raise AssertionError("the reader stopped")


def stored(events: list[KvEvent]) -> list[BlocksStored]:
    return [event for event in events if isinstance(event, BlocksStored)]


async def test_chat_blocks_are_stored_under_reproducible_hashes_then_cleared(
    vllm_server: Server, tiny_model: Path
) -> None:
    async with httpx.AsyncClient(base_url=vllm_server.base_url, timeout=120) as http:
        sources = (await http.get(KV_EVENT_SOURCES)).json()
        assert sources["0"]["topic"] == "kv" and sources["0"]["endpoint"].startswith("tcp://*:")
        [endpoint] = endpoints(vllm_server.base_url, sources)
        items = KvEventsReader(endpoint, topic="kv").read()
        try:
            # A subscription reaches the publisher a moment after connecting: until a first
            # batch arrives, each try needs a chat of its own (a cached prompt stores nothing).
            first = asyncio.ensure_future(anext(items))
            for _ in range(30):
                await chat(http, tiny_model, messages())
                done, _ = await asyncio.wait([first], timeout=1)
                if done:
                    break
            assert first.done() and isinstance(first.result(), EventBatch)

            conversation = messages()
            hashes = expected_hashes(tiny_model, conversation)
            assert len(hashes) >= 2
            await chat(http, tiny_model, conversation)
            seen = await batches_until(
                items, lambda events: set(hashes) <= {h for e in stored(events) for h in e.hashes}
            )
            events = [event for batch in seen for event in batch.events]
            mine = next(e for e in stored(events) if e.hashes[0] == hashes[0])
            assert mine.hashes[: len(hashes)] == tuple(hashes) and mine.parent is None
            assert mine.block_size == BLOCK_SIZE and len(mine.token_ids) == BLOCK_SIZE * len(
                mine.hashes
            )
            assert mine.medium == "GPU"  # vLLM's name for the engine's own cache, on CPU too

            reset = await http.post("/reset_prefix_cache")
            assert reset.status_code == 200, reset.text
            await chat(http, tiny_model, messages())  # the event goes out with the next step
            cleared = await batches_until(items, lambda events: AllCleared() in events)
            assert [b.seq for b in cleared] == list(range(cleared[0].seq, cleared[-1].seq + 1))
        finally:
            await items.aclose()
