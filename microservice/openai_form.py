"""The OpenAI form: chat (``messages`` as a list), completions and embeddings, answered with
vLLM's own bytes.

The client's body goes to vLLM as sent (``to_model_server``: only ``model`` is set to the
served one), and vLLM's answer comes back as it is (``chunk_event`` for streams), so the openai
SDK and LangChain's ChatOpenAI work unchanged.
"""

from __future__ import annotations

import time

from fastapi import Request
from fastapi.responses import Response

from microservice.auth.guard import Caller
from microservice.calls import ModelCall
from microservice.served import ServedModel
from microservice.state import ServiceState
from microservice.streaming import sse_writes, start_stream, unless_disconnected


async def relay(
    state: ServiceState,
    request: Request,
    served: ServedModel,
    call: ModelCall,
    caller: Caller,
    form: str,
    keep_usage_chunk: bool = False,
) -> Response:
    """Send ``call`` to the model's replicas; answer with vLLM's body or its stream.

    ``form`` labels the time-to-first-token metric; ``keep_usage_chunk``: the client asked
    for the stream's usage chunk (it is always asked of vLLM, for the token accounting)."""
    metrics = state.metrics
    on_usage = state.usage_hook(caller)
    start = time.perf_counter()
    if not call.stream:
        completion = await unless_disconnected(request, served.dispatcher.complete(call))
        metrics.first_token(form, "false").observe(time.perf_counter() - start)
        on_usage(completion.usage)
        return Response(completion.raw, media_type="application/json")

    chunks = served.dispatcher.stream(call)
    ttft = metrics.first_token(form, "true")
    events = sse_writes(chunks, chunk_event, keep_usage_chunk, on_usage, ttft, start)
    return await start_stream(events)


def chunk_event(chunk: bytes) -> bytes:
    """The chunk's bytes untouched, as an SSE event."""
    return b"data: " + chunk + b"\n\n"
