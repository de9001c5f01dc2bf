"""Send a ``ModelCall`` to a replica through the connector, and try another replica when one
fails before the client saw a byte of the answer, or resume a stream that was under way
(``resumable_stream``).

Tried again: a connection refused or lost, a replica's 5xx, a replica that went silent
(``stall_watch``). Not tried again: a refusal of the request itself (4xx: another replica
would refuse it too), and a time-out of a replica that answers its checks (the generation may
run long; the client's budget is spent).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import replace

from opentelemetry.trace import Span

from microservice.errors import (
    ModelServerError,
    ModelServerFailed,
    ModelServerRejected,
    ModelServerStalled,
    ModelServerUnreachable,
    NoHealthyReplica,
)
from microservice.observability import audit
from microservice.observability.tracing import Tracing
from microservice.relay.push import BatchConsumer
from microservice.routing.adapters import AdapterLoads
from microservice.routing.metrics import RoutingMetrics
from microservice.routing.pool import ReplicaPool
from microservice.routing.prompt_tokens import prompt_token_ids
from microservice.routing.replica import Replica
from microservice.routing.resumable_stream import OpenedStream, ResumableStream
from microservice.routing.stall_watch import StallGuard
from microservice.settings import MicroserviceSettings
from microservice.upstream.client import ModelServerClient
from microservice.upstream.connectors import Connector
from microservice.upstream.model_call import Completion, ModelCall

# A resume's /tokenize call (the request's prompt tokens, for the answer's usage) answers within
# this, or the usage counts the continued prompt less the tokens sent.
TOKENIZE_TIMEOUT_S = 2.0


def retryable(error: ModelServerError) -> bool:
    return isinstance(error, ModelServerUnreachable | ModelServerFailed)


class Dispatcher:
    def __init__(
        self,
        pool: ReplicaPool,
        connector: Connector,
        client: ModelServerClient,
        settings: MicroserviceSettings,
        metrics: RoutingMetrics,
        tracing: Tracing,
    ) -> None:
        self._pool = pool
        self._connector = connector
        self._client = client
        self._retries = settings.llm_retries
        self._resume = settings.llm_stream_resume
        self._stall_s = settings.llm_stall_s
        self._stream_stall_s = settings.llm_stream_stall_s
        self._metrics = metrics
        self._tracing = tracing
        self._adapters = AdapterLoads(client, metrics)

    def _attempt(self, call: ModelCall, replica: Replica) -> tuple[ModelCall, Span]:
        """One try on one replica: its own trace span, which vLLM's spans hang under."""
        span, headers = self._tracing.client_span(
            "model server call", replica_url=replica.url, model=str(call.body.get("model"))
        )
        return (replace(call, trace_headers=headers) if headers else call), span

    async def _replica(
        self, call: ModelCall, tried: set[str], last: ModelServerError | None
    ) -> Replica:
        """The next replica, holding the call's adapter (loaded there first if need be). On a
        retry with no other replica left (after checking them all once more), the last failure
        stands: one replica behaves as it always did. A replica that could not be reached to
        load the adapter counts as a failed try."""
        with self._tracing.span("queue wait"):
            if last is None:
                replica = await self._pool.acquire(call, tried)
            else:
                try:
                    replica = await self._pool.acquire(call, tried)
                except NoHealthyReplica:
                    raise last from None
                self._metrics.retries.inc()
        if call.adapter is None or call.adapter.name in replica.adapters:
            return replica
        try:
            with self._tracing.span("adapter load"):
                await self._adapters.ensure(replica, call.adapter)
        except ModelServerError as error:
            self._pool.release(replica)
            if not retryable(error):  # the adapter's own failure: no replica would load it
                raise
            self._failed(call, replica, error, tried)
            return await self._replica(call, tried, error)
        except BaseException:
            self._pool.release(replica)
            raise
        return replica

    def _failed(
        self, call: ModelCall, replica: Replica, error: ModelServerError, tried: set[str]
    ) -> None:
        self._pool.failed(replica, error)
        gone = isinstance(error, ModelServerRejected) and error.status == 404
        if call.adapter is not None and gone:  # the adapter left the replica since its check
            replica.adapters = replica.adapters - {call.adapter.name}
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
            guard = self._pool.stalls.guard(replica, self._stall_s)
            error: ModelServerError | None = None
            try:
                completion = await self._connector.complete(attempt, replica.url)
            except asyncio.CancelledError:
                if not guard.stalled():
                    raise
                error = ModelServerStalled.at(replica.url, self._stall_s)
            except ModelServerError as failure:
                error = failure
            else:
                replica.heard(time.monotonic())
                audit.served_by(replica.url)
                return completion
            finally:
                if error is not None:
                    span.set_attribute("error", error.message)
                self._end_try(replica, span, guard)
            assert error is not None
            self._failed(call, replica, error, tried)
            last = error
        assert last is not None
        raise last

    async def stream(self, call: ModelCall) -> AsyncGenerator[list[bytes], BatchConsumer | None]:
        """The stream of the first replica that gives its first batch: a failure before it
        moves to another replica; a failure after it resumes the answer on another one
        (``resumable_stream``). An offer to push (``relay.push``) is passed on to the
        connector. A replica's slot is held until its stream is read to its end or closed."""
        call = self._connector.prepare(call)
        relayed: list[bytes] = []
        opened = await self.open_stream(call, set(), None, self._retries + 1, relayed)
        audit.served_by(opened.replica.url)
        return ResumableStream(
            self, call, opened, relayed, resumes=self._retries, resume=self._resume,
            metrics=self._metrics,
        )  # fmt: skip

    async def open_stream(
        self,
        call: ModelCall,
        tried: set[str],
        last: ModelServerError | None,
        tries: int,
        relayed: list[bytes],
        on_replica: Callable[[Replica], Awaitable[ModelCall]] | None = None,
    ) -> OpenedStream:
        """The first replica of ``tries`` whose stream gives its first batch; ``on_replica``
        makes the call for the replica chosen (a resume counts the tokens owed there).
        ``relayed`` is where the stream keeps its chunks: the stall watch sees it grow."""
        for _ in range(tries):
            replica = await self._replica(call, tried, last)
            try:
                sent = await on_replica(replica) if on_replica is not None else call
            except BaseException:
                self._pool.release(replica)
                raise
            attempt, span = self._attempt(sent, replica)
            guard = self._pool.stalls.guard(replica, self._stream_stall_s, relayed)
            chunks = self._connector.stream(attempt, replica.url)
            guard.source = chunks
            finished = self._finisher(replica, span, guard)
            error: ModelServerError
            try:
                first = await anext(chunks)
            except StopAsyncIteration:  # an answer with no chunk at all
                return OpenedStream(replica, chunks, None, guard, finished)
            except asyncio.CancelledError:
                await chunks.aclose()
                if not guard.stalled():  # cancelled: the client went away while we waited
                    finished(None)
                    raise
                error = ModelServerStalled.at(replica.url, guard.limit_s)
            except ModelServerError as failure:
                await chunks.aclose()
                error = failure
            except BaseException:
                await chunks.aclose()
                finished(None)
                raise
            else:
                replica.heard(time.monotonic())
                span.add_event("first token")
                return OpenedStream(replica, chunks, first, guard, finished)
            span.set_attribute("error", error.message)
            self._end_try(replica, span, guard)
            self._failed(call, replica, error, tried)
            last = error
        assert last is not None
        raise last

    async def prompt_length(self, call: ModelCall, replica: Replica | None) -> int | None:
        """The prompt's length in tokens, by ``replica``'s tokenizer (None: any healthy
        replica's); None when it cannot tell in time."""
        if replica is None:
            replica = next((r for r in self._pool.replicas if r.healthy), None)
            if replica is None:
                return None
        tokens = await prompt_token_ids(self._client, replica.url, call, TOKENIZE_TIMEOUT_S)
        return None if tokens is None else len(tokens)

    def _end_try(self, replica: Replica, span: Span, guard: StallGuard) -> None:
        """A try is over: its guard no longer watched, its span ended, its slot given back."""
        self._pool.stalls.release(guard)
        span.end()
        self._pool.release(replica)

    def _finisher(
        self, replica: Replica, span: Span, guard: StallGuard
    ) -> Callable[[BaseException | None], None]:
        """What a stream's end does, once: a failure noted, the span ended, the replica's slot
        given back."""
        done = False

        def finished(error: BaseException | None) -> None:
            nonlocal done
            if done:
                return
            done = True
            if isinstance(error, ModelServerError):
                span.set_attribute("error", error.message)
                self._pool.failed(replica, error, mid_stream=True)
            else:
                replica.heard(time.monotonic())
            self._end_try(replica, span, guard)

        return finished
