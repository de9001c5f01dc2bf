"""The stream relay in process, per connector, in front of a STAND-IN model server (not vLLM):
chunking, usage read once from the final chunk, mid-stream failures as an error event, [DONE]."""

from __future__ import annotations

import ast
import json

import httpx
import pytest

from tests.sse import opea_stream_text, sse_data
from tests.unit.microservice.standin_model_server import (
    StandinModelServer,
    chunk,
    generated_tokens,
    microservice,
    sse,
    streamed,
    usage,
    usage_chunk,
)

CONNECTORS = ("generic", "langchain")
OPEA_STREAM = {"messages": {"user": "hi"}, "max_new_tokens": 8}
OPENAI_STREAM = {"messages": [{"role": "user", "content": "hi"}], "stream": True}
WORDS = ["Deep", " learning", " is", " 'quoted'\n"]


def words_stream(split_at: int = 7) -> httpx.Response:
    """The words, then the finish and the usage chunk; every read boundary falls mid-event."""
    body = sse(chunk(), *[chunk(w) for w in WORDS], chunk("", finish="stop"), usage_chunk(4))
    pieces = [body[i : i + split_at] for i in range(0, len(body), split_at)]
    return streamed(pieces)


@pytest.mark.parametrize("connector", CONNECTORS)
async def test_opea_stream_is_the_text_in_repr_events_then_done(connector: str) -> None:
    standin = StandinModelServer(chat=lambda body: words_stream())
    async with microservice(standin, llm_connector=connector) as client:
        answer = await client.post("/v1/chat/completions", json=OPEA_STREAM)
        events = sse_data(answer.text)
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/event-stream")
        assert [ast.literal_eval(e) for e in events[:-1]] == WORDS
        assert events[-1] == "[DONE]"
        assert generated_tokens((await client.get("/metrics")).text) == 4
    sent = standin.received[0]
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
    # The openai SDK under LangChain sends the budget under its newer name.
    assert sent.get("max_tokens", sent.get("max_completion_tokens")) == 8
    assert sent["model"] == "standin-model"


@pytest.mark.parametrize("connector", CONNECTORS)
async def test_openai_stream_passes_vllm_bytes_through(connector: str) -> None:
    chunks = [chunk(), *[chunk(w) for w in WORDS], chunk("", finish="stop")]
    standin = StandinModelServer(chat=lambda body: streamed([sse(*chunks, usage_chunk(4))]))
    async with microservice(standin, llm_connector=connector) as client:
        answer = await client.post("/v1/chat/completions", json=OPENAI_STREAM)
    # Byte for byte what vLLM sent, less the usage chunk the client did not ask for.
    assert answer.content == sse(*chunks)


@pytest.mark.parametrize("connector", CONNECTORS)
async def test_usage_chunk_only_when_asked(connector: str) -> None:
    standin = StandinModelServer(chat=lambda body: words_stream())
    asked = {**OPENAI_STREAM, "stream_options": {"include_usage": True}}
    async with microservice(standin, llm_connector=connector) as client:
        plain = sse_data((await client.post("/v1/chat/completions", json=OPENAI_STREAM)).text)
        with_usage = sse_data((await client.post("/v1/chat/completions", json=asked)).text)
    assert all(json.loads(e)["choices"] for e in plain[:-1])
    last = json.loads(with_usage[-2])
    assert last["choices"] == [] and last["usage"]["completion_tokens"] == 4


@pytest.mark.parametrize("connector", CONNECTORS)
async def test_continuous_usage_is_counted_once(connector: str) -> None:
    """With continuous_usage_stats every chunk carries the running usage; the metric and the
    client's usage chunks count the final one only (the LangChain connector once added up all)."""
    running = [chunk(w, usage=usage(i + 1)) for i, w in enumerate(WORDS)]
    body = sse(*running, usage_chunk(len(WORDS)))
    standin = StandinModelServer(chat=lambda b: streamed([body]))
    options = {"include_usage": True, "continuous_usage_stats": True}
    request = {**OPENAI_STREAM, "stream_options": options}
    async with microservice(standin, llm_connector=connector) as client:
        events = sse_data((await client.post("/v1/chat/completions", json=request)).text)
        assert generated_tokens((await client.get("/metrics")).text) == len(WORDS)
    usage_only = [e for e in events[:-1] if not json.loads(e)["choices"]]
    assert len(usage_only) == 1


@pytest.mark.parametrize("connector", CONNECTORS)
@pytest.mark.parametrize("form", ["opea", "openai"])
async def test_stream_cut_mid_way_ends_with_error_event_then_done(
    connector: str, form: str
) -> None:
    first = sse(chunk(), chunk("Deep"), done=False)
    cut = httpx.ReadError("connection reset (stand-in)")
    standin = StandinModelServer(chat=lambda body: streamed([first], fail=cut))
    request = OPEA_STREAM if form == "opea" else OPENAI_STREAM
    async with microservice(standin, llm_connector=connector) as client:
        answer = await client.post("/v1/chat/completions", json=request)
    events = sse_data(answer.text)
    assert answer.status_code == 200  # the first byte was out: the failure goes in-band
    assert events[-1] == "[DONE]"
    error = json.loads(events[-2])["error"]
    assert error["code"] == 502 and "model server" in error["message"]
    assert "Deep" in answer.text


async def test_stream_ended_before_done_is_an_error_event() -> None:
    early = sse(chunk(), chunk("Deep"), done=False)
    standin = StandinModelServer(chat=lambda body: streamed([early]))
    async with microservice(standin) as client:
        events = sse_data((await client.post("/v1/chat/completions", json=OPEA_STREAM)).text)
    assert events[0] == "'Deep'" and events[-1] == "[DONE]"
    assert "closed the stream before [DONE]" in json.loads(events[-2])["error"]["message"]


async def test_vllm_error_event_mid_stream_becomes_ours() -> None:
    failing = sse(chunk("Deep"), orjson_error("engine died"))
    standin = StandinModelServer(chat=lambda body: streamed([failing]))
    async with microservice(standin) as client:
        events = sse_data((await client.post("/v1/chat/completions", json=OPEA_STREAM)).text)
    assert opea_stream_text([events[0], "[DONE]"]) == "Deep"
    assert "engine died" in json.loads(events[1])["error"]["message"]
    assert events[2:] == ["[DONE]"]


def orjson_error(message: str) -> bytes:
    return json.dumps({"error": {"message": message, "type": "InternalServerError"}}).encode()
