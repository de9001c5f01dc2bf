"""Reservations in process memory on a fake clock: counted at admission, settled once to what
was used, into the reservation's own bucket; the overshoot of tpm bounded by one reservation.
The same scenarios run on a real Redis in tests/integration/microservice/test_redis_limits.py."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable

import pytest

from harness.processes import free_port
from microservice.auth.keys import ApiKey
from microservice.auth.limits import Limiter, Verdict
from microservice.auth.local_limits import LocalLimiter
from microservice.auth.redis_limits import RedisLimiter
from tests.limit_scenarios import BUDGET_SCENARIOS, SCENARIOS, Clock, left, settle

START = 1_000_000.0

Scenario = Callable[..., Awaitable[None]]


@pytest.mark.parametrize("scenario", SCENARIOS + BUDGET_SCENARIOS, ids=lambda s: s.__name__)
async def test_scenarios_in_process(scenario: Scenario) -> None:
    clock = Clock(START)
    limiter = LocalLimiter(clock)
    extra = (clock,) if scenario in BUDGET_SCENARIOS else ()
    await scenario(limiter, limiter, *extra)


@pytest.mark.parametrize("scenario", SCENARIOS + BUDGET_SCENARIOS, ids=lambda s: s.__name__)
async def test_scenarios_in_the_redis_limiters_fallback(scenario: Scenario) -> None:
    """Nothing listens: the fallback answers, by the same rules, and settles what it admitted."""
    clock = Clock(START)
    limiter: Limiter = RedisLimiter(f"redis://127.0.0.1:{free_port()}/0", clock=clock)
    try:
        extra = (clock,) if scenario in BUDGET_SCENARIOS else ()
        await scenario(limiter, limiter, *extra)
        assert limiter.state()["backend"] == "local"
    finally:
        await limiter.aclose()


async def test_a_refund_for_a_bucket_that_left_the_window_is_dropped() -> None:
    clock = Clock(START)
    limiter = LocalLimiter(clock)
    key = ApiKey("a", tpm=100)
    long = await limiter.admit(key, 90)
    clock.now = START + 30
    short = await limiter.admit(key, 5)
    clock.now = START + 61  # the bucket of +0 left: its 90 are gone already
    await settle(limiter, key, long, 10)
    assert left(await limiter.admit(key, 0)) == 95
    await settle(limiter, key, short, 5)
    assert left(await limiter.admit(key, 0)) == 95


async def test_an_excess_past_the_window_counts_now() -> None:
    """Tokens over the reservation that were never counted are counted when they are known."""
    clock = Clock(START)
    limiter = LocalLimiter(clock)
    key = ApiKey("a", tpm=100)
    long = await limiter.admit(key, 10)
    clock.now = START + 70
    await settle(limiter, key, long, 40)  # 30 over; its bucket left: into the current second
    verdict = await limiter.admit(key, 0)
    assert left(verdict) == 70
    assert dict(verdict.headers)["x-ratelimit-reset-tokens"] == "1m0s"


async def test_a_refund_never_takes_a_bucket_below_zero() -> None:
    limiter = LocalLimiter(Clock(START))
    key = ApiKey("a", tpm=100)
    verdict = await limiter.admit(key, 10)
    assert verdict.ticket is not None
    await limiter.settle(key, verdict.ticket, 0)
    await limiter.settle(key, verdict.ticket, 0)  # the guard never does; the counts hold anyway
    assert left(await limiter.admit(key, 0)) == 100


async def test_a_refused_request_counts_and_holds_nothing() -> None:
    limiter = LocalLimiter(Clock(START))
    key = ApiKey("a", rpm=1, tpm=100)
    assert (await limiter.admit(key, 50)).allowed
    refused = await limiter.admit(key, 50)
    assert (refused.allowed, refused.ticket) == (False, None)
    assert left(refused) == 50 and left(refused, "requests") == 0


async def test_only_requests_limited_holds_no_ticket() -> None:
    verdict = await LocalLimiter(Clock(START)).admit(ApiKey("a", rpm=5), 1000)
    assert verdict.allowed and verdict.ticket is None  # nothing to settle


@pytest.mark.parametrize("seed", range(5))
async def test_overshoot_stays_under_one_reservation_over_a_random_minute(seed: int) -> None:
    """Requests of random sizes arrive and end at random over two minutes, each using at most
    its reservation: in every 60 s, the tokens used by the requests admitted then exceed tpm by
    less than the largest reservation admitted."""
    rng = random.Random(seed)
    clock = Clock(START)
    limiter = LocalLimiter(clock)
    tpm = 2000
    key = ApiKey("k", tpm=tpm)
    admitted: list[tuple[float, int, int]] = []  # (when admitted, reserved, used)
    running: list[tuple[float, Verdict, int]] = []  # (when it ends, its admission, used)
    refused = 0
    for step in range(1200):
        clock.now = START + step * 0.1
        for entry in [e for e in running if e[0] <= clock.now]:
            running.remove(entry)
            await settle(limiter, key, entry[1], entry[2])
        if rng.random() < 0.5:
            reserve = rng.randint(50, 600)
            verdict = await limiter.admit(key, reserve)
            refused += not verdict.allowed
            if verdict.allowed:
                used = rng.randint(0, reserve)
                admitted.append((clock.now, reserve, used))
                running.append((clock.now + rng.uniform(0.1, 20), verdict, used))
    biggest = max(reserve for _, reserve, _ in admitted)
    for start in range(0, 60):
        t0 = START + start
        used = sum(u for t, _, u in admitted if t0 <= t < t0 + 59)
        assert used - tpm < biggest, (start, used)
    assert refused > 50  # the limit was reached, again and again
