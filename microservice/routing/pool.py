"""The replicas behind the microservice: kept up to date off the request path (discovery every
``LLM_DISCOVERY_REFRESH_S``, one probe task per replica every ``LLM_PROBE_INTERVAL_S``), and
handed out to requests within the in-flight limits, through the bounded waiting room.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time

from microservice.errors import (
    ModelServerConnectionLost,
    ModelServerError,
    ModelServerRejected,
    ModelServerStalled,
    ModelServerUnreachable,
    NoHealthyReplica,
)
from microservice.observability.logs import get_logger
from microservice.routing.adapters import serving
from microservice.routing.discovery import Discovery
from microservice.routing.kv_event_index import KvEventIndex
from microservice.routing.metrics import RoutingMetrics, key_label
from microservice.routing.model_info import ModelInfo
from microservice.routing.picker import make_picker
from microservice.routing.prefix_index import PrefixIndex
from microservice.routing.probe import probe
from microservice.routing.replica import Replica
from microservice.routing.stall_watch import StallWatch
from microservice.routing.waiting_room import WaitingRoom
from microservice.settings import MicroserviceSettings
from microservice.upstream.client import ModelServerClient
from microservice.upstream.model_call import ModelCall

# An on-demand check of every replica (nothing routable) runs at most this often.
CHECK_NOW_SPACING_S = 0.25


class ReplicaPool:
    def __init__(
        self,
        settings: MicroserviceSettings,
        client: ModelServerClient,
        discovery: Discovery,
        info: ModelInfo,
        metrics: RoutingMetrics,
    ) -> None:
        self._settings = settings
        self._client = client
        self._discovery = discovery
        self._info = info
        self._metrics = metrics
        self._index = PrefixIndex(settings.llm_cache_block_chars, settings.llm_cache_index_blocks)
        interval = settings.llm_probe_interval_s
        self._probe_timeout_s = settings.llm_probe_timeout_s
        self._events = None
        if settings.llm_routing == "cache_aware" and settings.llm_cache_events:
            capacity = settings.llm_cache_index_blocks
            self._events = KvEventIndex(client, capacity, self._probe_timeout_s)
        self._pick = make_picker(
            settings.llm_routing, self._index, self._events, settings.llm_cache_min_share
        )
        self._room = WaitingRoom(settings.llm_queue_size, settings.llm_queue_timeout_s, metrics)
        self._max_in_flight = settings.llm_max_inflight_per_replica
        self._replicas: dict[str, Replica] = {}
        self._probes: dict[str, asyncio.Task[None]] = {}
        self._discovery_task: asyncio.Task[None] | None = None
        self._check_lock = asyncio.Lock()
        self._checked_at = -math.inf
        self._retry_after = min(10, max(1, math.ceil(interval)))
        self.stalls = StallWatch(metrics)

    @property
    def replicas(self) -> list[Replica]:
        return list(self._replicas.values())

    async def start(self) -> None:
        """Find the replicas and start probing them; nothing here waits for a replica."""
        await self._refresh()
        self._discovery_task = asyncio.create_task(self._discover_forever())
        self.stalls.start()

    async def stop(self) -> None:
        tasks = [t for t in (self._discovery_task, *self._probes.values()) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._events is not None:
            await self._events.stop()
        await self.stalls.stop()

    async def _discover_forever(self) -> None:
        while True:
            await asyncio.sleep(self._settings.llm_discovery_refresh_s)
            try:
                await self._refresh()
            except Exception:  # discovery must outlive any one bad lookup
                get_logger().exception("replica discovery failed")

    async def _refresh(self) -> None:
        urls = await self._discovery.replicas()
        for url in urls:
            if url not in self._replicas:
                self._replicas[url] = Replica(url)
                self._probes[url] = asyncio.create_task(self._probe_forever(self._replicas[url]))
                get_logger().info("replica added", extra={"fields": {"replica": url}})
        for url in set(self._replicas) - set(urls):
            del self._replicas[url]
            self._probes.pop(url).cancel()
            self._index.remove(url)
            if self._events is not None:
                self._events.drop(url)
            self._metrics.forget(url)
            get_logger().info("replica removed", extra={"fields": {"replica": url}})

    async def _probe_forever(self, replica: Replica) -> None:
        while True:
            try:
                await self._probe(replica)
            except Exception:  # a probe must never stop for good: the replica would freeze
                get_logger().exception(
                    "replica probe failed", extra={"fields": {"replica": replica.url}}
                )
                replica.mark_down("probe failed (see the service log)")
            await asyncio.sleep(self._settings.llm_probe_interval_s)

    async def _probe(self, replica: Replica) -> None:
        was_healthy, cache = replica.healthy, replica.cache
        await probe(self._client, replica, self._info, self._probe_timeout_s)
        if replica.cache.restarted_since(cache):
            self._index.clear(replica.url)
            if self._events is not None:  # its events may now be elsewhere, or on, or off
                self._events.drop(replica.url)
            get_logger().info(
                "replica restarted: its prefix cache is empty",
                extra={"fields": {"replica": replica.url}},
            )
        if replica.cache.kv_tokens != cache.kv_tokens:
            self._index.size_to(replica.url, replica.cache.kv_tokens)
        self._observe(replica)
        if replica.healthy and self._events is not None:
            self._events.follow(replica.url)
        if replica.healthy != was_healthy:
            fields = {"replica": replica.url, "healthy": replica.healthy, "reason": replica.reason}
            get_logger().info("replica state", extra={"fields": fields})
        if replica.healthy and not was_healthy:
            self._room.wake_one()  # a returning replica takes a waiting request at once

    async def check_now(self, *, force: bool = False) -> None:
        """Probe every replica now (nothing routable, or a stale health answer); concurrent
        callers share one round, and rounds are at least CHECK_NOW_SPACING_S apart unless
        ``force`` (a health check, which must never answer from a failure)."""
        async with self._check_lock:
            if not force and time.monotonic() - self._checked_at < CHECK_NOW_SPACING_S:
                return
            await asyncio.gather(*(self._probe(r) for r in self.replicas))
            self._checked_at = time.monotonic()

    def _routable(self, exclude: set[str]) -> list[Replica]:
        """Healthy replicas; of those, the ones heard from lately when there are any (a replica
        gone silent is not sent new work while its check waits to time out)."""
        healthy = [r for r in self._replicas.values() if r.healthy and r.url not in exclude]
        now, interval = time.monotonic(), self._settings.llm_probe_interval_s
        answering = [r for r in healthy if r.answering(now, interval)]
        return answering or healthy

    def _serving(self, call: ModelCall, exclude: set[str]) -> list[Replica]:
        """The routable replicas that can answer the call (its adapter's, ``adapters``)."""
        return serving(self._routable(exclude), call.adapter, self._retry_after)

    async def acquire(self, call: ModelCall, exclude: set[str]) -> Replica:
        """A healthy replica with a free slot, its in-flight count taken; waits in the room
        when all are full. NoHealthyReplica (503) or Overloaded (429) otherwise. With nothing
        routable, every replica is checked at once first, so a replica that just came up is
        used without waiting for its next probe."""
        routable = self._serving(call, exclude)
        if not routable:
            await self.check_now()
            routable = self._serving(call, exclude)
        loop = asyncio.get_running_loop()
        start = loop.time()
        deadline = start + self._room.timeout_s
        tenant, place = call.tenant, None
        blocks = None
        if self._events is not None and len(routable) > 1:
            blocks = await self._events.prompt_blocks(call, routable)
        while True:
            if not routable:
                raise self._none_healthy()
            free = [r for r in routable if r.in_flight < self._max_in_flight]
            if free and (place is not None or not self._room.occupied_for(tenant)):
                choice = self._pick(call, free, blocks)
                replica = choice.replica
                replica.in_flight += 1
                self._metrics.decided(choice.reason).inc()
                self._metrics.in_flight_of(replica.url).set(replica.in_flight)
                self._metrics.sent(replica.url).inc()
                waited = loop.time() - start
                self._metrics.waited(tenant.priority, key_label(tenant.name)).observe(waited)
                return replica
            again = place is not None
            place = place or self._room.place(tenant)
            await self._room.wait(place, deadline, again=again)
            routable = self._serving(call, exclude)

    def release(self, replica: Replica) -> None:
        replica.in_flight -= 1
        self._metrics.in_flight_of(replica.url).set(replica.in_flight)
        self._room.wake_one()

    def failed(
        self, replica: Replica, error: ModelServerError, *, mid_stream: bool = False
    ) -> None:
        """A request failed on this replica. A connection that could not be made, or was lost
        before the answer began, or a replica that went silent (a stall) takes it out of the
        rotation at once; an HTTP error, or a stream cut once under way, leaves that to its
        probe (one bad request must not take out the only replica)."""
        if isinstance(error, ModelServerRejected):
            return  # the client's request was refused: the replica is fine
        self._metrics.failures.labels(replica.url).inc()
        replica.last_error = error.message
        lost = isinstance(error, ModelServerConnectionLost) and not mid_stream
        if isinstance(error, ModelServerUnreachable | ModelServerStalled) or lost:
            replica.mark_down(error.message)
            self._observe(replica)

    def _observe(self, replica: Replica) -> None:
        url = replica.url
        blocks = self._events.blocks(url) if self._events is not None else None
        self._metrics.observe(replica, self._index.blocks(url), blocks)

    def _none_healthy(self) -> ModelServerError:
        """503, or 404 when every replica is up but serves other models (as vLLM itself
        answers a request for a model it does not serve)."""
        replicas = self.replicas
        if replicas and all(r.wrong_model for r in replicas):
            self._metrics.rejected.labels("model_not_served").inc()
            return ModelServerRejected(
                f"The model `{self._info.model}` does not exist on any replica: "
                + "; ".join(r.reason for r in replicas),
                status=404,
            )
        self._metrics.rejected.labels("no_healthy_replica").inc()
        reasons = "; ".join(f"{r.url}: {r.reason}" for r in replicas) or "no replica found"
        return NoHealthyReplica(f"no model server replica is ready ({reasons})", self._retry_after)
