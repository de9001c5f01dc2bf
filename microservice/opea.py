"""The OPEA form: ``messages`` is ``{"system", "user"}``; answers exactly as the OPEA component.

Non-streaming: ``{"id", "text", "prompt", "streaming", "output_guardrail_params"}``.
Streaming: one ``data: <Python repr of the text chunk>`` event per chunk, then ``data: [DONE]``.
The request becomes vLLM's in ``OpeaRequest.to_model_server``; vLLM's answer comes back in
``answer_body`` (one JSON body) or ``text_event`` (one stream chunk).
"""

from __future__ import annotations

import time
import uuid

import orjson
from fastapi import Request
from fastapi.responses import Response

from microservice.auth.guard import Caller
from microservice.calls import Completion, RequestIds
from microservice.errors import ModelServerFailed
from microservice.schemas import OpeaRequest
from microservice.served import ServedModel
from microservice.state import ServiceState
from microservice.streaming import sse_writes, start_stream, unless_disconnected


async def answer(
    state: ServiceState,
    request: Request,
    served: ServedModel,
    caller: Caller,
    opea: OpeaRequest,
    ids: RequestIds,
    max_model_len: int | None,
) -> Response:
    settings, metrics = state.settings, state.metrics
    on_usage = state.usage_hook(caller)
    # The OPEA component answers with one JSON body when streaming is off or an output guard
    # must see the whole text first; its "streaming" field echoes the request either way.
    stream = opea.streaming and not (
        settings.llm_disable_streaming or settings.llm_output_guard_exists
    )
    call = opea.to_model_server(served.served_name, max_model_len, stream, ids)
    start = time.perf_counter()
    if not stream:
        completion = await unless_disconnected(request, served.dispatcher.complete(call))
        metrics.first_token("opea", "false").observe(time.perf_counter() - start)
        on_usage(completion.usage)
        return Response(answer_body(opea, completion), media_type="application/json")

    chunks = served.dispatcher.stream(call)
    ttft = metrics.first_token("opea", "true")
    events = sse_writes(chunks, text_event, False, on_usage, ttft, start)
    return await start_stream(events)


def answer_body(opea: OpeaRequest, completion: Completion) -> bytes:
    """The OPEA component's JSON answer."""
    return orjson.dumps(
        {
            "id": uuid.uuid4().hex,
            "text": completion.text,
            "prompt": opea.messages.user,
            "streaming": opea.streaming,
            "output_guardrail_params": opea.output_guardrail_params,
        }
    )


def text_event(chunk: bytes) -> bytes:
    """A chunk's text delta as ``data: 'text'`` (the OPEA component's format); none: nothing."""
    parsed = orjson.loads(chunk)
    if "error" in parsed:
        raise ModelServerFailed(f"model server failed mid-stream: {parsed['error']}")
    choices = parsed.get("choices")
    text = choices[0].get("delta", {}).get("content") if choices else None
    return b"data: " + repr(text).encode() + b"\n\n" if text else b""
