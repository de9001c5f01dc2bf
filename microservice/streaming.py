"""SSE responses that always end cleanly, and non-streaming calls that stop on disconnect.

- A stream ends with ``data: [DONE]``; a failure after the first byte becomes an in-band error
  event first, never a silently cut stream.
- When the client goes away, the request to vLLM is closed, which makes vLLM abort the
  generation: the body iterator is always closed, and a non-streaming call is cancelled.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import TypeVar

from prometheus_client import Histogram
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from microservice.calls import Usage, final_usage
from microservice.client_socket import ClientSocket
from microservice.errors import ServiceError, sse_error_event
from microservice.logs import get_logger
from microservice.own_cancel import OwnCancel
from microservice.push import BatchConsumer, Consumer, RenderFailed, StopPush

DONE_EVENT = b"data: [DONE]\n\n"
SSE_RAW_HEADERS = (
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
)

T = TypeVar("T")


class ClientGone(Exception):
    """The client disconnected before the answer was ready."""


class _DisconnectWatch:
    """Cancels the current task when the client disconnects: one waiting ``receive()`` per
    request, nothing per event (Starlette's StreamingResponse runs a task group per stream
    under ASGI < 2.4, which uvicorn reports, and that showed in the profile)."""

    def __init__(self, receive: Receive) -> None:
        self.cancel = OwnCancel()
        self._waiter = asyncio.ensure_future(receive())
        self._waiter.add_done_callback(self._on_message)

    def _on_message(self, waiter: asyncio.Future[Message]) -> None:
        if waiter.cancelled() or waiter.exception() is not None:
            return
        if waiter.result()["type"] == "http.disconnect":
            self.cancel.fire()

    def stop(self) -> None:
        self._waiter.remove_done_callback(self._on_message)
        self._waiter.cancel()


class SSEResponse(Response):
    """Plain ASGI server-sent events: one ``send`` per write, the iterator closed however the
    response ends, the client's disconnect noticed at once. Under uvicorn, the events after the
    first are offered the client's socket (``client_socket``), so that the stream can be
    pushed."""

    def __init__(self, first: bytes, events: AsyncGenerator[bytes, Consumer | None]) -> None:
        self.status_code = 200
        self.media_type = "text/event-stream"
        self.background = None
        self.raw_headers = list(SSE_RAW_HEADERS)
        self._first = first
        self._events = events

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The events as they come; a failure adds an error event; [DONE] always ends it, in
        the last send."""
        watch = _DisconnectWatch(receive)
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            if self._first:
                await send({"type": "http.response.body", "body": self._first, "more_body": True})
            last = DONE_EVENT
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
                last = sse_error_event(error) + DONE_EVENT
            await send({"type": "http.response.body", "body": last, "more_body": False})
        except asyncio.CancelledError:
            if not watch.cancel.took_back():
                raise
        finally:
            watch.stop()
            await self._events.aclose()


async def start_stream(events: AsyncGenerator[bytes, Consumer | None]) -> SSEResponse:
    """Wait for the first event, so that failures before any byte become HTTP errors."""
    try:
        first = await anext(events)
    except StopAsyncIteration:
        first = b""
    except BaseException:
        await events.aclose()
        raise
    return SSEResponse(first, events)


class EventWriter:
    """A batch of chunks as the client's SSE bytes; keeps the final usage chunk's usage."""

    def __init__(self, event: Callable[[bytes], bytes], keep_usage_chunk: bool) -> None:
        self._event = event
        self._keep_usage_chunk = keep_usage_chunk
        self.usage: Usage | None = None

    def render(self, batch: list[bytes]) -> tuple[bytes, ServiceError | None]:
        """The bytes to write, and the failure that ended the batch (what came before it still
        goes out)."""
        out: list[bytes] = []
        for chunk in batch:
            found = final_usage(chunk)
            if found is not None:
                self.usage = found
                if self._keep_usage_chunk:
                    out.append(b"data: " + chunk + b"\n\n")
                continue
            try:
                out.append(self._event(chunk))
            except ServiceError as error:
                return b"".join(out), error
        return b"".join(out), None

    def consumer(self, write: Consumer) -> BatchConsumer:
        """For a pushed stream: each batch rendered and written from the socket's callback."""
        render = self.render

        def consume(batch: list[bytes]) -> None:
            data, failure = render(batch)
            if data:
                try:
                    write(data)
                except StopPush:
                    if failure is None:
                        raise  # the client asked to pause; a failure still ends the stream
            if failure is not None:
                raise RenderFailed(failure)

        return consume


async def sse_writes(
    chunks: AsyncGenerator[list[bytes], BatchConsumer | None],
    event: Callable[[bytes], bytes],
    keep_usage_chunk: bool,
    on_usage: Callable[[Usage], None],
    ttft: Histogram,
    start: float,
) -> AsyncGenerator[bytes, Consumer | None]:
    """One write per batch of chunks that arrived together (fewer sends, fewer awaits).

    ``event`` turns a chunk into its SSE bytes (``b""`` drops it). The final usage chunk is
    read here and only here: it goes to ``on_usage`` once the stream ended, and
    it is sent on as it came only when ``keep_usage_chunk``. The first write is timed from
    ``start`` into ``ttft``. A writer sent in at a yield is offered on, as a batch consumer,
    to push the rest of the stream (``microservice.push``)."""
    writer = EventWriter(event, keep_usage_chunk)
    timed = False
    offered: BatchConsumer | None = None
    try:
        offer: Consumer | None = None
        while True:
            if offer is not None and offered is None:
                offered = writer.consumer(offer)
            try:
                batch = await chunks.asend(offered)
            except StopAsyncIteration:
                return
            except RenderFailed as failed:  # from a pushed batch, after its bytes were written
                raise failed.error from None
            data, failure = writer.render(batch)
            if data:
                if not timed:
                    ttft.observe(time.perf_counter() - start)
                    timed = True
                offer = yield data
            if failure is not None:
                raise failure
    finally:
        await chunks.aclose()
        if writer.usage is not None:
            on_usage(writer.usage)


async def unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    """Await ``work``; if the client disconnects first, it is cancelled (closing the call to
    vLLM) and ``ClientGone`` raised."""
    watch = _DisconnectWatch(request.receive)
    try:
        return await work
    except asyncio.CancelledError:
        if not watch.cancel.took_back():
            raise
        raise ClientGone() from None
    finally:
        watch.stop()
