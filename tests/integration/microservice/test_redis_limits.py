"""The per-key limits in a REAL redis-server, shared by two limiters as two microservice
processes would share them: requests, reservations settled to what was used, budgets per UTC
day and month on a clock the test moves; and what happens while Redis is down and once it is
back."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
import redis

from harness.redis import RedisServer, redis_server
from microservice.auth.keys import ApiKey
from microservice.auth.redis_limits import PREFIX, RedisLimiter
from microservice.observability.logs import get_logger
from tests.limit_scenarios import BUDGET_SCENARIOS, SCENARIOS, Clock, left, settle, utc
from tests.log_records import Records

pytestmark = pytest.mark.integration

PASSWORD = "s3cret-limits-pw"
BACKOFF_S = 0.5
_names = itertools.count()


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    with redis_server(Path("test-logs") / "redis-server.log", password=PASSWORD) as started:
        yield started


@pytest.fixture
def clock() -> Clock:
    """The limiters' clock (budget periods): the test moves it; the window keeps Redis's."""
    return Clock(utc("2031-05-20T12:00:00"))


@pytest.fixture
async def pair(
    server: RedisServer, clock: Clock
) -> AsyncIterator[tuple[RedisLimiter, RedisLimiter]]:
    """Two limiters on one Redis: the view of two microservice processes."""
    a = RedisLimiter(server.url, backoff_s=BACKOFF_S, clock=clock)
    b = RedisLimiter(server.url, clock=clock)
    yield a, b
    await a.aclose()
    await b.aclose()


def fresh(rpm: int | None = None, tpm: int | None = None) -> ApiKey:
    """A key name no other test used (the counts of a name outlive a test by 61 s)."""
    return ApiKey(f"key-{next(_names)}", rpm, tpm)


async def test_two_limiters_share_one_keys_requests(
    pair: tuple[RedisLimiter, RedisLimiter], server: RedisServer
) -> None:
    a, b = pair
    key = fresh(rpm=5)
    verdicts = [await (a if i % 2 else b).admit(key, 0) for i in range(5)]
    assert all(v.allowed for v in verdicts)
    remaining = [dict(v.headers)["x-ratelimit-remaining-requests"] for v in verdicts]
    assert remaining == ["4", "3", "2", "1", "0"]
    for limiter in (a, b):
        refused = await limiter.admit(key, 0)
        assert (refused.allowed, refused.refused_by) == (False, "requests")
        assert 1 <= refused.retry_after_s <= 60
    assert a.state()["backend"] == b.state()["backend"] == "redis"
    client = redis.Redis(port=server.port, password=PASSWORD)
    stored = f"{PREFIX}{{{key.name}}}:requests"
    assert sum(int(v) for v in client.hvals(stored)) == 5  # refusals counted nothing
    assert 0 < client.ttl(stored) <= 61
    client.close()


async def test_two_limiters_share_one_keys_tokens(
    pair: tuple[RedisLimiter, RedisLimiter],
) -> None:
    a, b = pair
    key = fresh(tpm=100)
    await settle(b, key, await a.admit(key, 10), 60)  # admitted by one, settled by the other
    seen_by_b = await b.admit(key, 5)
    assert seen_by_b.allowed and left(seen_by_b) == 35
    await settle(a, key, seen_by_b, 50)
    for limiter in (a, b):
        refused = await limiter.admit(key, 0)
        assert (refused.allowed, refused.refused_by) == (False, "tokens")
        assert left(refused) == 0


async def test_outage_falls_back_to_the_process_then_shares_again(
    pair: tuple[RedisLimiter, RedisLimiter], server: RedisServer
) -> None:
    a, _ = pair
    key = fresh(rpm=3)
    assert (await a.admit(key, 0)).allowed
    assert a.state()["backend"] == "redis"
    records = Records()
    get_logger().addHandler(records)
    try:
        server.stop()
        down = [await a.admit(key, 0) for _ in range(4)]
        tokens_key = fresh(tpm=10)
        await settle(a, tokens_key, await a.admit(tokens_key, 5), 5)
        state = a.state()
        assert [v.allowed for v in down] == [True, True, True, False]  # counted in the process
        assert (state["backend"], state["shared"]) == ("local", False)
        assert str(state["reason"]).startswith(f"redis unreachable: 127.0.0.1:{server.port}")
        warnings = [r for r in records.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1, records.text()

        server.start()
        assert a.state()["backend"] == "local"  # until the back-off has passed
        await asyncio.sleep(BACKOFF_S + 0.1)
        back = await a.admit(key, 0)
        assert back.allowed  # the process counted 3, but Redis (restarted empty) answers
        assert dict(back.headers)["x-ratelimit-remaining-requests"] == "2"
        assert a.state() == {
            "backend": "redis",
            "shared": True,
            "reason": f"shared in redis at 127.0.0.1:{server.port}",
        }
    finally:
        get_logger().removeHandler(records)
        server.start()
    assert PASSWORD not in records.text() + str(a.state())


async def test_a_restart_between_calls_is_not_an_outage(
    pair: tuple[RedisLimiter, RedisLimiter], server: RedisServer
) -> None:
    """The pooled connection is stale after a restart; one reconnect makes that invisible."""
    a, _ = pair
    key = fresh(rpm=5)
    assert (await a.admit(key, 0)).allowed
    server.stop()
    server.start()
    assert (await a.admit(key, 0)).allowed
    assert a.state()["backend"] == "redis"


@contextlib.contextmanager
def hung(server: RedisServer) -> Iterator[None]:
    """Redis stopped (SIGSTOP): it keeps its sockets open and answers nothing."""
    assert server.process is not None
    os.kill(server.process.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(server.process.pid, signal.SIGCONT)


async def test_a_hung_redis_times_out_quickly(
    pair: tuple[RedisLimiter, RedisLimiter], server: RedisServer
) -> None:
    """A Redis that accepts but never answers costs one call a short timeout, not the request."""
    a, _ = pair
    key = fresh(rpm=5)
    assert (await a.admit(key, 0)).allowed
    with hung(server):
        started = time.monotonic()
        assert (await a.admit(key, 0)).allowed
        assert time.monotonic() - started < 2
        assert "TimeoutError" in str(a.state()["reason"])
    await asyncio.sleep(BACKOFF_S + 0.1)
    assert (await a.admit(key, 0)).allowed
    assert a.state()["backend"] == "redis"


async def test_a_burst_on_a_hung_redis_waits_out_one_timeout_not_one_per_connection(
    pair: tuple[RedisLimiter, RedisLimiter], server: RedisServer
) -> None:
    """Eighty admits share eight connections: those queued behind the first calls' timeouts go
    to the fallback as soon as the outage is known, not each after a timeout of its own (ten
    rounds of 0.5 s: a timeout and its one retry)."""
    a, _ = pair
    key = fresh(rpm=1000)
    assert (await a.admit(key, 0)).allowed
    with hung(server):
        started = time.monotonic()
        verdicts = await asyncio.gather(*(a.admit(key, 0) for _ in range(80)))
        assert time.monotonic() - started < 2
        assert all(v.allowed for v in verdicts)
        assert a.state()["backend"] == "local"


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__)
async def test_reservations_hold_across_two_limiters(
    pair: tuple[RedisLimiter, RedisLimiter], scenario: Callable[..., Awaitable[None]]
) -> None:
    a, b = pair
    await scenario(a, b)
    assert a.state()["backend"] == b.state()["backend"] == "redis"


@pytest.mark.parametrize("scenario", BUDGET_SCENARIOS, ids=lambda s: s.__name__)
async def test_budgets_hold_across_two_limiters_on_a_moved_clock(
    pair: tuple[RedisLimiter, RedisLimiter],
    clock: Clock,
    scenario: Callable[..., Awaitable[None]],
) -> None:
    a, b = pair
    await scenario(a, b, clock)
    assert a.state()["backend"] == b.state()["backend"] == "redis"


async def test_a_burst_of_large_reservations_from_two_processes(
    pair: tuple[RedisLimiter, RedisLimiter],
) -> None:
    """Hundreds of admits at once over both limiters' pooled connections."""
    a, b = pair
    tpm, reservation = 5000, 777
    key = fresh(tpm=tpm)
    verdicts = await asyncio.gather(*(x.admit(key, reservation) for x in (a, b) * 150))
    admitted = reservation * sum(v.allowed for v in verdicts)
    assert 0 <= admitted - tpm < reservation
    assert a.state()["backend"] == "redis"


