"""POST /v1/responses passed through to a STAND-IN model server (not vLLM) that writes vLLM's
Responses API answers: the body as sent, each stream event with its `event:` line, the stream
ended by its `response.completed` event (no [DONE] from vLLM), the usage counted. The real-vLLM
version, through the openai SDK: tests/integration/microservice/test_responses_route.py."""

from __future__ import annotations

import json
from typing import Any

import httpx
import orjson

from tests.unit.microservice.standin_model_server import (
    MODEL,
    StandinModelServer,
    microservice,
    streamed,
)

USAGE = {"input_tokens": 5, "output_tokens": 3, "total_tokens": 8}
RESPONSE = {"id": "resp_1", "object": "response", "model": MODEL, "status": "completed"}


def event(kind: str, **fields: Any) -> bytes:
    data = orjson.dumps({**fields, "sequence_number": 0, "type": kind})
    return b"event: " + kind.encode() + b"\ndata: " + data + b"\n\n"


def answer(body: dict[str, Any]) -> httpx.Response:
    if body.get("stream"):
        return streamed(
            [
                event("response.created", response={**RESPONSE, "status": "in_progress"}),
                event("response.output_text.delta", delta="Hi"),
                event("response.completed", response={**RESPONSE, "usage": USAGE}),
            ]
        )
    return httpx.Response(200, json={**RESPONSE, "output": [], "usage": USAGE})


def generated(metrics: str) -> float:
    line = next(x for x in metrics.splitlines() if x.startswith("llm_usvc_generated_tokens_total"))
    return float(line.split()[1])


async def test_a_response_and_its_stream_pass_through_with_usage() -> None:
    server = StandinModelServer(chat=answer)
    ask = {"input": "hi", "max_output_tokens": 3, "instructions": "Be brief."}
    async with microservice(server) as client:
        whole = await client.post("/v1/responses", json=ask)
        stream = await client.post("/v1/responses", json={**ask, "stream": True})
        metrics = (await client.get("/metrics")).text
    assert whole.status_code == 200 and whole.json()["usage"] == USAGE
    assert server.received[0] == {**ask, "model": MODEL}
    blocks = stream.text.strip().split("\n\n")
    kinds = [b.split("\n")[0] for b in blocks]
    assert kinds == [
        "event: response.created",
        "event: response.output_text.delta",
        "event: response.completed",
    ]  # its last event ends it: no [DONE], as from OpenAI and vLLM
    last = json.loads(blocks[2].split("\n")[1].removeprefix("data: "))
    assert last["response"]["usage"] == USAGE
    assert generated(metrics) == 6.0  # both answers' output tokens


async def test_a_budget_over_the_context_and_an_empty_input_are_refused() -> None:
    server = StandinModelServer(chat=answer)
    async with microservice(server) as client:
        over = await client.post("/v1/responses", json={"input": "hi", "max_output_tokens": 9999})
        empty = await client.post("/v1/responses", json={"input": ""})
    assert over.status_code == 422 and over.json()["error"]["param"] == "max_output_tokens"
    assert empty.status_code == 422 and empty.json()["error"]["param"] == "input"
    assert server.received == []
