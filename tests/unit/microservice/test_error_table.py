"""Every failure maps to one HTTP answer in the OpenAI error envelope, per connector, in process,
in front of a STAND-IN model server (not vLLM) that fails on demand."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.unit.microservice.standin_model_server import (
    StandinModelServer,
    completion,
    microservice,
)

CONNECTORS = ("generic", "langchain")
OPENAI = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
OPEA_STREAM = {"messages": {"user": "hi"}, "max_new_tokens": 4, "streaming": True}


def raises(error: type[httpx.TransportError]) -> Callable[[dict[str, Any]], httpx.Response]:
    def answer(body: dict[str, Any]) -> httpx.Response:
        raise error("stand-in failure")

    return answer


def vllm_error(status: int, message: str) -> Callable[[dict[str, Any]], httpx.Response]:
    body = {"error": {"message": message, "type": "BadRequestError", "code": status}}
    return lambda request: httpx.Response(status, json=body)


# (what the model server does, our status, our error type, words of our message)
TABLE = [
    (vllm_error(400, "prompt is too long"), 400, "invalid_request_error", "prompt is too long"),
    (vllm_error(422, "bad field"), 400, "invalid_request_error", "bad field"),
    (vllm_error(404, "The model `x` does not exist."), 404, "invalid_request_error", "x"),
    (vllm_error(500, "engine died"), 502, "upstream_error", "500"),
    (raises(httpx.ConnectError), 503, "upstream_unavailable", "unreachable"),
    (raises(httpx.ReadTimeout), 504, "upstream_timeout", "in time"),
]


@pytest.mark.parametrize("connector", CONNECTORS)
@pytest.mark.parametrize("request_body", [OPENAI, OPEA_STREAM], ids=["openai", "opea-stream"])
@pytest.mark.parametrize(("answer", "status", "kind", "words"), TABLE)
async def test_model_server_failures_map_to_one_answer(
    connector: str,
    request_body: dict[str, Any],
    answer: Callable[[dict[str, Any]], httpx.Response],
    status: int,
    kind: str,
    words: str,
) -> None:
    standin = StandinModelServer(chat=answer)
    async with microservice(standin, llm_connector=connector) as client:
        reply = await client.post("/v1/chat/completions", json=request_body)
    assert reply.status_code == status, reply.text
    error = reply.json()["error"]
    assert (error["type"], error["code"]) == (kind, status)
    assert words in error["message"]


async def test_answer_that_is_not_json_is_a_bad_gateway() -> None:
    standin = StandinModelServer(chat=lambda body: httpx.Response(200, content=b"<html>"))
    async with microservice(standin) as client:
        reply = await client.post("/v1/chat/completions", json=OPENAI)
    assert reply.status_code == 502 and "not JSON" in reply.json()["error"]["message"]


@pytest.mark.parametrize(
    ("content", "status", "param"),
    [
        (b"{", 400, None),
        (b"[]", 422, "body"),
        (b'{"messages": {"user": ""}}', 422, "messages.user"),
        (b'{"messages": [{"role": "user", "content": "x"}], "temperature": 9}', 422, "temperature"),
        (b'{"messages": {"user": "x"}, "max_new_tokens": 100000}', 422, "max_new_tokens"),
        (b'{"messages": [{"role": "user", "content": "x"}], "max_tokens": 600}', 422, "max_tokens"),
    ],
)
async def test_bad_requests_name_the_field_and_never_reach_vllm(
    content: bytes, status: int, param: str | None
) -> None:
    standin = StandinModelServer(chat=lambda body: httpx.Response(200, json=completion("x", 1)))
    async with microservice(standin) as client:
        reply = await client.post("/v1/chat/completions", content=content)
    assert reply.status_code == status, reply.text
    assert reply.json()["error"]["param"] == param
    assert standin.received == []
