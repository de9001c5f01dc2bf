"""A stream that outlives its replica: when the replica fails after the stream began
(connection lost, a 5xx, a stall), the answer goes on from another replica, and the client
sees one stream (the same id, no error event, one usage chunk for the whole answer).

The hot path pays one list extend per batch: the chunks are kept as they pass (in one flat
list of bytes: nothing more for the garbage collector to track), and parsed
(``relay.partial_answer``) only when a resume is needed. A stream that cannot be continued
faithfully ends as it always did, with the error event.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, NoReturn, Protocol

from microservice import paths
from microservice.errors import ModelServerError, ModelServerStalled
from microservice.observability import audit
from microservice.observability.logs import get_logger
from microservice.relay.continued_chunks import ContinuedChunks, closing_usage_chunk
from microservice.relay.partial_answer import PartialAnswer, continuation_body, owing, read_partial
from microservice.relay.push import BatchConsumer
from microservice.routing.metrics import RoutingMetrics
from microservice.routing.replica import Replica
from microservice.routing.stall_watch import StallGuard
from microservice.upstream.model_call import ModelCall

Chunks = AsyncGenerator[list[bytes], BatchConsumer | None]


@dataclass(slots=True)
class OpenedStream:
    """One try's stream on one replica, its first batch read (None: it had no chunk)."""

    replica: Replica
    chunks: Chunks
    first: list[bytes] | None
    guard: StallGuard
    finished: Callable[[BaseException | None], None]  # once: its span, slot and failure


class StreamOpener(Protocol):
    """What a resume needs of the dispatcher."""

    async def open_stream(
        self,
        call: ModelCall,
        tried: set[str],
        last: ModelServerError | None,
        tries: int,
        relayed: list[bytes],
        on_replica: Callable[[Replica], Awaitable[ModelCall]] | None = None,
    ) -> OpenedStream: ...

    async def prompt_length(self, call: ModelCall, replica: Replica | None) -> int | None:
        """The prompt's length in tokens, asked of ``replica`` (None: any healthy one)."""
        ...


