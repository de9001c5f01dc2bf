"""Generic connector: vLLM's OpenAI API over the app's pooled client, bytes passed through.

A stream whose consumer offers to push (``relay.push``) is handed to the answer's ``push``
after its first batch.

It serves every path (chat, completions, embeddings); the LangChain connector hands it every
call that is not chat."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator

import orjson

from microservice.errors import ModelServerConnectionLost, ModelServerError, ModelServerFailed
from microservice.relay.push import DONE as PUSHED_TO_DONE
from microservice.relay.push import ENDED, BatchConsumer
from microservice.relay.upstream_events import EventSplitter
from microservice.upstream.client import ModelServerClient, status_error
from microservice.upstream.model_call import Completion, ModelCall

# What may follow [DONE] before the body ends (the chunked-encoding end) is read, so that the
# connection goes back to the pool; beyond these bounds the connection is dropped instead.
DRAIN_LIMIT = 64 * 1024
DRAIN_TIMEOUT_S = 1.0


async def _drain(reads: AsyncIterator[bytes]) -> None:
    """Read to the body's end, unless it is long or slow in coming (then the caller drops the
    connection: the client's [DONE] must not wait on a model server that misbehaves). The
    answer is whole by now: a failure here only costs the connection."""
    seen = 0
    with contextlib.suppress(TimeoutError, ModelServerError):
        async with asyncio.timeout(DRAIN_TIMEOUT_S):
            async for data in reads:
                seen += len(data)
                if seen > DRAIN_LIMIT:
                    return


class GenericConnector:
    """No SDK in the hot path: one POST; the answer's bytes returned, or its SSE events passed on
    in the batches they arrived in (one write to the client per read from vLLM)."""

    def __init__(self, client: ModelServerClient) -> None:
        self._client = client

    def prepare(self, call: ModelCall) -> ModelCall:
        """The client's body goes as the route built it."""
        return call

    @staticmethod
    def _headers(call: ModelCall) -> dict[str, str]:
        headers = {"content-type": "application/json", "x-request-id": call.request_id}
        if call.trace_headers:
            headers.update(call.trace_headers)
        return headers

    async def complete(self, call: ModelCall, base_url: str) -> Completion:
        body = orjson.dumps(call.body)
        reply = await self._client.post(base_url, call.path, body, self._headers(call))
        if reply.status != 200:
            raise status_error(reply.status, reply.body, base_url)
        try:
            return Completion(reply.body, orjson.loads(reply.body))
        except orjson.JSONDecodeError:
            raise ModelServerFailed("model server answered with a body that is not JSON") from None

    async def stream(
        self, call: ModelCall, base_url: str
    ) -> AsyncGenerator[list[bytes], BatchConsumer | None]:
        body = orjson.dumps(call.body)
        async with self._client.stream(base_url, call.path, body, self._headers(call)) as answer:
            if answer.status != 200:
                raise status_error(answer.status, await answer.body(), base_url)
            may_push = True
            reads = answer.reads()
            events = EventSplitter()
            try:
                while True:
                    data = await anext(reads, b"")
                    if not data:
                        break
                    batch, done = events.feed(data)
                    offer = (yield batch) if batch else None
                    if not done and offer is not None and may_push:
                        ended = await answer.push(events.consumer(offer))
                        may_push = False  # once: after a pause the stream goes on as reads
                        if ended == ENDED:
                            break
                        done = ended == PUSHED_TO_DONE
                    if done:
                        await _drain(reads)
                        return
                raise ModelServerConnectionLost(
                    f"model server at {base_url} closed the stream before [DONE]"
                )
            finally:
                await reads.aclose()

    async def aclose(self) -> None:
        """The client belongs to the app's lifespan, which closes it."""
