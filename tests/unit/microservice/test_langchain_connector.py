"""The LangChain connector in process, in front of a STAND-IN model server (not vLLM): the
request is the one ``ChatOpenAI`` builds, the answer is vLLM's as it came."""

from __future__ import annotations

from typing import Any

import httpx
import orjson

from tests.sse import sse_data
from tests.unit.microservice.standin_model_server import (
    StandinModelServer,
    chunk,
    completion,
    microservice,
    sse,
    streamed,
    usage_chunk,
)

MESSAGES = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
# What the client sends: OpenAI's names, a stop string, two parameters only vLLM knows.
REQUEST: dict[str, Any] = {
    "messages": MESSAGES,
    "max_tokens": 8,
    "stop": "x",
    "top_k": 5,
    "ignore_eos": True,
}


def _is_langchains(sent: dict[str, Any]) -> None:
    """ChatOpenAI's messages and parameter names; vLLM's own parameters at the top level, as
    the openai SDK merges ``extra_body``."""
    assert sent["messages"] == MESSAGES
    assert sent["max_completion_tokens"] == 8 and "max_tokens" not in sent
    assert sent["stop"] == ["x"]
    assert sent["top_k"] == 5 and sent["ignore_eos"] is True
    assert sent["model"] == "standin-model"
    assert not {"extra_body", "extra_headers"} & sent.keys()


async def test_a_stream_sends_langchains_request_and_relays_vllms_bytes() -> None:
    chunks = [chunk(), chunk("Deep"), chunk(" learning", logprobs={"content": []}), usage_chunk(2)]
    standin = StandinModelServer(chat=lambda body: streamed([sse(*chunks)]))
    options = {"include_usage": True, "continuous_usage_stats": True}
    request = {**REQUEST, "stream": True, "stream_options": options}
    async with microservice(standin, llm_connector="langchain") as client:
        answer = await client.post(
            "/v1/chat/completions", json=request, headers={"x-request-id": "lc-1"}
        )
    assert answer.status_code == 200
    assert answer.content == sse(*chunks)  # logprobs and ids as vLLM wrote them
    sent = standin.received[0]
    _is_langchains(sent)
    assert sent["stream"] is True and sent["stream_options"] == options
    assert standin.received_headers[0]["x-request-id"] == "lc-1"


async def test_an_answer_is_vllms_body_for_langchains_request() -> None:
    body = {**completion("Deep learning", 2), "system_fingerprint": "vllm"}
    standin = StandinModelServer(chat=lambda sent: httpx.Response(200, json=body))
    async with microservice(standin, llm_connector="langchain") as client:
        answer = await client.post("/v1/chat/completions", json=REQUEST)
    assert answer.status_code == 200 and answer.json() == body
    sent = standin.received[0]
    _is_langchains(sent)
    assert not sent.get("stream") and "stream_options" not in sent


async def test_the_opea_form_goes_through_langchain_too() -> None:
    words = sse(chunk(), chunk("Deep"), chunk(" learning", finish="stop"), usage_chunk(2))
    standin = StandinModelServer(chat=lambda body: streamed([words]))
    opea = {"messages": {"system": "be brief", "user": "hi"}, "max_new_tokens": 8}
    async with microservice(standin, llm_connector="langchain") as client:
        answer = await client.post("/v1/chat/completions", json=opea)
    assert sse_data(answer.text) == ["'Deep'", "' learning'", "[DONE]"]
    assert standin.received[0]["messages"] == MESSAGES
    assert standin.received[0]["max_completion_tokens"] == 8


async def test_a_message_langchain_cannot_read_is_the_clients_error() -> None:
    standin = StandinModelServer(chat=lambda body: httpx.Response(500))
    odd = {**REQUEST, "messages": [{"role": "tool", "content": "no tool_call_id"}]}
    async with microservice(standin, llm_connector="langchain") as client:
        answer = await client.post("/v1/chat/completions", json=odd)
    assert answer.status_code == 422, answer.text
    assert orjson.loads(answer.content)["error"]["param"] == "messages"
    assert standin.received == []
