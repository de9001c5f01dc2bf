"""The OpenAI form: ``messages`` is a list; Chat Completions JSON and ``chat.completion.chunk`` SSE.

The client's body goes to vLLM as sent (``OpenAIRequest.to_model_server``: only ``model`` is set
to the served one), and vLLM's bytes come back as they are (``chunk_event``), so the openai SDK
and LangChain's ChatOpenAI work unchanged.
"""

from __future__ import annotations

import time

from fastapi import Request
from fastapi.responses import Response

from microservice.chat import RequestIds
from microservice.schemas import OpenAIRequest
from microservice.state import ServiceState
from microservice.streaming import sse_writes, start_stream, unless_disconnected


async def answer(
    state: ServiceState, request: Request, openai: OpenAIRequest, ids: RequestIds
) -> Response:
    metrics = state.metrics
    call = openai.to_model_server(state.settings.llm_model_name, ids)
    start = time.perf_counter()
    if not call.stream:
        completion = await unless_disconnected(request, state.dispatcher.complete(call))
        metrics.ttft.labels("openai", "false").observe(time.perf_counter() - start)
        metrics.generated_tokens.inc(completion.usage.completion_tokens)
        return Response(completion.raw, media_type="application/json")

    chunks = state.dispatcher.stream(call)
    ttft = metrics.ttft.labels("openai", "true")
    keep_usage = openai.wants_usage_chunk
    events = sse_writes(chunks, chunk_event, keep_usage, metrics.generated_tokens, ttft, start)
    return await start_stream(events)


def chunk_event(chunk: bytes) -> bytes:
    """The chunk's bytes untouched, as an SSE event."""
    return b"data: " + chunk + b"\n\n"
