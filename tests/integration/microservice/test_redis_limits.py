"""The per-key limits in a REAL redis-server, shared by two limiters as two microservice
processes would share them; and what happens while Redis is down and once it is back."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import signal
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis

from harness.redis import RedisServer, redis_server
from microservice.auth.keys import ApiKey
from microservice.auth.redis_limits import PREFIX, RedisLimiter
from microservice.observability.logs import get_logger
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
async def pair(server: RedisServer) -> AsyncIterator[tuple[RedisLimiter, RedisLimiter]]:
    """Two limiters on one Redis: the view of two microservice processes."""
    a, b = RedisLimiter(server.url, backoff_s=BACKOFF_S), RedisLimiter(server.url)
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
    verdicts = [await (a if i % 2 else b).admit(key) for i in range(5)]
    assert all(v.allowed for v in verdicts)
    remaining = [dict(v.headers)["x-ratelimit-remaining-requests"] for v in verdicts]
    assert remaining == ["4", "3", "2", "1", "0"]
    for limiter in (a, b):
        refused = await limiter.admit(key)
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
    assert (await a.admit(key)).allowed
    await a.spend_tokens(key, 60)
    seen_by_b = await b.admit(key)
    assert seen_by_b.allowed and dict(seen_by_b.headers)["x-ratelimit-remaining-tokens"] == "40"
    await b.spend_tokens(key, 50)
    for limiter in (a, b):
        refused = await limiter.admit(key)
        assert (refused.allowed, refused.refused_by) == (False, "tokens")
        assert dict(refused.headers)["x-ratelimit-remaining-tokens"] == "0"


async def test_outage_falls_back_to_the_process_then_shares_again(
    pair: tuple[RedisLimiter, RedisLimiter], server: RedisServer
) -> None:
    a, _ = pair
    key = fresh(rpm=3)
    assert (await a.admit(key)).allowed
    assert a.state()["backend"] == "redis"
    records = Records()
    get_logger().addHandler(records)
    try:
        server.stop()
        down = [await a.admit(key) for _ in range(4)]
        await a.spend_tokens(fresh(tpm=10), 5)
        state = a.state()
        assert [v.allowed for v in down] == [True, True, True, False]  # counted in the process
        assert (state["backend"], state["shared"]) == ("local", False)
        assert str(state["reason"]).startswith(f"redis unreachable: 127.0.0.1:{server.port}")
        warnings = [r for r in records.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1, records.text()

        server.start()
        assert a.state()["backend"] == "local"  # until the back-off has passed
        await asyncio.sleep(BACKOFF_S + 0.1)
        back = await a.admit(key)
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
    assert (await a.admit(key)).allowed
    server.stop()
    server.start()
    assert (await a.admit(key)).allowed
    assert a.state()["backend"] == "redis"


async def test_a_hung_redis_times_out_quickly(
    pair: tuple[RedisLimiter, RedisLimiter], server: RedisServer
) -> None:
    """A Redis that accepts but never answers costs one call a short timeout, not the request."""
    a, _ = pair
    key = fresh(rpm=5)
    assert (await a.admit(key)).allowed
    assert server.process is not None
    os.kill(server.process.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        assert (await a.admit(key)).allowed
        assert time.monotonic() - started < 2
        assert "TimeoutError" in str(a.state()["reason"])
    finally:
        os.kill(server.process.pid, signal.SIGCONT)
    await asyncio.sleep(BACKOFF_S + 0.1)
    assert (await a.admit(key)).allowed
    assert a.state()["backend"] == "redis"
