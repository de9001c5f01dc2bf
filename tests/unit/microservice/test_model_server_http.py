"""The production model-server client (``Http1Client``) against a real socket: a STAND-IN HTTP/1.1
server on loopback that writes scripted bytes, to show what vLLM cannot on demand (a refused
port, a silent server, a body cut short, a slow end after [DONE]) and how connections are
pooled."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from microservice.errors import (
    ModelServerConnectionLost,
    ModelServerRejected,
    ModelServerTimeout,
    ModelServerUnreachable,
)
from microservice.relay.push import DONE, ENDED, StopPush
from microservice.settings import MicroserviceSettings
from microservice.upstream.connectors.generic import GenericConnector
from microservice.upstream.http1.client import Http1Client
from microservice.upstream.model_call import ModelCall
from tests.unit.microservice.scripted_model_server import (
    END,
    SSE_HEAD,
    Script,
    chunked,
    json_answer,
    scripted,
)


@contextlib.asynccontextmanager
async def client(**settings: float) -> AsyncIterator[Http1Client]:
    config = MicroserviceSettings(llm_model_name="m", **settings)  # type: ignore[arg-type]
    made = Http1Client(config)
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
    monkeypatch.setattr("microservice.upstream.connectors.generic.DRAIN_TIMEOUT_S", 0.1)
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
        with pytest.raises(ModelServerConnectionLost, match="failed: ConnectionClosed"):
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


async def test_a_busy_pool_is_a_clear_503_not_a_hang() -> None:
    held: Script = lambda head: [(0, SSE_HEAD), (1.0, END)]  # noqa: E731
    async with (
        scripted(held) as (_, url),
        client(llm_max_connections=1, llm_request_timeout_s=0.3) as made,
        made.stream(url, "/v1/x", b"{}", {}),  # the one connection, held by a stream
    ):
        with pytest.raises(ModelServerUnreachable, match=r"all 1 connections .* stayed busy"):
            await made.post(url, "/v1/x", b"{}", {})


async def test_a_connection_the_server_closed_while_idle_is_not_reused() -> None:
    # The server answers, then closes the connection: the next request gets a new one.
    script: Script = lambda head: [(0, json_answer(200, b"{}")), (0.05, None)]  # noqa: E731
    async with scripted(script) as (server, url), client() as made:
        for _ in range(2):
            assert (await made.post(url, "/v1/x", b"{}", {})).status == 200
            await asyncio.sleep(0.2)
    assert server.connections == 2


async def test_a_reused_connection_closed_as_the_request_goes_is_tried_once_more(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The first connection answers once and closes as soon as the second request arrives
    # (the race with the server's keep-alive limit): the request goes again on a new one.
    answers: list[int] = []

    def script(head: bytes) -> list[tuple[float, bytes | None]]:
        answers.append(1)
        return [(0, json_answer(200, b"{}"))] if len(answers) != 2 else [(0, None)]

    async with scripted(script) as (server, url), client() as made:
        replies = [await made.post(url, "/v1/x", b"{}", {}) for _ in range(2)]
    assert [r.status for r in replies] == [200, 200] and server.connections == 2


async def test_an_idle_connection_past_keep_alive_is_replaced(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("microservice.upstream.http1.client.MODEL_SERVER_KEEPALIVE_S", 0.1)
    answer = json_answer(200, b"{}")
    async with scripted(lambda head: [(0, answer)]) as (server, url), client() as made:
        await made.post(url, "/v1/x", b"{}", {})
        await asyncio.sleep(0.2)
        await made.post(url, "/v1/x", b"{}", {})
    assert server.connections == 2


async def test_bytes_that_are_not_http_are_a_lost_connection() -> None:
    not_http = b"SSH-2.0-OpenSSH\r\n\r\n"
    async with scripted(lambda head: [(0, not_http)]) as (_, url), client() as made:
        with pytest.raises(ModelServerConnectionLost, match=r"not HTTP/1\.1"):
            await made.post(url, "/v1/x", b"{}", {})


async def test_a_url_with_a_path_prefixes_every_request() -> None:
    answer = json_answer(200, b"{}")
    async with scripted(lambda head: [(0, answer)]) as (server, url), client() as made:
        await made.post(url + "/vllm/", "/v1/chat/completions", b"{}", {"x-a": "b"})
    head = server.requests[0].split(b"\r\n")
    assert head[0] == b"POST /vllm/v1/chat/completions HTTP/1.1"
    assert b"host: " + url.split("//")[1].encode() in head and b"x-a: b" in head


async def test_a_stream_the_client_reads_slowly_pauses_the_socket_not_memory() -> None:
    # 2 MiB of events arrive at once; the reader takes them slowly: what waits in our buffer
    # stays near the high-water mark (the rest waits in the sockets).
    from microservice.upstream.http1 import connection as conn

    event = b"data: " + b"x" * 1000 + b"\n\n"
    body = chunked(*([event] * 2000)) + chunked(b"data: [DONE]\n\n") + END
    async with (
        scripted(lambda head: [(0, SSE_HEAD + body)]) as (_, url),
        client() as made,
        made.stream(url, "/v1/x", b"{}", {}) as answer,
    ):
        connection = answer._connection
        peak, total = 0, 0
        async for data in answer.reads():
            total += len(data)
            peak = max(peak, connection._buffered)
            await asyncio.sleep(0)
    assert total > 2_000_000 and peak <= conn.HIGH_WATER + 256 * 1024


def paced(*pieces: bytes | None, pause: float = 0.02) -> Script:
    return lambda head: [(0, SSE_HEAD), *[(pause, piece) for piece in pieces]]


async def test_a_pushed_body_reaches_the_consumer_until_it_stops() -> None:
    pieces = [chunked(b"data: %d\n\n" % n) for n in range(5)]
    async with scripted(paced(*pieces, END)) as (server, url), client() as made:
        for _ in range(2):
            seen: list[bytes] = []

            def consume(data: bytes, seen: list[bytes] = seen) -> None:
                seen.append(data)
                if data == b"data: 3\n\n":
                    raise StopPush(DONE)

            async with made.stream(url, "/v1/x", b"{}", {}) as answer:
                assert await answer.push(consume) == DONE
                rest = [data async for data in answer.reads()]  # back to reads after a push
            assert seen == [b"data: %d\n\n" % n for n in range(4)] and rest == [b"data: 4\n\n"]
    assert server.connections == 1  # read to its end after the push: the connection was kept


async def push_to_the_end(script: Script, **settings: float) -> str:
    async with (
        scripted(script) as (_, url),
        client(**settings) as made,
        made.stream(url, "/v1/x", b"{}", {}) as answer,
    ):
        return await answer.push(lambda data: None)


async def test_a_pushed_body_that_ends_cut_or_silent_says_so() -> None:
    assert await push_to_the_end(paced(chunked(b"data: 1\n\n"), END)) == ENDED
    with pytest.raises(ModelServerConnectionLost, match="closed the connection"):
        await push_to_the_end(paced(chunked(b"data: 1\n\n"), None))
    silent = paced(chunked(b"data: 1\n\n"), END, pause=1.0)
    with pytest.raises(ModelServerTimeout, match="did not answer in time"):
        await push_to_the_end(silent, llm_request_timeout_s=0.3)


async def test_what_the_consumer_raises_comes_out_of_push_not_into_the_socket() -> None:
    def consume(data: bytes) -> None:
        raise ValueError("the consumer failed")

    async with (
        scripted(paced(chunked(b"data: 1\n\n"), END)) as (_, url),
        client() as made,
    ):
        async with made.stream(url, "/v1/x", b"{}", {}) as answer:
            with pytest.raises(ValueError, match="the consumer failed"):
                await answer.push(consume)
        assert (await made.post(url, "/v1/x", b"{}", {})).status == 200  # the pool goes on
