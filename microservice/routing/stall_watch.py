"""Requests on a replica that went silent: frozen (a stopped process, a hung device), its
sockets still open, so no connection error will ever come.

Each try of a request on a replica holds a ``StallGuard``. One task per pool looks at every
guard a few times a second: a guard whose replica has answered nothing (neither this request,
nor another one, nor a check) for the guard's limit cancels its request's task, and the
dispatcher takes the request elsewhere. Progress costs the request nothing but a counter: a
stream bumps ``progress`` per batch, and the watch notices the change on its next look, which
also tells the replica's health that it is alive (passive health).
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from microservice.aio.task_cancel import TaskCancel
from microservice.observability.logs import get_logger
from microservice.routing.metrics import RoutingMetrics
from microservice.routing.replica import Replica

LOOK_EVERY_S = 0.25


class StallGuard:
    """One try on one replica, made in the task that waits for it."""

    __slots__ = ("cancel", "limit_s", "progress", "progress_at", "replica", "seen", "waiting")

    def __init__(self, replica: Replica, limit_s: float, now: float) -> None:
        self.replica = replica
        self.limit_s = limit_s
        self.progress = 0  # bumped by a stream per batch relayed
        self.seen = 0
        self.progress_at = now
        # False while the task is busy elsewhere (writing to a slow client): it is not
        # cancelled there, where nothing would take the request elsewhere.
        self.waiting = True
        self.cancel = TaskCancel()

    def stalled(self) -> bool:
        """After a ``CancelledError``: True when the watch fired it (it is taken back)."""
        return self.cancel.took_back()


class StallWatch:
    def __init__(self, metrics: RoutingMetrics) -> None:
        self._metrics = metrics
        self._guards: set[StallGuard] = set()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._look_forever())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def guard(self, replica: Replica, limit_s: float) -> StallGuard:
        guard = StallGuard(replica, limit_s, time.monotonic())
        self._guards.add(guard)
        return guard

    def release(self, guard: StallGuard) -> None:
        self._guards.discard(guard)

    async def _look_forever(self) -> None:
        while True:
            await asyncio.sleep(LOOK_EVERY_S)
            self.look(time.monotonic())

    def look(self, now: float) -> None:
        guards = list(self._guards)
        for guard in guards:
            if guard.progress != guard.seen:
                guard.seen, guard.progress_at = guard.progress, now
                guard.replica.heard(now)
        for guard in guards:
            replica = guard.replica
            silent = now - max(guard.progress_at, replica.heard_at)
            if silent >= guard.limit_s and guard.waiting and not guard.cancel.fired:
                guard.cancel.fire()
                self._metrics.stalls.labels(replica.url).inc()
                fields = {"replica": replica.url, "silent_s": round(silent, 2)}
                get_logger().warning("request stalled", extra={"fields": fields})
