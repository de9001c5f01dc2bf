"""Waiters woken one at a time, first come first served, for a pooled connection that frees
(``upstream/http1/pool.py``); the waiting room for a replica's slot orders its waiters itself
(``routing/fair_queue.py``), with the same pass-on rule.

A waiter that was woken but leaves anyway (its time ran out or its request was cancelled in the
same instant) passes its turn to the next in line, so a freed slot is never lost.
"""

from __future__ import annotations

import asyncio
import collections


class Waiters:
    def __init__(self) -> None:
        self._futures: collections.deque[asyncio.Future[None]] = collections.deque()

    def __len__(self) -> int:
        return len(self._futures)

    async def wait(self) -> None:
        """Until ``wake_one`` reaches this waiter; bound it with ``asyncio.timeout``."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._futures.append(future)
        try:
            await future
        except BaseException:
            if future.done() and not future.cancelled():  # woken, but leaving: pass it on
                self.wake_one()
            raise
        finally:
            if future in self._futures:
                self._futures.remove(future)

    def wake_one(self) -> None:
        while self._futures:
            future = self._futures.popleft()
            if not future.done():
                future.set_result(None)
                return
