"""vLLM's chunks written as the client's SSE events, one write per batch of chunks that arrived
together; the stream's final usage chunk read here and only here."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Callable

from prometheus_client import Histogram

from microservice.errors import ServiceError
from microservice.relay.push import BatchConsumer, Consumer, RenderFailed, StopPush
from microservice.relay.usage import Usage, final_usage


class EventWriter:
    """A batch of chunks as the client's SSE bytes; keeps the final usage chunk's usage."""

    def __init__(self, event: Callable[[bytes], bytes], *, keep_usage_chunk: bool) -> None:
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
                    out.append(self._event(chunk))
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


async def client_events(
    chunks: AsyncGenerator[list[bytes], BatchConsumer | None],
    *,
    event: Callable[[bytes], bytes],
    keep_usage_chunk: bool,
    on_usage: Callable[[Usage], None],
    ttft: Histogram,
    start: float,
    on_end: Callable[[], None] | None = None,
) -> AsyncGenerator[bytes, Consumer | None]:
    """The client's bytes, a write per batch. ``event`` turns a chunk into its SSE bytes
    (``b""`` drops it). The final usage chunk goes to ``on_usage`` once the stream ended, and
    is sent on as it came only when ``keep_usage_chunk``; ``on_end`` is called after that on
    every end (finished, failed, cut, closed by a client gone). The first write is timed from
    ``start`` into ``ttft``. A writer sent in at a yield is offered on, as a batch consumer,
    to push the rest of the stream (``relay.push``)."""
    writer = EventWriter(event, keep_usage_chunk=keep_usage_chunk)
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
        try:
            await chunks.aclose()
        finally:
            if writer.usage is not None:
                on_usage(writer.usage)
            if on_end is not None:
                on_end()
