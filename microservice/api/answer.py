"""A model call answered: sent to the model's replicas, and vLLM's answer written in the
request's form, one JSON body or a stream of SSE events; the tokens it used counted for the
caller's key and the token metric."""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import Response

from microservice.api.state import ServiceState
from microservice.auth.admission import Admission
from microservice.forms.shape import AnswerShape
from microservice.models.served_models import ServedModel
from microservice.observability import audit
from microservice.relay.client_events import client_events
from microservice.relay.disconnect import DisconnectWatch, unless_disconnected
from microservice.relay.sse_response import start_stream
from microservice.upstream.model_call import ModelCall


async def answer(
    request: Request,
    service: ServiceState,
    *,
    served: ServedModel,
    call: ModelCall,
    admission: Admission,
    shape: AnswerShape,
) -> Response:
    """Waits for vLLM's first chunk (or whole answer) before answering, so that a failure
    before any byte is an HTTP error; a client that leaves meanwhile closes the call. The
    admission is settled with the usage; a stream settles it at its end, whatever the end."""
    audit.answering(served.name, shape.form, stream=call.stream)
    on_usage = audit.counting(service.usage_hook(admission))
    start = time.perf_counter()
    if not call.stream:
        completion = await unless_disconnected(request.receive, served.dispatcher.complete(call))
        service.metrics.first_token(shape.form, "false").observe(time.perf_counter() - start)
        audit.first_byte()
        on_usage(completion.usage)
        return Response(shape.body(completion), media_type="application/json")
    watch = DisconnectWatch(request.receive)  # the stream's response stops it
    try:
        chunks = await watch.unless_gone(served.dispatcher.stream(call))
        events = client_events(
            chunks,
            event=shape.event,
            keep_usage_chunk=shape.keep_usage_chunk,
            on_usage=on_usage,
            ttft=service.metrics.first_token(shape.form, "true"),
            start=start,
            on_end=admission.keep,  # after vLLM's usage, if any: a no-op then
        )
        response = await start_stream(events, watch, shape.end_event)
        audit.first_byte()
        return response
    except BaseException:
        watch.stop()
        raise
