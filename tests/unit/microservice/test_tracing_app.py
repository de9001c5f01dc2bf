"""Tracing through the whole app, in process, in front of a STAND-IN model server (not vLLM):
the client's ``traceparent`` reaches the model server, and with an OTLP endpoint the request,
queue-wait and model-server-call spans (with the first-token event) reach a collector (an
in-process OTLP receiver STAND-IN, tests/otlp_receiver.py)."""

from __future__ import annotations

from typing import Any

import httpx

from tests.otlp_receiver import OtlpReceiver, ReceivedSpan
from tests.unit.microservice.standin_model_server import (
    MODEL,
    StandinModelServer,
    chunk,
    completion,
    microservice,
    sse,
    streamed,
    usage_chunk,
)

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
TRACEPARENT = {"traceparent": f"00-{TRACE_ID}-{CLIENT_SPAN}-01"}
CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}


def answering() -> StandinModelServer:
    def answer(body: dict[str, Any]) -> httpx.Response:
        if body.get("stream"):
            return streamed([sse(chunk(), chunk("ok"), usage_chunk(1))])
        return httpx.Response(200, json=completion("ok", 1))

    return StandinModelServer(chat=answer)


async def test_client_traceparent_reaches_the_model_server_without_an_exporter() -> None:
    standin = answering()
    async with microservice(standin) as client:
        await client.post("/v1/chat/completions", json=CHAT, headers=TRACEPARENT)
        await client.post("/v1/chat/completions", json=CHAT)
    sent, untraced = standin.received_headers
    assert sent["traceparent"] == TRACEPARENT["traceparent"]
    assert "traceparent" not in untraced


async def test_spans_of_a_streamed_request_are_exported_in_one_trace() -> None:
    standin = answering()
    with OtlpReceiver() as receiver:
        async with microservice(standin, otel_exporter_otlp_endpoint=receiver.endpoint) as client:
            answer = await client.post(
                "/v1/chat/completions", json={**CHAT, "stream": True}, headers=TRACEPARENT
            )
            assert answer.status_code == 200
        # the lifespan's end flushed the spans
        spans = receiver.wait_for(lambda got: len(got) >= 3, timeout=10)
    by_name: dict[str, ReceivedSpan] = {s.name: s for s in spans}
    request = by_name["POST /v1/chat/completions"]
    call = by_name["model server call"]
    wait = by_name["queue wait"]
    assert {s.trace_id for s in (request, call, wait)} == {TRACE_ID}
    assert request.parent_span_id == CLIENT_SPAN
    assert call.parent_span_id == request.span_id and wait.parent_span_id == request.span_id
    assert call.attributes["model"] == MODEL
    assert [name for name, _ in call.events] == ["first token"]
    assert request.service_name == "llm-microservice"
    # vLLM's spans hang under the model-server call span
    sent = standin.received_headers[-1]["traceparent"]
    assert sent == f"00-{TRACE_ID}-{call.span_id}-01"
