"""Precise ``cache_aware``: every replica's KV-cache events followed into its ``KvEventView``,
and a prompt's vLLM block hashes computed to look it up there.

A replica's events are found as vLLM names them (``GET /kv_event_sources``) once it is first
healthy, and followed until it leaves. Whatever goes wrong with them, the replica is routed by
the approximate index instead, said once in the log; a request never fails for it:
- the replica publishes none (no ``VLLM_KV_EVENTS_PORT``): said at info, it is a choice;
- events were lost (a restart, a dropped connection, a slow reader): the view is emptied and
  rebuilt from the next events on;
- the events' hashes are not the ones computed here (another ``--prefix-caching-hash-algo``
  or ``PYTHONHASHSEED``): the replica is not followed further;
- requests went there for ``SILENT_WARN_S`` and no event came (a blocked port, a wrong host).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable, Sequence

import orjson

from microservice.errors import ModelServerError
from microservice.observability.logs import get_logger
from microservice.routing.kv_event_view import EXPECTED_S, KvEventView
from microservice.routing.kv_events import (
    KV_EVENT_SOURCES,
    BlocksStored,
    Gap,
    KvEvent,
    KvEventsReader,
    endpoints,
)
from microservice.routing.policies import least_loaded
from microservice.routing.prompt_tokens import prompt_token_ids
from microservice.routing.replica import Replica
from microservice.routing.vllm_block_hashes import PromptBlocks, block_hashes
from microservice.upstream.client import ModelServerClient
from microservice.upstream.model_call import ModelCall

SILENT_WARN_S = 60.0
# A prompt not tokenized by then is routed by the approximate index.
TOKENIZE_TIMEOUT_S = 1.0
# The same Gap reasons after a replica restarts: expected, said at info.
RESTART_GAPS = ("the connection dropped", "the publisher restarted")


def hashing_differs(events: Iterable[KvEvent]) -> bool:
    """Whether a stored prompt's first block has another hash than this service computes."""
    for event in events:
        if isinstance(event, BlocksStored) and event.parent is None and event.hashes:
            first = event.token_ids[: event.block_size]
            if len(first) == event.block_size:
                return block_hashes(first, event.block_size) != [event.hashes[0]]
    return False


class KvEventIndex:
    def __init__(self, client: ModelServerClient, capacity: int, timeout_s: float) -> None:
        self._client = client
        self._capacity = capacity
        self._timeout_s = timeout_s
        self._views: dict[str, KvEventView] = {}
        self._feeds: dict[str, asyncio.Task[None]] = {}
        self._sent: dict[str, int] = {}

    def follow(self, url: str) -> None:
        """Start following a healthy replica's events (once)."""
        if url not in self._feeds:
            view = self._views[url] = KvEventView(self._capacity)
            self._feeds[url] = asyncio.create_task(self._feed(url, view))

    def drop(self, url: str) -> None:
        """The replica left."""
        self._views.pop(url, None)
        self._sent.pop(url, None)
        feed = self._feeds.pop(url, None)
        if feed is not None:
            feed.cancel()

    async def stop(self) -> None:
        feeds = list(self._feeds.values())
        for feed in feeds:
            feed.cancel()
        for feed in feeds:
            with contextlib.suppress(asyncio.CancelledError):
                await feed

    def live(self, url: str) -> KvEventView | None:
        view = self._views.get(url)
        return view if view is not None and view.live else None

    def blocks(self, url: str) -> int | None:
        """Blocks the replica's events say it holds; None while they are not followed."""
        view = self.live(url)
        return len(view) if view is not None else None

    def sent(self, url: str, prompt: PromptBlocks | None) -> None:
        """A request with this prompt went to the replica."""
        self._sent[url] = self._sent.get(url, 0) + 1
        view = self._views.get(url)  # live or not yet: its first events may come after these
        if view is not None and prompt is not None:
            view.expect(prompt.hashes, time.monotonic() + EXPECTED_S)

    async def prompt_blocks(
        self, call: ModelCall, replicas: Sequence[Replica]
    ) -> PromptBlocks | None:
        """The prompt in vLLM's blocks, when a replica's events can be asked for them. Not for
        a LoRA adapter's prompt: vLLM hashes its blocks with the adapter's name."""
        if call.adapter is not None:
            return None
        sizes = {r.url: v.block_size for r in replicas if (v := self.live(r.url)) and v.block_size}
        if not sizes:
            return None
        asked = least_loaded([r for r in replicas if r.url in sizes])
        tokens = await prompt_token_ids(self._client, asked.url, call, TOKENIZE_TIMEOUT_S)
        if not tokens:
            return None
        size = sizes[asked.url]
        return PromptBlocks(block_hashes(tokens, size), size, len(tokens))

    async def _feed(self, url: str, view: KvEventView) -> None:
        log = get_logger()
        try:
            reply = await self._client.get(url, KV_EVENT_SOURCES, self._timeout_s)
            found = endpoints(url, orjson.loads(reply.body)) if reply.status == 200 else []
        except (ModelServerError, ValueError, TypeError, AttributeError) as error:
            message = getattr(error, "message", str(error))
            fields = {"replica": url, "error": message}
            log.warning(
                "KV-cache events not found: routed by the approximate index",
                extra={"fields": fields},
            )
            return
        if not found:
            fields = {"replica": url, "status": reply.status}
            log.info(
                "replica publishes no KV-cache events: routed by the approximate index",
                extra={"fields": fields},
            )
            return
        log.info(
            "following KV-cache events", extra={"fields": {"replica": url, "endpoints": found}}
        )
        await asyncio.gather(
            self._warn_if_silent(url, view), *(self._read(url, e, view) for e in found)
        )

    async def _read(self, url: str, endpoint: str, view: KvEventView) -> None:
        log = get_logger()
        warned = False
        async for item in KvEventsReader(endpoint).read():
            if isinstance(item, Gap):
                view.live = False
                view.clear()
                fields = {"replica": url, "endpoint": endpoint, "reason": item.reason}
                if item.reason in RESTART_GAPS:
                    log.info(
                        "KV-cache events lost: starting the replica's view again",
                        extra={"fields": fields},
                    )
                elif not warned:
                    warned = True
                    log.warning(
                        "KV-cache events lost: starting the replica's view again",
                        extra={"fields": fields},
                    )
                continue
            if hashing_differs(item.events):
                view.live = False
                view.clear()
                fields = {"replica": url, "endpoint": endpoint}
                log.warning(
                    "KV-cache events hash blocks otherwise than this service (vLLM needs "
                    "--prefix-caching-hash-algo sha256_cbor and PYTHONHASHSEED=0, as "
                    "VLLM_KV_EVENTS_PORT sets): routed by the approximate index",
                    extra={"fields": fields},
                )
                return
            view.apply(item.events)
            view.live = True

    async def _warn_if_silent(self, url: str, view: KvEventView) -> None:
        """One warning when requests went to the replica and not one event came."""
        sent = self._sent.get(url, 0)
        await asyncio.sleep(SILENT_WARN_S)
        while not view.live:
            if self._sent.get(url, 0) > sent:
                fields = {"replica": url, "seconds": SILENT_WARN_S}
                get_logger().warning(
                    "no KV-cache events came from a replica that took requests: routed by the "
                    "approximate index until they come",
                    extra={"fields": fields},
                )
                return
            await asyncio.sleep(SILENT_WARN_S)
