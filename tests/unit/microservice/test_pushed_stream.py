"""Pushed streams (``microservice/relay/push.py``) end to end: the real app on a real uvicorn socket
(httptools, as in production), our HTTP/1.1 client, and a STAND-IN model server on loopback
that writes each event on its own, paced as a GPU-served vLLM sends them, so that everything
after the first event is relayed in the sockets' callbacks."""

from __future__ import annotations

import ast
import asyncio

import orjson
import pytest

from microservice.relay.client_socket import ClientSocket
from microservice.relay.push import StopPush
from tests.sse import sse_data
from tests.unit.microservice.scripted_model_server import END, SSE_HEAD, Script, chunked
from tests.unit.microservice.standin_model_server import (
    MODEL,
    chunk,
    generated_tokens,
    usage_chunk,
)
from tests.unit.microservice.uvicorn_app import served, until, vllm

WORDS = ["Deep", " learning", " is", " 'quoted'\n"]
OPENAI = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": True}


def events(*chunks: bytes, done: bool = True) -> list[bytes]:
    out = [b"data: " + c + b"\n\n" for c in chunks]
    return [*out, b"data: [DONE]\n\n"] if done else out


def paced(pieces: list[bytes], pause: float = 0.01, end: bytes | None = END) -> Script:
    return vllm([(0, SSE_HEAD), *[(pause, chunked(p)) for p in pieces], (pause, end)])


class Writes:
    """Counts the events written from socket callbacks, and the pauses a slow client caused."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.pushed = self.paused = 0
        write = ClientSocket.write

        def counted(socket: ClientSocket, data: bytes) -> None:
            self.pushed += 1
            try:
                write(socket, data)
            except StopPush:
                self.paused += 1
                raise

        monkeypatch.setattr(ClientSocket, "write", counted)


async def test_a_paced_openai_stream_is_pushed_byte_for_byte(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    writes = Writes(monkeypatch)
    chunks = [chunk(), *[chunk(w) for w in WORDS], chunk("", finish="stop")]
    async with served(paced(events(*chunks, usage_chunk(4)))) as (upstream, client):
        answer = await client.post("/v1/chat/completions", json=OPENAI)
        connections = upstream.connections
        again = await client.post("/v1/chat/completions", json=OPENAI)
        metrics = (await client.get("/metrics")).text
    # vLLM's bytes, less the usage chunk the client did not ask for, then [DONE]
    assert answer.content == again.content == b"".join(events(*chunks))
    assert writes.pushed >= 2 * len(WORDS) and writes.paused == 0
    assert generated_tokens(metrics) == 8  # usage read from both pushed streams
    assert upstream.connections == connections  # the pushed stream gave its connection back


async def test_a_paced_opea_stream_is_pushed_as_text_events(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    writes = Writes(monkeypatch)
    chunks = [chunk(), *[chunk(w) for w in WORDS], chunk("", finish="stop"), usage_chunk(4)]
    async with served(paced(events(*chunks))) as (_, client):
        answer = await client.post("/v1/chat/completions", json={"messages": {"user": "hi"}})
    texts = sse_data(answer.text)
    assert [ast.literal_eval(t) for t in texts[:-1]] == WORDS and texts[-1] == "[DONE]"
    assert writes.pushed >= len(WORDS) - 1


@pytest.mark.parametrize(
    ("end", "pause", "message"),
    [(None, 0.01, "closed the connection"), (END, 1.0, "did not answer in time")],
    ids=["cut", "silent"],
)
async def test_a_pushed_stream_that_fails_ends_with_an_error_event_then_done(
    monkeypatch: pytest.MonkeyPatch, end: bytes | None, pause: float, message: str
) -> None:
    writes = Writes(monkeypatch)
    script = paced(events(chunk(), chunk("a"), chunk("b"), done=False), 0.01, None)
    if end is not None:  # silent: the third event comes after the read timeout
        script = vllm(
            [(0, SSE_HEAD), (0.01, chunked(*events(chunk(), done=False))),
             (0.01, chunked(*events(chunk("a"), done=False))), (pause, end)]
        )  # fmt: skip
    async with served(script, llm_request_timeout_s=0.5) as (_, client):
        answer = await client.post("/v1/chat/completions", json=OPENAI)
    data = sse_data(answer.text)
    assert data[-1] == "[DONE]" and message in orjson.loads(data[-2])["error"]["message"]
    assert orjson.loads(data[1])["choices"][0]["delta"]["content"] == "a"
    assert writes.pushed >= 1


async def test_a_client_gone_mid_push_closes_the_call_to_the_model_server() -> None:
    pieces = events(chunk(), *[chunk(f"w{n}") for n in range(100)])
    async with served(paced(pieces, pause=0.02)) as (upstream, client):
        async with client.stream("POST", "/v1/chat/completions", json=OPENAI) as answer:
            async for _ in answer.aiter_raw():
                break  # the first event came: the rest is being pushed; hang up
        await until(lambda: upstream.closed > 0, 1)  # the whole stream would take 2 s


async def test_a_slow_client_pauses_the_push_and_gets_every_event(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    writes = Writes(monkeypatch)
    big = [chunk("x" * 50_000) for _ in range(400)]  # about 20 MB: more than the sockets hold
    script = vllm([(0, SSE_HEAD + chunked(*events(chunk(), done=False))),
                   (0.05, chunked(*events(*big)) + END)])  # fmt: skip
    async with (
        served(script) as (_, client),
        client.stream("POST", "/v1/chat/completions", json=OPENAI) as answer,
    ):
        await asyncio.sleep(0.5)  # reads nothing for a while
        body = b"".join([part async for part in answer.aiter_raw()])
    assert body == b"".join(events(chunk(), *big))
    assert writes.paused >= 1