async def test_what_redis_holds_for_budgets(
    pair: tuple[RedisLimiter, RedisLimiter], server: RedisServer, clock: Clock
) -> None:
    a, _ = pair
    key = ApiKey(f"key-{next(_names)}", tpm=1000, tokens_per_day=10**6, tokens_per_month=10**7)
    await settle(a, key, await a.admit(key, 300), 120)
    client = redis.Redis(port=server.port, password=PASSWORD, decode_responses=True)
    base = f"{PREFIX}{{{key.name}}}"
    try:
        day, month = f"{base}:day:2031-05-20", f"{base}:month:2031-05"
        assert (client.get(day), client.get(month)) == ("120", "120")
        assert 12 * 3600 + 3600 - 5 <= client.ttl(day) <= 12 * 3600 + 3600
        month_left = utc("2031-06-01T00:00:00") - clock.now + 3600
        assert month_left - 5 <= client.ttl(month) <= month_left
        assert sum(int(v) for v in client.hvals(f"{base}:tokens")) == 120
        assert sorted(client.keys(f"{base}*")) == sorted([day, month, f"{base}:tokens"])
    finally:
        client.close()


async def test_an_outage_goes_on_from_the_budget_redis_last_reported(
    pair: tuple[RedisLimiter, RedisLimiter], server: RedisServer
) -> None:
    a, _ = pair
    key = ApiKey(f"key-{next(_names)}", tokens_per_day=100)
    assert (await a.admit(key, 90)).allowed
    server.stop()
    try:
        assert (await a.admit(key, 20)).allowed  # 90 < 100, in the process now
        refused = await a.admit(key, 1)
        assert (refused.refused_by, [u.used for u in refused.budgets]) == ("tokens_per_day", [110])
        assert a.state()["backend"] == "local"
    finally:
        server.start()
