"""Streams that outlive their replica, and requests taken off a replica gone silent, in process
in front of STAND-IN replicas (not vLLM) that cut, hang or freeze on cue; the real-vLLM versions
(SIGKILL, SIGSTOP) are in tests/integration/microservice/test_survival.py."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

from microservice.routing.metrics import RoutingMetrics
from microservice.routing.replica import Replica
from microservice.routing.stall_watch import StallGuard, StallWatch
from tests.sse import opea_stream_text, sse_data
from tests.unit.microservice.standin_model_server import (
    StandinModelServer,
    chunk,
    completion,
    microservice,
    sse,
    streamed,
    usage,
    usage_chunk,
)

A, B = "http://replica-a:8000", "http://replica-b:8000"
CONNECTORS = ("generic", "langchain")
ASK = {"messages": [{"role": "user", "content": "count with me"}], "max_tokens": 10}
STREAM = {**ASK, "stream": True, "stream_options": {"include_usage": True}}
OPEA_STREAM = {"messages": {"user": "count with me"}, "max_new_tokens": 10}
CUT = httpx.ReadError("replica killed (stand-in)")


def words(body: dict[str, Any]) -> dict[str, list[int]]:
    """A /tokenize STAND-IN: one token per word of the prompt's text."""
    messages = body.get("messages") or []
    text = " ".join(str(m.get("content", "")) for m in messages) + str(body.get("prompt", ""))
    return {"tokens": list(range(len(text.split())))}


def tokenizing(chat: Any) -> StandinModelServer:
    count = lambda body: httpx.Response(200, json=words(body))  # noqa: E731
    return StandinModelServer(chat=chat, tokenize=count)


def cut_after(*texts: str) -> StandinModelServer:
    """Replica A: the role chunk, ``texts``, then its connection lost."""
    pieces = [sse(chunk(), *(chunk(t) for t in texts), done=False)]
    return tokenizing(lambda body: streamed(pieces, CUT))


def going_on(*texts: str, completion_tokens: int) -> StandinModelServer:
    """Replica B: its own id, a role chunk, ``texts``, usage counting what it generated."""
    own: dict[str, Any] = {"id": "chatcmpl-b", "created": 2}
    events = [chunk(**own), *(chunk(t, **own) for t in texts)]
    last = chunk("", finish="length", **own)
    used = chunk(choices=[], usage=usage(completion_tokens, prompt_tokens=9), **own)
    return tokenizing(lambda body: streamed([sse(*events, last, used)]))


def chunks_of(reply: httpx.Response) -> list[dict[str, Any]]:
    events = sse_data(reply.text)
    assert events[-1] == "[DONE]", events[-3:]
    return [json.loads(e) for e in events[:-1]]


def text_of(chunks: list[dict[str, Any]]) -> str:
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])


@pytest.mark.parametrize("connector", CONNECTORS)
async def test_a_stream_cut_under_way_goes_on_from_another_replica(connector: str) -> None:
    a, b = cut_after("one", " two"), going_on(" three", completion_tokens=8)
    async with microservice({A: a, B: b}, llm_routing="round_robin", llm_connector=connector) as c:
        reply = await c.post("/v1/chat/completions", json=STREAM)
        metrics = (await c.get("/metrics")).text
    chunks = chunks_of(reply)
    assert text_of(chunks) == "one two three"
    assert {ch["id"] for ch in chunks} == {"chatcmpl-1"} and {ch["created"] for ch in chunks} == {1}
    assert not any("error" in ch for ch in chunks)
    roles = [ch for ch in chunks if ch["choices"] and "role" in ch["choices"][0]["delta"]]
    assert len(roles) == 1  # B's role chunk is not shown again
    # B was asked to continue the partial message, for the tokens still owed (2 sent, a chunk each).
    asked = b.received[-1]
    assert asked["messages"][-1] == {"role": "assistant", "content": "one two"}
    assert asked["continue_final_message"] is True and asked["add_generation_prompt"] is False
    assert asked.get("max_tokens", asked.get("max_completion_tokens")) == 8  # LangChain renames it
    # One usage chunk, for the whole answer: the request's own prompt, every token generated.
    usages = [ch["usage"] for ch in chunks if ch.get("usage")]
    assert usages == [{"prompt_tokens": 3, "completion_tokens": 10, "total_tokens": 13}]
    assert 'llm_usvc_stream_resumes_total{outcome="resumed"} 1.0' in metrics


