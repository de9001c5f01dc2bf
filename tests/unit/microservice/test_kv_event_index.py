"""Precise ``cache_aware`` without vLLM: vLLM's block hashes recomputed, one replica's view
kept from its events, the /tokenize request a prompt makes, the picker preferring what the
events say, and the event feed on a real ZMQ publisher on loopback, behind a STAND-IN model
server client (its /kv_event_sources and /tokenize answers are scripted): lost, unreadable or
otherwise-hashed events degrade the replica to the approximate index with one warning.
Against real vLLM: tests/integration/microservice/test_cache_aware.py."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any

import msgspec
import orjson
import pytest
import zmq
import zmq.asyncio

from microservice import paths
from microservice.routing import cache_aware, kv_event_index
from microservice.routing.cache_aware import CacheAwarePicker
from microservice.routing.kv_event_index import KvEventIndex, hashing_differs
from microservice.routing.kv_event_view import KvEventView
from microservice.routing.kv_events import AllCleared, BlocksRemoved, BlocksStored
from microservice.routing.policies import turning
from microservice.routing.prefix_index import PrefixIndex
from microservice.routing.prompt_tokens import tokenize_request
from microservice.routing.replica import Replica
from microservice.routing.vllm_block_hashes import PromptBlocks, block_hashes
from microservice.upstream.client import Reply, ReplyStream
from microservice.upstream.model_call import ModelCall

A, B = "http://127.0.0.1:18001", "http://127.0.0.1:18002"
TOKENS = list(range(1000, 1000 + 4 * 16))  # four blocks of 16
CHAT_CALL = ModelCall(body={"messages": [{"role": "user", "content": "hi"}]}, request_id="r")


def stored(tokens: list[int], block_size: int = 16, medium: str | None = "GPU") -> BlocksStored:
    return BlocksStored(
        tuple(block_hashes(tokens, block_size)), None, tuple(tokens), block_size, medium, None
    )


def test_block_hashes_match_canonical_cbor_and_chain() -> None:
    hashes = block_hashes(TOKENS, 16)
    assert len(hashes) == 4 and len(set(hashes)) == 4
    assert block_hashes(TOKENS[:40], 16) == hashes[:2]  # only full blocks, each names its prefix
    assert block_hashes([9, *TOKENS[1:]], 16)[1:] != hashes[1:]
    assert block_hashes(TOKENS, 16, seed="1") != hashes
    assert all(0 <= h < 2**64 for h in hashes)


def test_a_view_follows_stored_removed_and_cleared_blocks_of_the_engine_tier() -> None:
    view = KvEventView(capacity=100)
    hashes = block_hashes(TOKENS, 16)
    view.apply([stored(TOKENS), stored(list(range(64)), medium="CPU")])
    assert view.block_size == 16 and view.matched(hashes, now=0) == 4 and len(view) == 4
    view.apply([BlocksRemoved((hashes[2],), "GPU")])
    assert view.matched(hashes, now=0) == 2  # the chain breaks where a block was evicted
    view.apply([BlocksRemoved((hashes[0],), "CPU")])  # another tier: ours is untouched
    assert view.matched(hashes, now=0) == 2
    view.apply([AllCleared()])
    assert view.matched(hashes, now=0) == 0


def test_expected_blocks_count_until_their_time_or_their_event() -> None:
    view = KvEventView(capacity=100)
    hashes = block_hashes(TOKENS, 16)
    view.expect(hashes, until=10.0)
    assert view.matched(hashes, now=9.0) == 4
    assert view.matched(hashes, now=10.0) == 0
    view.apply([stored(TOKENS[:32])])  # two confirmed: they stay after the time
    assert view.matched(hashes, now=11.0) == 2


def test_a_view_that_outgrows_its_capacity_starts_again() -> None:
    view = KvEventView(capacity=5)
    view.apply([stored(TOKENS)])
    view.apply([stored(list(range(32)))])  # 6 blocks: removals were missed
    assert len(view) == 0


def test_hashing_differs_only_when_vllm_hashes_otherwise() -> None:
    assert not hashing_differs([stored(TOKENS)])
    other = BlocksStored(
        tuple(block_hashes(TOKENS, 16, seed="vllm-none-hash")), None, tuple(TOKENS), 16, None, None
    )
    assert hashing_differs([other])
    assert not hashing_differs([AllCleared()])


@pytest.mark.parametrize(
    ("path", "body", "asked"),
    [
        (
            paths.CHAT,
            {"model": "m", "messages": [{"role": "user", "content": "hi"}], "tools": [],
             "max_tokens": 3, "chat_template_kwargs": {"x": 1}},
            {"model": "m", "messages": [{"role": "user", "content": "hi"}], "tools": [],
             "chat_template_kwargs": {"x": 1}},
        ),
        (paths.COMPLETIONS, {"model": "m", "prompt": "once"}, {"model": "m", "prompt": "once"}),
        (paths.COMPLETIONS, {"model": "m", "prompt": [[5, 6, 7]]}, [5, 6, 7]),
        (paths.COMPLETIONS, {"model": "m", "prompt": ["a", "b"]}, None),
        (paths.CHAT, {"model": "m", "messages": [{"role": "user", "content": "hi"}],
                      "cache_salt": "s"}, None),
        (paths.CHAT, {"model": "m", "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:,"}}]}]}, None),
        (paths.EMBEDDINGS, {"model": "m", "input": "x"}, None),
    ],
)  # fmt: skip
def test_the_tokenize_request_renders_the_prompt_as_its_call_would(
    path: str, body: dict[str, Any], asked: Any
) -> None:
    assert tokenize_request(ModelCall(body=body, request_id="r", path=path)) == asked


def test_the_picker_believes_the_events_over_the_prompts_it_sent() -> None:
    """The approximate index says A holds the documents; A's events say its cache was reset
    and B holds them: the request goes to B."""
    index, events = PrefixIndex(16, 1000), KvEventIndex(StandinClient({}), 1000, 1.0)
    body = {"messages": [{"role": "user", "content": "documents " * 40}]}
    index.add(A, index.hashes("user:" + "documents " * 40 + "\n"))
    for url in (A, B):
        events._views[url] = KvEventView(1000)
        events._views[url].live = True
    events._views[B].apply([stored(TOKENS)])
    pick = CacheAwarePicker(index, events, turning(), 0.5)
    pool = [Replica(A), Replica(B)]
    call = ModelCall(body=body, request_id="r")
    assert pick(call, pool).replica.url == A  # without the prompt's vLLM blocks: approximate
    choice = pick(call, pool, PromptBlocks(block_hashes(TOKENS, 16), 16, len(TOKENS) + 5))
    assert (choice.replica.url, choice.reason) == (B, cache_aware.CACHE_MATCH)


def test_a_shared_first_block_of_a_short_prompt_is_no_advantage() -> None:
    """Two full blocks of 16 and a partial one: the first block held is 16 of 40 tokens, not
    one of two blocks."""
    events = KvEventIndex(StandinClient({}), 1000, 1.0)
    for url in (A, B):
        events._views[url] = KvEventView(1000)
        events._views[url].live = True
    events._views[A].apply([stored(TOKENS[:16])])
    prompt = PromptBlocks(block_hashes(TOKENS[:40], 16), 16, 40)
    assert prompt.share(1) == 0.4
    pick = CacheAwarePicker(PrefixIndex(16, 1000), events, turning(), 0.5)
    choice = pick(CHAT_CALL, [Replica(A), Replica(B)], prompt)
    assert choice.reason == cache_aware.NO_CACHE_ADVANTAGE


class StandinClient:
    """A STAND-IN model server client: scripted /kv_event_sources and /tokenize answers."""

    def __init__(self, sources: Mapping[str, Any], tokens: list[int] | None = None) -> None:
        self.sources = sources
        self.tokens = tokens

    async def get(self, base_url: str, path: str, timeout_s: float) -> Reply:
        assert path == "/kv_event_sources"
        return Reply(200, orjson.dumps(self.sources))

    async def post(
        self, base_url: str, path: str, body: bytes, headers: Mapping[str, str]
    ) -> Reply:
        assert path == paths.VLLM_TOKENIZE
        if self.tokens is None:
            return Reply(500, b"{}")
        return Reply(200, orjson.dumps({"tokens": self.tokens, "count": len(self.tokens)}))

    def stream(
        self, base_url: str, path: str, body: bytes, headers: Mapping[str, str]
    ) -> AbstractAsyncContextManager[ReplyStream]:
        raise NotImplementedError

    async def aclose(self) -> None:
        pass


def batch(seq: int, events: list[dict[str, Any]]) -> list[bytes]:
    return [b"kv", seq.to_bytes(8, "big"), msgspec.msgpack.encode([1.0, events, 0])]


def wire(event: BlocksStored) -> dict[str, Any]:
    return {
        "type": "BlockStored", "block_hashes": list(event.hashes), "parent_block_hash": None,
        "token_ids": list(event.token_ids), "block_size": event.block_size, "lora_id": None,
        "medium": "GPU",
    }  # fmt: skip


@pytest.fixture
async def publisher() -> AsyncIterator[tuple[zmq.asyncio.Socket, int]]:
    context = zmq.asyncio.Context.instance()
    socket = context.socket(zmq.XPUB)
    port = socket.bind_to_random_port("tcp://127.0.0.1")
    yield socket, port
    socket.close(linger=0)


async def until(condition: Any, timeout_s: float = 10) -> None:
    """Polls: the feed runs in its own task and signals nothing."""
    async with asyncio.timeout(timeout_s):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


async def test_the_feed_follows_a_publisher_then_warns_once_when_its_events_go_bad(
    publisher: tuple[zmq.asyncio.Socket, int], caplog: pytest.LogCaptureFixture
) -> None:
    socket, port = publisher
    sources = {"0": {"enable_kv_cache_events": True, "publisher": "zmq",
                     "endpoint": f"tcp://*:{port}", "topic": "kv"}}  # fmt: skip
    events = KvEventIndex(StandinClient(sources, tokens=TOKENS), 1000, 1.0)
    caplog.set_level(logging.INFO, logger="microservice")
    events.follow(A)
    assert (await asyncio.wait_for(socket.recv(), 10))[:1] == b"\x01"  # subscribed
    await socket.send_multipart(batch(0, [wire(stored(TOKENS))]))
    await until(lambda: events.blocks(A) == 4)
    blocks = await events.prompt_blocks(CHAT_CALL, [Replica(A)])
    # /tokenize's ids, in the events' block size
    assert blocks == PromptBlocks(block_hashes(TOKENS, 16), 16, len(TOKENS))

    for seq in (1, 2):  # unreadable twice: not followed until a good batch, warned once
        await socket.send_multipart([b"kv", seq.to_bytes(8, "big"), b"\x93\x01"])
        await until(lambda: events.live(A) is None)
    await socket.send_multipart(batch(3, [wire(stored(TOKENS[:16]))]))
    await until(lambda: events.blocks(A) == 1)
    lost = [r for r in caplog.records if r.getMessage().startswith("KV-cache events lost")]
    assert [r.levelname for r in lost] == ["WARNING"]

    other = stored(TOKENS)
    other = BlocksStored(
        tuple(block_hashes(TOKENS, 16, "x")), None, other.token_ids, 16, "GPU", None
    )
    await socket.send_multipart(batch(4, [wire(other)]))
    await until(lambda: events.live(A) is None)
    assert "hash blocks otherwise" in caplog.text
    assert await events.prompt_blocks(CHAT_CALL, [Replica(A)]) is None
    await events.stop()


async def test_a_replica_without_events_or_a_tokenizer_is_routed_approximately(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="microservice")
    events = KvEventIndex(StandinClient({}), 1000, 1.0)
    events.follow(A)
    await until(lambda: "publishes no KV-cache events" in caplog.text)
    assert events.live(A) is None and events.blocks(A) is None
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    view = events._views[A]
    view.live, view.block_size = True, 16
    untokenized = KvEventIndex(StandinClient({}, tokens=None), 1000, 1.0)
    untokenized._views[A] = view
    assert await untokenized.prompt_blocks(CHAT_CALL, [Replica(A)]) is None  # /tokenize failed
    await events.stop()


def test_the_tokenize_timeout_is_short() -> None:
    assert kv_event_index.TOKENIZE_TIMEOUT_S <= 1.0
