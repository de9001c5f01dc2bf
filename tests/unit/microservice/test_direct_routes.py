"""The model routes served past Starlette (``microservice/api/direct_routes.py``), on a real
uvicorn socket: the same answers as through the router, and a client that hangs up before an
answer, a stream's first event included, is a quiet 499 that closes the call to the model
server at once."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import httpx
import orjson
import pytest

from tests.log_records import Records
from tests.unit.microservice.scripted_model_server import json_answer
from tests.unit.microservice.standin_model_server import MODEL, completion
from tests.unit.microservice.uvicorn_app import served, until, vllm

CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def records() -> Iterator[Records]:
    logger = logging.getLogger("microservice")
    kept, level = Records(), logger.level
    logger.addHandler(kept)
    logger.setLevel(logging.INFO)
    try:
        yield kept
    finally:
        logger.removeHandler(kept)
        logger.setLevel(level)


async def test_model_routes_answer_and_refuse_as_through_the_router() -> None:
    answer = orjson.dumps(completion("hello", 1))
    async with served(vllm([(0, json_answer(200, answer))])) as (_, client):
        chat = await client.post("/v1/chat/completions", json=CHAT, headers={"x-request-id": "r1"})
        bad = await client.post("/v1/chat/completions", content=b"{")
        wrong_method = await client.get("/v1/chat/completions")
        metrics = (await client.get("/metrics")).text
    assert chat.status_code == 200 and chat.content == answer
    assert chat.headers["x-request-id"] == "r1"
    assert bad.status_code == 400 and bad.json()["error"]["type"] == "invalid_request_error"
    assert wrong_method.status_code == 405 and wrong_method.json()["error"]["code"] == 405
    assert 'llm_usvc_requests_total{route="/v1/chat/completions",status="200"} 1.0' in metrics
    assert 'llm_usvc_requests_total{route="/v1/chat/completions",status="400"} 1.0' in metrics


@pytest.mark.parametrize("stream", [False, True], ids=["answer", "first_event"])
async def test_a_client_gone_before_the_answer_is_a_quiet_499(
    records: Records, stream: bool
) -> None:
    """A stream's client that leaves during a long prefill closes the call too, before any
    event came."""
    late = json_answer(200, orjson.dumps(completion("late", 1)))
    async with served(vllm([(2.0, late)])) as (upstream, client):
        with pytest.raises(httpx.ReadTimeout):
            await client.post("/v1/chat/completions", json={**CHAT, "stream": stream}, timeout=0.3)
        await until(lambda: upstream.closed > 0, 1.5)  # the call to vLLM was closed at once
        await asyncio.sleep(0.05)  # the access line follows the request's end
    access = [r for r in records.records if r.getMessage() == "request"]
    assert [r.fields["status"] for r in access] == [499]  # type: ignore[attr-defined]
    assert not [r for r in records.records if r.levelno >= logging.ERROR]