async def test_an_opea_stream_cut_after_the_role_chunk_is_sent_again_resume_or_not() -> None:
    """The OPEA form never shows the role chunk: nothing of the answer reached the client."""
    for resume in (True, False):
        a, b = cut_after(), going_on("fresh", completion_tokens=1)
        replicas = {A: a, B: b}
        async with microservice(replicas, llm_routing="round_robin", llm_stream_resume=resume) as c:
            reply = await c.post("/v1/chat/completions", json=OPEA_STREAM)
        assert opea_stream_text(sse_data(reply.text)) == "fresh"
        assert "continue_final_message" not in b.received[-1]  # the request itself, again


async def test_a_completion_goes_on_from_its_prompt_and_partial_text() -> None:
    own = {"id": "cmpl-b", "object": "text_completion"}

    def text_chunk(text: str, **extra: Any) -> bytes:
        choice = {"index": 0, "text": text, "finish_reason": None}
        fields = {"id": "cmpl-1", "object": "text_completion", **extra}
        return chunk(choices=[choice], **fields)

    a = tokenizing(lambda body: streamed([sse(text_chunk(" one"), done=False)], CUT))
    b = tokenizing(lambda body: streamed([sse(text_chunk(" two", **own), usage_chunk(3))]))
    body = {"prompt": "count with me:", "max_tokens": 4, "stream": True}
    async with microservice({A: a, B: b}, llm_routing="round_robin") as c:
        reply = await c.post("/v1/completions", json=body)
    chunks = chunks_of(reply)
    assert "".join(ch["choices"][0]["text"] for ch in chunks if ch["choices"]) == " one two"
    assert {ch["id"] for ch in chunks} == {"cmpl-1"}
    assert b.received[-1]["prompt"] == "count with me: one" and b.received[-1]["max_tokens"] == 3


@pytest.mark.parametrize(
    ("asked", "first"),
    [
        ({"n": 2}, chunk("one")),
        ({}, chunk(choices=[{"index": 0, "delta": {"tool_calls": [{"index": 0}]}}])),
    ],
    ids=["n=2", "tool call"],
)
async def test_what_cannot_be_continued_faithfully_ends_with_the_error_event(
    asked: dict[str, Any], first: bytes
) -> None:
    a = tokenizing(lambda body: streamed([sse(chunk(), first, done=False)], CUT))
    b = going_on("never", completion_tokens=1)
    async with microservice({A: a, B: b}, llm_routing="round_robin") as c:
        reply = await c.post("/v1/chat/completions", json={**STREAM, **asked})
        metrics = (await c.get("/metrics")).text
    events = sse_data(reply.text)
    assert json.loads(events[-2])["error"]["code"] == 502 and events[-1] == "[DONE]"
    assert b.received == []
    assert 'llm_usvc_stream_resumes_total{outcome="not_resumable"} 1.0' in metrics


async def test_resume_off_or_no_other_replica_ends_as_before() -> None:
    for replicas, settings in [
        ({A: cut_after("one"), B: going_on("b", completion_tokens=1)}, {"llm_stream_resume": 0}),
        ({A: cut_after("one")}, {}),
    ]:
        async with microservice(replicas, llm_routing="round_robin", **settings) as c:
            reply = await c.post("/v1/chat/completions", json=STREAM)
        events = sse_data(reply.text)
        assert json.loads(events[-2])["error"]["code"] == 502 and events[-1] == "[DONE]"
        assert len(replicas[A].received) == 1  # the cut stream was not sent again


async def test_an_answer_cut_only_before_its_usage_chunk_gets_its_usage_chunk() -> None:
    whole = sse(chunk(), chunk("one"), chunk(" two", finish="stop"), done=False)
    a = tokenizing(lambda body: streamed([whole], CUT))
    b = going_on("never", completion_tokens=1)
    async with microservice({A: a, B: b}, llm_routing="round_robin") as c:
        reply = await c.post("/v1/chat/completions", json=STREAM)
    chunks = chunks_of(reply)
    assert text_of(chunks) == "one two" and b.received == []
    assert chunks[-1]["usage"] == {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}


