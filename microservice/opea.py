"""The upstream (OPEA) form: ``messages`` is ``{"system", "user"}``; answers exactly as upstream.

Non-streaming: ``{"id", "text", "prompt", "streaming", "output_guardrail_params"}``.
Streaming: one ``data: <Python repr of the text chunk>`` event per chunk, then ``data: [DONE]``.
"""

from __future__ import annotations

import time
import uuid
from functools import partial

import orjson
from fastapi import Request
from fastapi.responses import Response

from microservice.errors import UpstreamFailed
from microservice.schemas import OpeaRequest
from microservice.state import ServiceState
from microservice.streaming import sse_writes, start_stream, unless_disconnected


async def answer(state: ServiceState, request: Request, body: OpeaRequest, rid: str) -> Response:
    settings, metrics = state.settings, state.metrics
    payload = body.to_vllm(settings.llm_model_name, state.health.max_model_len)
    # Upstream answers with one JSON body when streaming is off or an output guard must see
    # the whole text first; its "streaming" field echoes the request either way.
    stream = body.streaming and not (
        settings.llm_disable_streaming or settings.llm_output_guard_exists
    )
    start = time.perf_counter()
    if not stream:
        completion = await unless_disconnected(request, state.connector.complete(payload, rid))
        metrics.ttft.labels("opea", "false").observe(time.perf_counter() - start)
        metrics.generated_tokens.inc(completion.completion_tokens)
        doc = {
            "id": uuid.uuid4().hex,
            "text": completion.text,
            "prompt": body.messages.user,
            "streaming": body.streaming,
            "output_guardrail_params": body.output_guardrail_params,
        }
        return Response(orjson.dumps(doc), media_type="application/json")

    payload["stream"] = True
    payload["stream_options"] = {"include_usage": True}
    chunks = state.connector.stream(payload, rid)
    ttft = metrics.ttft.labels("opea", "true")
    events = sse_writes(chunks, partial(_repr_event, state), ttft, start)
    return await start_stream(events)


def _repr_event(state: ServiceState, raw: bytes) -> bytes:
    """A text delta as ``data: 'text'`` (upstream's format); usage feeds the metric."""
    chunk = orjson.loads(raw)
    if "error" in chunk:
        raise UpstreamFailed(f"model server failed mid-stream: {chunk['error']}")
    usage = chunk.get("usage")
    if usage:
        state.metrics.generated_tokens.inc(int(usage.get("completion_tokens") or 0))
    choices = chunk.get("choices")
    text = choices[0].get("delta", {}).get("content") if choices else None
    return b"data: " + repr(text).encode() + b"\n\n" if text else b""
