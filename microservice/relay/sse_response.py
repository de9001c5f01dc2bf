"""The client's stream: server-sent events that always end cleanly.

- A stream ends with its form's end event (``data: [DONE]``, none for the Responses API); a
  failure after the first byte becomes an in-band error event first, never a silently cut
  stream.
- Failures before the first event are HTTP errors: ``start_stream`` waits for it.
- When the client goes away, the events' iterator is closed, which closes the call to vLLM and
  makes vLLM abort the generation.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from microservice.errors import ServiceError, sse_error_event
from microservice.observability import audit
from microservice.observability.logs import get_logger
from microservice.relay.client_socket import ClientSocket
from microservice.relay.disconnect import CLIENT_GONE, DisconnectWatch
from microservice.relay.push import Consumer

DONE_EVENT = b"data: [DONE]\n\n"
SSE_RAW_HEADERS = (
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
)


class SSEResponse(Response):
    """Plain ASGI server-sent events: one ``send`` per write, the iterator closed however the
    response ends, the client's disconnect noticed at once by the request's ``watch`` (stopped
    here). Under uvicorn, the events after the first are offered the client's socket
    (``client_socket``), so that the stream can be pushed."""

    def __init__(
        self,
        first: bytes,
        events: AsyncGenerator[bytes, Consumer | None],
        watch: DisconnectWatch,
        end: bytes = DONE_EVENT,
    ) -> None:
        self.status_code = 200
        self.media_type = "text/event-stream"
        self.background = None
        self.raw_headers = list(SSE_RAW_HEADERS)
        self._first = first
        self._events = events
        self._watch = watch
        self._end = end

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The events as they come; a failure adds an error event; the end event always ends
        it, in the last send."""
        watch = self._watch
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            if self._first:
                await send({"type": "http.response.body", "body": self._first, "more_body": True})
            last = self._end
            socket = ClientSocket.of(scope)
            offer = socket.write if socket is not None else None
            try:
                while True:
                    try:
                        data = await self._events.asend(offer)
                    except StopAsyncIteration:
                        break
                    await send({"type": "http.response.body", "body": data, "more_body": True})
            except ServiceError as error:
                get_logger().warning("stream failed", extra={"fields": {"error": error.message}})
                audit.failed(error.error_type)
                last = sse_error_event(error) + self._end
            await send({"type": "http.response.body", "body": last, "more_body": False})
        except asyncio.CancelledError:
            if not watch.cancel.took_back():
                raise
            scope.setdefault("state", {})[CLIENT_GONE] = True
        finally:
            watch.stop()
            await self._events.aclose()


async def start_stream(
    events: AsyncGenerator[bytes, Consumer | None], watch: DisconnectWatch, end: bytes = DONE_EVENT
) -> SSEResponse:
    """Wait for the first event, so that failures before any byte become HTTP errors; a client
    gone meanwhile is ``ClientGone``. The response takes the watch over."""
    try:
        first = await watch.unless_gone(anext(events, b""))
    except BaseException:
        await events.aclose()
        raise
    return SSEResponse(first, events, watch, end)
