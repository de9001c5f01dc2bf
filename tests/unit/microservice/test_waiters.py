"""The FIFO of waiters of the connection pool."""

from __future__ import annotations

import asyncio

from microservice.aio.waiters import Waiters


async def test_waiters_are_woken_one_at_a_time_in_order() -> None:
    waiters, woken = Waiters(), []

    async def wait(name: str) -> None:
        await waiters.wait()
        woken.append(name)

    tasks = [asyncio.ensure_future(wait(n)) for n in "abc"]
    await asyncio.sleep(0)
    waiters.wake_one()
    await asyncio.sleep(0)
    assert woken == ["a"] and len(waiters) == 2
    waiters.wake_one()
    waiters.wake_one()
    await asyncio.gather(*tasks)
    assert woken == ["a", "b", "c"] and len(waiters) == 0


async def test_a_woken_waiter_that_leaves_passes_its_turn_on() -> None:
    waiters = Waiters()
    first = asyncio.ensure_future(waiters.wait())
    second = asyncio.ensure_future(waiters.wait())
    await asyncio.sleep(0)
    waiters.wake_one()  # reaches the first ...
    first.cancel()  # ... which is cancelled before it runs: the second gets the slot
    await asyncio.wait_for(second, 1)
    assert first.cancelled() and len(waiters) == 0


async def test_a_waiter_that_times_out_leaves_the_line() -> None:
    waiters = Waiters()
    try:
        async with asyncio.timeout(0.01):
            await waiters.wait()
    except TimeoutError:
        pass
    assert len(waiters) == 0
