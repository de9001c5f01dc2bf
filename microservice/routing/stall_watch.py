"""Requests on a replica that went silent: frozen (a stopped process, a hung device), its
sockets still open, so no connection error will ever come.

Each try of a request on a replica holds a ``StallGuard``. One task per pool looks at every
guard a few times a second: a guard whose replica has answered nothing (neither this request,
nor another one, nor a check) for the guard's limit cancels its request's task, and the
dispatcher takes the request elsewhere. Progress costs the request nothing: a stream's guard
holds the list its chunks are kept in as they pass, and the watch notices it grow on its next
look, which also tells the replica's health that it is alive (passive health).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from microservice.aio.task_cancel import TaskCancel
from microservice.observability.logs import get_logger
from microservice.routing.metrics import RoutingMetrics
from microservice.routing.replica import Replica

LOOK_EVERY_S = 0.25


class StallGuard:
    """One try on one replica, made in the task that waits for it."""

    __slots__ = ("cancel", "limit_s", "progress_at", "relayed", "replica", "seen", "source")

    def __init__(
        self, replica: Replica, limit_s: float, now: float, relayed: list[Any] | None = None
    ) -> None:
        self.replica = replica
        self.limit_s = limit_s
        self.relayed = relayed  # a stream's chunks, kept as they pass: its progress
        self.seen = 0
        self.progress_at = now
        self.source: Any = None  # a stream's async generator, read from the replica
        self.cancel = TaskCancel()

    @property
    def waiting(self) -> bool:
        """Whether the task waits on the replica now; a stream's task busy elsewhere (writing
        to a slow client) is not cancelled there, where nothing would take it elsewhere. An
        async generator is running from the start of each read to its end, no longer."""
        return self.source is None or bool(getattr(self.source, "ag_running", True))

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

    def guard(
        self, replica: Replica, limit_s: float, relayed: list[Any] | None = None
    ) -> StallGuard:
        guard = StallGuard(replica, limit_s, time.monotonic(), relayed)
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
            progress = len(guard.relayed) if guard.relayed is not None else 0
            if progress != guard.seen:
                guard.seen, guard.progress_at = progress, now
                guard.replica.heard(now)
        for guard in guards:
            replica = guard.replica
            silent = now - max(guard.progress_at, replica.heard_at)
            if silent >= guard.limit_s and guard.waiting and not guard.cancel.fired:
                guard.cancel.fire()
                self._metrics.stalls.labels(replica.url).inc()
                fields = {"replica": replica.url, "silent_s": round(silent, 2)}
                get_logger().warning("request stalled", extra={"fields": fields})
