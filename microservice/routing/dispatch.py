"""Send a ``ModelCall`` to a replica through the connector, and try another replica when one
fails before the client saw a byte of the answer.

Tried again: a connection refused or lost, a replica's 5xx. Not tried again: a refusal of the
request itself (4xx: another replica would refuse it too), a time-out (the generation may have
run long; the client's budget is spent), and a stream whose first chunk already went out.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from dataclasses import replace

from opentelemetry.trace import Span

from microservice.errors import (
    ModelServerError,
    ModelServerFailed,
    ModelServerUnreachable,
    NoHealthyReplica,
)
from microservice.observability.tracing import Tracing
from microservice.relay.forward import Forward
from microservice.relay.push import BatchConsumer
from microservice.routing.metrics import RoutingMetrics
from microservice.routing.pool import ReplicaPool
from microservice.routing.replica import Replica
from microservice.upstream.connectors import Connector
from microservice.upstream.model_call import Completion, ModelCall


def retryable(error: ModelServerError) -> bool:
    return isinstance(error, ModelServerUnreachable | ModelServerFailed)


class Dispatcher:
    def __init__(
        self,
        pool: ReplicaPool,
        connector: Connector,
        retries: int,
        metrics: RoutingMetrics,
        tracing: Tracing,
    ) -> None:
        self._pool = pool
        self._connector = connector
        self._retries = retries
        self._metrics = metrics
        self._tracing = tracing

    def _attempt(self, call: ModelCall, replica: Replica) -> tuple[ModelCall, Span]:
        """One try on one replica: its own trace span, which vLLM's spans hang under."""
        span, headers = self._tracing.client_span(
            "model server call", replica_url=replica.url, model=str(call.body.get("model"))
        )
        return (replace(call, trace_headers=headers) if headers else call), span

    async def _replica(
        self, call: ModelCall, tried: set[str], last: ModelServerError | None
    ) -> Replica:
        """The next replica. On a retry with no other replica left (after checking them all
        once more), the last failure stands: one replica behaves as it always did."""
        with self._tracing.span("queue wait"):
            if last is None:
                return await self._pool.acquire(call, tried)
            try:
                replica = await self._pool.acquire(call, tried)
            except NoHealthyReplica:
                raise last from None
        self._metrics.retries.inc()
        return replica

    def _failed(self, replica: Replica, error: ModelServerError, tried: set[str]) -> None:
        self._pool.failed(replica, error)
        if not retryable(error):
            raise error
        tried.add(replica.url)

    async def complete(self, call: ModelCall) -> Completion:
        call = self._connector.prepare(call)
        tried: set[str] = set()
        last: ModelServerError | None = None
        for _ in range(self._retries + 1):
            replica = await self._replica(call, tried, last)
            attempt, span = self._attempt(call, replica)
            try:
                return await self._connector.complete(attempt, replica.url)
            except ModelServerError as error:
                span.set_attribute("error", error.message)
                self._failed(replica, error, tried)
                last = error
            finally:
                span.end()
                self._pool.release(replica)
        assert last is not None
        raise last

    async def stream(self, call: ModelCall) -> AsyncGenerator[list[bytes], BatchConsumer | None]:
        """The stream of the first replica that gives its first batch: a failure before it
        moves to another replica; a failure after it ends the stream (the client has bytes of
        this answer). An offer to push (``relay.push``) is passed on to the connector. The
        replica's slot is held until the stream is read to its end or closed."""
        call = self._connector.prepare(call)
        tried: set[str] = set()
        last: ModelServerError | None = None
        for _ in range(self._retries + 1):
            replica = await self._replica(call, tried, last)
            attempt, span = self._attempt(call, replica)
            chunks = self._connector.stream(attempt, replica.url)
            try:
                first = await anext(chunks)
            except ModelServerError as error:
                span.set_attribute("error", error.message)
                span.end()
                await chunks.aclose()
                self._pool.release(replica)
                self._failed(replica, error, tried)
                last = error
                continue
            except StopAsyncIteration:  # an answer with no chunk at all
                first = None
            except BaseException:  # cancelled: the client went away while we waited
                span.end()
                await chunks.aclose()
                self._pool.release(replica)
                raise
            span.add_event("first token")
            return Forward(chunks, first=first, finished=self._finisher(replica, span))
        assert last is not None
        raise last

    def _finisher(self, replica: Replica, span: Span) -> Callable[[BaseException | None], None]:
        """What a stream's end does: a mid-stream failure noted, the span ended, the replica's
        slot given back."""

        def finished(error: BaseException | None) -> None:
            if isinstance(error, ModelServerError):
                span.set_attribute("error", error.message)
                self._pool.failed(replica, error, mid_stream=True)
            span.end()
            self._pool.release(replica)

        return finished