class ResumableStream(Chunks):
    def __init__(
        self,
        opener: StreamOpener,
        call: ModelCall,
        opened: OpenedStream,
        relayed: list[bytes],
        *,
        resumes: int,
        resume: bool,
        metrics: RoutingMetrics,
    ) -> None:
        self._opener = opener
        self._call = call
        self._current = opened
        self._pending = opened.first
        self._resumes = resumes
        self._resume = resume
        self._metrics = metrics
        self._relayed = relayed
        self._tried = {opened.replica.url}
        self._rewrite: ContinuedChunks | None = None
        self._offer: BatchConsumer | None = None
        self._consumer: BatchConsumer | None = None
        self._closing: list[bytes] | None = None  # a synthesized last batch, then the end
        self._done = False
        self._audit = audit.current()  # the request's: a resume may run in another context

    def _pass_on(self, offer: BatchConsumer) -> BatchConsumer:
        """The offer to push, wrapped to keep each batch (and rewrite a continuation's)."""
        if offer is not self._offer or self._consumer is None:
            keep_chunks = self._relayed.extend

            def keep(batch: list[bytes]) -> None:
                keep_chunks(batch)
                offer(batch)

            self._offer = offer
            self._consumer = keep if self._rewrite is None else self._rewrite.consumer(keep)
        return self._consumer

    async def asend(self, offer: BatchConsumer | None) -> list[bytes]:
        """The next batch, kept as it passes. Only a failure, or a resumed stream's batches,
        leave this path."""
        if self._done:
            raise StopAsyncIteration
        batch = self._pending
        if batch is not None:
            self._pending = None
        else:
            try:
                batch = await self._current.chunks.asend(
                    None if offer is None else self._pass_on(offer)
                )
            except BaseException as error:
                return await self._after(error, offer)
        if self._rewrite is not None:
            batch = self._rewrite.batch(batch)
            if not batch:
                return await self.asend(offer)
        self._relayed.extend(batch)
        return batch

    async def _after(self, error: BaseException, offer: BatchConsumer | None) -> list[bytes]:
        """The stream's end, or its failure: resumed, then the next batch; else raised."""
        if isinstance(error, asyncio.CancelledError) and self._current.guard.stalled():
            guard = self._current.guard
            error = ModelServerStalled.at(guard.replica.url, guard.limit_s)
        if not isinstance(error, ModelServerError):
            await self._end(None if isinstance(error, StopAsyncIteration) else error)
            raise error
        await self._resume_after(error)
        if self._closing is not None:
            batch, self._closing, self._done = self._closing, None, True
            return batch
        return await self.asend(offer)

    async def athrow(self, typ: Any, val: Any = None, tb: Any = None) -> list[bytes]:
        """The thrown exception ends the stream, as in a generator that does not catch it."""
        error = typ if isinstance(typ, BaseException) else val if val is not None else typ()
        await self._end(error)
        raise error

    async def aclose(self) -> None:
        await self._end(None)

    async def _end(self, error: BaseException | None) -> None:
        if self._done:
            return
        self._done = True
        await self._close_current(error)

    async def _close_current(self, error: BaseException | None) -> None:
        current = self._current
        try:
            await current.chunks.aclose()
        finally:
            current.finished(error)

    async def _resume_after(self, error: ModelServerError) -> None:
        """The answer so far continued on another replica, or ``error`` raised (the stream
        then ends with its error event)."""
        await self._close_current(error)
        if self._call.path not in (paths.CHAT, paths.COMPLETIONS):
            self._gave_up(error, "not_resumable", "a Responses API stream")
        chat = self._call.path == paths.CHAT
        partial = read_partial(self._call.body, self._relayed, chat=chat)
        why = partial.unresumable
        if why is None and not self._resume and partial.text:
            why = "LLM_STREAM_RESUME is off"
        if why is None and self._resumes <= 0:
            why = "LLM_RETRIES resumes were spent"
        if why is not None:
            self._gave_up(error, "not_resumable", why)
        self._resumes -= 1
        failed = self._current.replica.url
        self._tried.add(failed)
        continued = replace(self._call, body=continuation_body(self._call.body, partial, chat=chat))
        sent = partial.tokens if partial.text else 0  # no text: the request goes again whole
        if partial.finished:  # whole but for its usage chunk: nothing more to ask for
            self._closing = await self._closing_batch(partial, sent)
            self._log_resumed(error, failed, "(none: the answer was whole)", sent)
            if self._audit is not None:
                self._audit.resumed(None)
            return
        prompt: list[int | None] = [None]

        async def owed_on(replica: Replica) -> ModelCall:
            if sent:
                prompt[0] = await self._opener.prompt_length(self._call, replica)
            return replace(continued, body=owing(continued.body, sent))

        try:
            opened = await self._opener.open_stream(
                continued, self._tried, error, 1, self._relayed, owed_on
            )
        except ModelServerError as refused:
            self._gave_up(refused, "no_replica", "no other replica took it")
        self._tried.add(opened.replica.url)
        self._current, self._pending = opened, opened.first
        self._rewrite = ContinuedChunks(partial, sent, prompt[0], chat=chat)
        self._consumer = None
        self._log_resumed(error, failed, opened.replica.url, sent)
        if self._audit is not None:
            self._audit.resumed(opened.replica.url)

    def _log_resumed(self, error: ModelServerError, failed: str, to: str, sent: int) -> None:
        self._metrics.resumes.labels("resumed").inc()
        fields: dict[str, object] = {"request_id": self._call.request_id, "from": failed}
        fields |= {"to": to, "sent_tokens": sent, "error": error.message}
        get_logger().warning("stream resumed", extra={"fields": fields})

    async def _closing_batch(self, partial: PartialAnswer, sent: int) -> list[bytes]:
        """The usage chunk the cut took away, its prompt counted by a healthy replica (none
        can: no usage chunk)."""
        prompt = await self._opener.prompt_length(self._call, None)
        if prompt is None:
            return []
        model = str(self._call.body.get("model"))
        chat = self._call.path == paths.CHAT
        return [closing_usage_chunk(partial, prompt, sent, chat=chat, model=model)]

    def _gave_up(self, error: ModelServerError, outcome: str, why: str) -> NoReturn:
        self._done = True
        self._metrics.resumes.labels(outcome).inc()
        fields = {"request_id": self._call.request_id, "reason": why, "error": error.message}
        get_logger().warning("stream not resumed", extra={"fields": fields})
        raise error
