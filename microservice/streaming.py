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
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from microservice.calls import Usage, final_usage
from microservice.errors import ServiceError, sse_error_event
from microservice.logs import get_logger

DONE_EVENT = b"data: [DONE]\n\n"
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}

T = TypeVar("T")


class ClientGone(Exception):
    """The client disconnected before the answer was ready."""


class SSEResponse(StreamingResponse):
    """A StreamingResponse whose iterator is closed however the response ends."""

    def __init__(self, events: AsyncGenerator[bytes, None]) -> None:
        super().__init__(events, media_type="text/event-stream", headers=SSE_HEADERS)
        self._events = events

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._events.aclose()


async def start_stream(events: AsyncGenerator[bytes, None]) -> SSEResponse:
    """Wait for the first event, so that failures before any byte become HTTP errors."""
    try:
        first = await anext(events)
    except StopAsyncIteration:
        first = b""
    except BaseException:
        await events.aclose()
        raise
    return SSEResponse(_ended_properly(first, events))


async def _ended_properly(
    first: bytes, events: AsyncGenerator[bytes, None]
) -> AsyncGenerator[bytes, None]:
    """Pass events through; on failure add an error event; always finish with [DONE]."""
    try:
        if first:
            yield first
        async for event in events:
            yield event
    except ServiceError as error:
        get_logger().warning("stream failed", extra={"fields": {"error": error.message}})
        yield sse_error_event(error)
    finally:
        await events.aclose()
    yield DONE_EVENT


async def sse_writes(
    chunks: AsyncGenerator[list[bytes], None],
    event: Callable[[bytes], bytes],
    keep_usage_chunk: bool,
    on_usage: Callable[[Usage], None],
    ttft: Histogram,
    start: float,
) -> AsyncGenerator[bytes, None]:
    """One write per batch of chunks that arrived together (fewer sends, fewer awaits).

    ``event`` turns a chunk into its SSE bytes (``b""`` drops it). The final usage chunk is
    read here and only here: it goes to ``on_usage`` once the stream ended, and
    it is sent on as it came only when ``keep_usage_chunk``. The first write is timed from
    ``start`` into ``ttft``."""
    first = True
    usage: Usage | None = None
    try:
        async for batch in chunks:
            out: list[bytes] = []
            failure: ServiceError | None = None
            for chunk in batch:
                found = final_usage(chunk)
                if found is not None:
                    usage = found
                    if keep_usage_chunk:
                        out.append(b"data: " + chunk + b"\n\n")
                    continue
                try:
                    out.append(event(chunk))
                except ServiceError as error:  # what came before the failure still goes out
                    failure = error
                    break
            data = b"".join(out)
            if data:
                if first:
                    ttft.observe(time.perf_counter() - start)
                    first = False
                yield data
            if failure is not None:
                raise failure
    finally:
        await chunks.aclose()
        if usage is not None:
            on_usage(usage)


async def unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    """Run ``work``; if the client disconnects first, cancel it (closing the call to vLLM)."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnected(request))
    try:
        done, _ = await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            return task.result()
        task.cancel()
        raise ClientGone()
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()


async def _disconnected(request: Request) -> None:
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return
