"""The bounded waiting room in front of the replicas: at most ``size`` requests wait, each for
at most its deadline, first come first served; beyond that, 429 at once. Nothing unbounded."""

from __future__ import annotations

import asyncio
import math

from microservice.aio.waiters import Waiters
from microservice.errors import Overloaded
from microservice.routing.metrics import RoutingMetrics


class WaitingRoom:
    def __init__(self, size: int, timeout_s: float, metrics: RoutingMetrics) -> None:
        self._size = size
        self.timeout_s = timeout_s
        self._metrics = metrics
        self._waiters = Waiters()
        self._retry_after = max(1, math.ceil(min(timeout_s, 5.0)))

    @property
    def occupied(self) -> bool:
        return bool(self._waiters)

    def refuse(self, reason: str, message: str) -> Overloaded:
        self._metrics.rejected.labels(reason).inc()
        return Overloaded(message, reason, self._retry_after)

    async def wait(self, deadline: float) -> None:
        """Until a replica frees a slot (``wake_one``); Overloaded when full or too late."""
        if len(self._waiters) >= self._size:
            raise self.refuse(
                "queue_full",
                f"every replica is at its in-flight limit and {self._size} requests already "
                "wait; try again shortly",
            )
        remaining = deadline - asyncio.get_running_loop().time()
        self._metrics.queue_depth.set(len(self._waiters) + 1)
        try:
            async with asyncio.timeout(max(remaining, 0.0)):
                await self._waiters.wait()
        except TimeoutError:
            raise self.refuse(
                "queue_timeout",
                f"no replica had a free slot within {self.timeout_s:g} s; try again shortly",
            ) from None
        finally:
            self._metrics.queue_depth.set(len(self._waiters))

    def wake_one(self) -> None:
        self._waiters.wake_one()
