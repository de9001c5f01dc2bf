"""The bounded waiting room in front of a model's replicas: at most ``size`` requests wait, each
for at most its deadline, in the order of ``fair_queue`` (interactive before batch, weighted
fair between API keys). When it is full, the request last in line is refused with 429 at once:
the newcomer itself, or a waiting request the newcomer goes ahead of. Nothing unbounded."""

from __future__ import annotations

import asyncio
import math

from microservice.errors import Overloaded
from microservice.routing.fair_queue import FairQueue, Place
from microservice.routing.metrics import RoutingMetrics, key_label
from microservice.upstream.model_call import Tenant


class WaitingRoom:
    def __init__(self, size: int, timeout_s: float, metrics: RoutingMetrics) -> None:
        self._size = size
        self.timeout_s = timeout_s
        self._metrics = metrics
        self._queue = FairQueue()
        self._retry_after = max(1, math.ceil(min(timeout_s, 5.0)))

    def occupied_for(self, tenant: Tenant) -> bool:
        """Whether a request of this tenant's class or a higher one waits: a newcomer then
        queues rather than take a free slot (no interactive request waits behind batch)."""
        return self._queue.any_at_or_above(tenant.priority)

    def place(self, tenant: Tenant) -> Place:
        return self._queue.place(tenant)

    def refuse(self, reason: str, message: str) -> Overloaded:
        self._metrics.rejected.labels(reason).inc()
        return Overloaded(message, reason, self._retry_after)

    def _full(self, place: Place) -> Overloaded:
        return self.refuse(
            "queue_full",
            f"every replica is at its in-flight limit and {self._size} requests already wait, "
            f"none of them after this {place.priority} request; try again shortly",
        )

    def _make_room(self, place: Place) -> None:
        """Room for a newcomer in a full room: the last in line leaves, refused, when the
        newcomer is ahead of it; else the newcomer is refused."""
        last = self._queue.last_in_line()
        if last is None or not place.ahead_of(last):
            raise self._full(place)
        self._leave(last)
        assert last.future is not None
        last.future.set_exception(
            self.refuse(
                "queue_full",
                f"this {last.priority} request was waiting last in line in a full waiting "
                f"room ({self._size} requests) and gave its place to a request ahead of it; "
                "try again shortly",
            )
        )

    async def wait(self, place: Place, deadline: float, *, again: bool = False) -> None:
        """Until a freed slot reaches this place (``wake_one``); Overloaded when full, too late,
        or pushed out. ``again``: woken before, it found no slot: back to its place."""
        if not again and len(self._queue) >= self._size:
            self._make_room(place)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        place.future = future
        self._queue.join(place)
        self._depth(place, +1)
        try:
            async with asyncio.timeout(max(deadline - loop.time(), 0.0)):
                await future
        except BaseException as error:
            if future.done() and not future.cancelled() and future.exception() is None:
                self.wake_one()  # woken, but leaving: the slot goes to the next in line
            if isinstance(error, TimeoutError):
                raise self.refuse(
                    "queue_timeout",
                    f"no replica had a free slot within {self.timeout_s:g} s; try again shortly",
                ) from None
            raise
        finally:
            self._leave(place)

    def _leave(self, place: Place) -> None:
        if self._queue.leave(place):
            self._depth(place, -1)

    def _depth(self, place: Place, change: int) -> None:
        """The depth metrics: every model's rooms together, and per class and key."""
        self._metrics.queue_depth.inc(change)
        key = key_label(place.tenant.name)
        self._metrics.waiting_of(place.priority, key).inc(change)

    def wake_one(self) -> None:
        """The next in line gets the slot that just freed."""
        while (place := self._queue.next_up()) is not None:
            self._depth(place, -1)
            if place.future is not None and not place.future.done():
                place.future.set_result(None)
                return
