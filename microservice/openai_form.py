"""The OpenAI form: ``messages`` is a list; Chat Completions JSON and ``chat.completion.chunk`` SSE.

The client's body goes to vLLM as sent (only ``model`` is set to the served one), and vLLM's
bytes come back as they are, so the openai SDK and LangChain's ChatOpenAI work unchanged.
"""

from __future__ import annotations

import time
from functools import partial
from typing import Any

import orjson
from fastapi import Request
from fastapi.responses import Response

from microservice.schemas import OpenAIRequest
from microservice.state import ServiceState
from microservice.streaming import sse_writes, start_stream, unless_disconnected

USAGE_ONLY = b'"choices":[]'


async def answer(
    state: ServiceState, request: Request, data: dict[str, Any], body: OpenAIRequest, rid: str
) -> Response:
    payload = {**data, "model": state.settings.llm_model_name}
    start = time.perf_counter()
    if not body.stream:
        completion = await unless_disconnected(request, state.connector.complete(payload, rid))
        state.metrics.ttft.labels("openai", "false").observe(time.perf_counter() - start)
        state.metrics.generated_tokens.inc(completion.completion_tokens)
        return Response(completion.raw, media_type="application/json")

    # Usage is always asked for (it feeds the token metric); the client sees it only if it asked.
    payload["stream_options"] = {**(body.stream_options or {}), "include_usage": True}
    chunks = state.connector.stream(payload, rid)
    event = partial(_event, state, body.wants_usage_chunk)
    events = sse_writes(chunks, event, state.metrics.ttft.labels("openai", "true"), start)
    return await start_stream(events)


def _event(state: ServiceState, show_usage: bool, chunk: bytes) -> bytes:
    """The chunk's bytes untouched, as an SSE event; usage feeds the metric."""
    if USAGE_ONLY in chunk:
        usage = orjson.loads(chunk).get("usage") or {}
        state.metrics.generated_tokens.inc(int(usage.get("completion_tokens") or 0))
        if not show_usage:
            return b""
    return b"data: " + chunk + b"\n\n"