class Frozen(httpx.AsyncByteStream):
    """A body that stops mid-way and never ends: its replica froze."""

    def __init__(self, first: bytes) -> None:
        self.first = first

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self.first
        await asyncio.Event().wait()


async def test_a_stream_from_a_replica_gone_silent_goes_on_elsewhere() -> None:
    first = sse(chunk(), chunk("one"), done=False)
    a = tokenizing(lambda body: httpx.Response(200, stream=Frozen(first)))
    b = going_on(" two", completion_tokens=2)
    settings = {"llm_routing": "round_robin", "llm_stream_stall_s": 0.5}
    async with microservice({A: a, B: b}, **settings) as c:
        reply = await asyncio.wait_for(c.post("/v1/chat/completions", json=STREAM), 5)
        metrics = (await c.get("/metrics")).text
        health = (await c.get("/v1/health_check")).json()
    assert text_of(chunks_of(reply)) == "one two"
    assert f'llm_usvc_replica_stalls_total{{replica="{A}"}} 1.0' in metrics
    assert [r["healthy"] for r in health["replicas"]] == [False, True]  # until its next check


async def test_a_request_on_a_silent_replica_is_sent_again_but_never_on_a_slow_one() -> None:
    """Silent: it answers neither the request nor its checks. Slow: it answers its checks."""
    release = asyncio.Event()

    async def held(body: dict[str, Any]) -> httpx.Response:
        await release.wait()
        return httpx.Response(200, json=completion("late", 1))

    b = StandinModelServer(chat=lambda body: httpx.Response(200, json=completion("b", 1)))
    frozen = {"llm_routing": "round_robin", "llm_stall_s": 0.5}
    a = StandinModelServer(chat=held)
    async with microservice({A: a, B: b}, **frozen) as c:
        reply = await asyncio.wait_for(c.post("/v1/chat/completions", json=ASK), 5)
    assert reply.json()["choices"][0]["message"]["content"] == "b"
    release.set()

    slow_a = StandinModelServer(chat=held)
    b = StandinModelServer(chat=lambda body: httpx.Response(200, json=completion("b", 1)))
    release.clear()
    answering = {**frozen, "llm_probe_interval_s": 0.1}
    async with microservice({A: slow_a, B: b}, **answering) as c:
        asked = asyncio.create_task(c.post("/v1/chat/completions", json=ASK))
        await asyncio.sleep(1.5)  # three stall limits, its checks answered all along
        release.set()
        reply = await asyncio.wait_for(asked, 5)
        metrics = (await c.get("/metrics")).text
    assert reply.json()["choices"][0]["message"]["content"] == "late"
    assert b.received == [] and "llm_usvc_replica_stalls_total{" not in metrics


async def test_the_stall_watch_fires_on_silence_only_where_the_request_waits_on_it() -> None:
    watch = StallWatch(RoutingMetrics(CollectorRegistry()))
    replica = Replica(A)
    replica.heard(100.0)
    guards: list[StallGuard] = []

    async def request(waiting: bool) -> str:
        guard = watch.guard(replica, 5.0, [])
        guard.progress_at = 100.0
        guard.source = SimpleNamespace(ag_running=waiting)  # its stream, reading or not
        guards.append(guard)
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            return "stalled" if guard.stalled() else "cancelled"
        return "waited"

    on_replica, writing = asyncio.create_task(request(True)), asyncio.create_task(request(False))
    await asyncio.sleep(0)
    watch.look(104.9)  # silent for less than the limit
    assert guards[0].relayed is not None
    guards[0].relayed.append(b"{}")  # a stream's chunk: the replica is alive
    watch.look(105.5)
    assert replica.heard_at == 105.5 and not any(g.cancel.fired for g in guards)
    watch.look(110.6)
    assert await on_replica == "stalled"
    assert not guards[1].cancel.fired  # busy writing to its client: not taken elsewhere
    writing.cancel()
