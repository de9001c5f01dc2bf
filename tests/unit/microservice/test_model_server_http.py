"""The production model-server client (aiohttp) against a real socket: a STAND-IN HTTP/1.1
server on loopback that writes scripted bytes, to show what vLLM cannot on demand (a refused
port, a silent server, a body cut short, a slow end after [DONE]) and how connections are
pooled."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import pytest

from harness.raw_http import read_request
from microservice.calls import ModelCall
from microservice.connectors.generic import GenericConnector
from microservice.errors import (
    ModelServerConnectionLost,
    ModelServerRejected,
    ModelServerTimeout,
    ModelServerUnreachable,
)
from microservice.model_server_http import AiohttpClient
from microservice.settings import MicroserviceSettings

# What the scripted server writes for one request: pieces, each written on its own, with a
# pause before it; a None piece closes the connection there.
Script = Callable[[bytes], list[tuple[float, bytes | None]]]


def chunked(*events: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(e), e) for e in events)


SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
)
END = b"0\r\n\r\n"


def json_answer(status: int, body: bytes) -> bytes:
    head = f"HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {len(body)}"
    return head.encode() + b"\r\n\r\n" + body


class ScriptedServer:
    def __init__(self, script: Script) -> None:
        self.script = script
        self.connections = 0
        self.requests: list[bytes] = []

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head, body = await read_request(reader)
                self.requests.append(head + body)
                for pause, piece in self.script(head):
                    await asyncio.sleep(pause)
                    if piece is None:
                        return
                    writer.write(piece)
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@contextlib.asynccontextmanager
async def scripted(script: Script) -> AsyncIterator[tuple[ScriptedServer, str]]:
    server = ScriptedServer(script)
    listening = await asyncio.start_server(server.serve, "127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    async with listening:
        yield server, f"http://127.0.0.1:{port}"


@contextlib.asynccontextmanager
async def client(**settings: float) -> AsyncIterator[AiohttpClient]:
    config = MicroserviceSettings(llm_model_name="m", **settings)  # type: ignore[arg-type]
    made = AiohttpClient(config)
    try:
        yield made
    finally:
        await made.aclose()


def call(stream: bool) -> ModelCall:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    return ModelCall(body=body, request_id="r1")


async def test_answers_come_back_whole_and_one_connection_serves_them_all() -> None:
    answer = json_answer(200, b'{"ok": true}')
    async with scripted(lambda head: [(0, answer)]) as (server, url), client() as made:
        replies = [await made.post(url, "/v1/x", b"{}", {"x-request-id": "a"}) for _ in range(3)]
        health = await made.get(url, "/health", 5)
    assert [r.body for r in replies] == [b'{"ok": true}'] * 3 and health.status == 200
    assert server.connections == 1
    assert b"x-request-id: a" in server.requests[0].lower()


async def test_a_stream_read_to_its_end_gives_its_connection_back() -> None:
    def script(head: bytes) -> list[tuple[float, bytes | None]]:
        first = chunked(b'data: {"n": 1}\n\n')
        rest = chunked(b'data: {"n": 2}\n\ndata: [DONE]\n\n')
        return [(0, SSE_HEAD + first), (0.05, rest), (0.05, END)]

    async with scripted(script) as (server, url), client() as made:
        for _ in range(2):
            batches = [batch async for batch in GenericConnector(made).stream(call(True), url)]
            assert batches == [[b'{"n": 1}'], [b'{"n": 2}']]  # one batch per read, [DONE] held
    assert server.connections == 1  # the end after [DONE] was read: the connection was reused


async def test_a_slow_end_after_done_drops_the_connection_not_the_answer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("microservice.connectors.generic.DRAIN_TIMEOUT_S", 0.1)
    events = chunked(b'data: {"n": 1}\n\ndata: [DONE]\n\n')
    async with (
        scripted(lambda head: [(0, SSE_HEAD + events), (1.0, END)]) as (server, url),
        client() as made,
    ):
        for _ in range(2):
            batches = [b async for b in GenericConnector(made).stream(call(True), url)]
            assert batches == [[b'{"n": 1}']]
    assert server.connections == 2


async def test_a_stream_cut_before_done_is_a_lost_connection() -> None:
    events = chunked(b'data: {"n": 1}\n\n')
    script: Script = lambda head: [(0, SSE_HEAD + events), (0.05, None)]  # noqa: E731
    seen = []
    async with scripted(script) as (_, url), client() as made:
        with pytest.raises(ModelServerConnectionLost, match="failed: ClientPayloadError"):
            async for batch in GenericConnector(made).stream(call(True), url):
                seen.append(batch)
    assert seen == [[b'{"n": 1}']]


async def test_a_refused_port_is_unreachable() -> None:
    async with scripted(lambda head: []) as (_, url):
        pass  # closed: nothing listens there now
    async with client() as made:
        with pytest.raises(ModelServerUnreachable, match="is unreachable"):
            await made.post(url, "/v1/x", b"{}", {})
        with pytest.raises(ModelServerUnreachable):
            async with made.stream(url, "/v1/x", b"{}", {}):
                pass


async def test_a_silent_server_times_out_at_the_read_timeout() -> None:
    silent: Script = lambda head: [(5, json_answer(200, b"{}"))]  # noqa: E731
    async with scripted(silent) as (_, url), client(llm_request_timeout_s=0.2) as made:
        with pytest.raises(ModelServerTimeout, match="did not answer in time"):
            await made.post(url, "/v1/x", b"{}", {})
        with pytest.raises(ModelServerTimeout):
            await made.get(url, "/health", 0.2)
        with pytest.raises(ModelServerTimeout):
            async with made.stream(url, "/v1/x", b"{}", {}):
                pass


async def test_a_refusal_keeps_vllms_message() -> None:
    body = b'{"error": {"message": "max_tokens is too large"}}'
    async with scripted(lambda head: [(0, json_answer(400, body))]) as (_, url), client() as made:
        with pytest.raises(ModelServerRejected, match="max_tokens is too large"):
            await GenericConnector(made).complete(call(False), url)
        with pytest.raises(ModelServerRejected, match="max_tokens is too large"):
            async for _ in GenericConnector(made).stream(call(True), url):
                pass


async def test_a_stream_that_goes_silent_times_out_a_slow_reader_does_not() -> None:
    first = chunked(b'data: {"n": 1}\n\n')
    rest = chunked(b'data: {"n": 2}\n\ndata: [DONE]\n\n') + END
    silent: Script = lambda head: [(0, SSE_HEAD + first), (5, rest)]  # noqa: E731
    async with scripted(silent) as (_, url), client(llm_request_timeout_s=0.3) as made:
        seen = []
        with pytest.raises(ModelServerTimeout, match="did not answer in time"):
            async for batch in GenericConnector(made).stream(call(True), url):
                seen.append(batch)
        assert seen == [[b'{"n": 1}']]
    steady: Script = lambda head: [(0, SSE_HEAD + first), (0.1, rest)]  # noqa: E731
    async with scripted(steady) as (_, url), client(llm_request_timeout_s=0.3) as made:
        batches = []
        async for batch in GenericConnector(made).stream(call(True), url):
            batches.append(batch)
            await asyncio.sleep(0.5)  # a slow client: longer than the read timeout, not a read
    assert batches == [[b'{"n": 1}'], [b'{"n": 2}']]
