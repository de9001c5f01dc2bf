"""The per-key window limits in process memory, on a fake clock; and the Redis limiter's
fallback when nothing listens on its port. Reservations and budgets: test_reservations.py and
test_budgets.py."""

from __future__ import annotations

import logging

import pytest

from harness.processes import free_port
from microservice.auth.keys import ApiKey
from microservice.auth.limiter_choice import make_limiter
from microservice.auth.limits import FREE, Verdict, reset_text
from microservice.auth.local_limits import LocalLimiter
from microservice.auth.redis_limits import RedisLimiter, redis_address
from microservice.observability.logs import get_logger
from tests.log_records import Records

START = 1_000_000.0  # a whole second: bucket boundaries are easy to read


class Clock:
    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def at(self, offset: float) -> Clock:
        self.now = START + offset
        return self


def headers(verdict: Verdict) -> dict[str, str]:
    return dict(verdict.headers)


async def admitted(limiter: LocalLimiter, key: ApiKey, count: int) -> list[bool]:
    return [(await limiter.admit(key, 0)).allowed for _ in range(count)]


async def settle(limiter: LocalLimiter, key: ApiKey, verdict: Verdict, used: int) -> None:
    assert verdict.allowed and verdict.ticket is not None
    await limiter.settle(key, verdict.ticket, used)


async def test_five_back_to_back_then_refused_until_the_first_leaves() -> None:
    clock = Clock()
    limiter = LocalLimiter(clock)
    key = ApiKey("a", rpm=5)
    assert await admitted(limiter, key, 5) == [True] * 5
    sixth = await limiter.admit(key, 0)
    assert (sixth.allowed, sixth.refused_by, sixth.retry_after_s) == (False, "requests", 60)
    clock.at(10.5)
    later = await limiter.admit(key, 0)
    assert (later.allowed, later.retry_after_s) == (False, 50)  # the bucket leaves at +60
    clock.at(59.9)
    assert (await limiter.admit(key, 0)).retry_after_s == 1  # never 0 when refused
    clock.at(60.0)
    assert await admitted(limiter, key, 6) == [True] * 5 + [False]  # refusals counted nothing


async def test_the_window_slides_bucket_by_bucket() -> None:
    clock = Clock()
    limiter = LocalLimiter(clock)
    key = ApiKey("a", rpm=5)
    for offset in (0, 10, 20, 30, 40):
        clock.at(offset)
        assert (await limiter.admit(key, 0)).allowed
    clock.at(50)
    assert (await limiter.admit(key, 0)).retry_after_s == 10
    clock.at(60)
    assert (await limiter.admit(key, 0)).allowed  # the +0 request left
    clock.at(61)
    refused = await limiter.admit(key, 0)
    assert (refused.allowed, refused.retry_after_s) == (False, 9)  # the +10 one leaves at +70


async def test_tokens_refuse_once_the_window_is_full() -> None:
    clock = Clock()
    limiter = LocalLimiter(clock)
    key = ApiKey("a", tpm=100)
    await settle(limiter, key, await limiter.admit(key, 0), 99)  # reserved nothing, used 99
    clock.at(5)
    second = await limiter.admit(key, 0)
    assert second.allowed  # 99 < 100: there is still room
    await settle(limiter, key, second, 100)  # an answer over its reservation overshoots
    clock.at(20)
    refused = await limiter.admit(key, 0)
    assert (refused.allowed, refused.refused_by) == (False, "tokens")
    assert refused.retry_after_s == 45  # the +0 bucket leaving leaves 100: the +5 one must too
    assert headers(refused)["x-ratelimit-remaining-tokens"] == "0"
    clock.at(64.9)
    assert not (await limiter.admit(key, 0)).allowed
    clock.at(65)
    assert (await limiter.admit(key, 0)).allowed


async def test_both_refusing_names_requests_and_waits_for_both() -> None:
    clock = Clock()
    limiter = LocalLimiter(clock)
    key = ApiKey("a", rpm=1, tpm=10)
    first = await limiter.admit(key, 1)
    clock.at(30)
    await settle(limiter, key, first, 10)  # into the bucket of +0, its reservation's
    refused = await limiter.admit(key, 0)
    assert (refused.refused_by, refused.retry_after_s) == ("requests", 30)  # both leave at +60


async def test_headers_values_and_format() -> None:
    clock = Clock().at(0.25)
    limiter = LocalLimiter(clock)
    key = ApiKey("a", rpm=5, tpm=1000)
    first = await limiter.admit(key, 0)
    assert first.headers == (
        ("x-ratelimit-limit-requests", "5"),
        ("x-ratelimit-remaining-requests", "4"),
        ("x-ratelimit-reset-requests", "59.75s"),
        ("x-ratelimit-limit-tokens", "1000"),
        ("x-ratelimit-remaining-tokens", "1000"),
        ("x-ratelimit-reset-tokens", "0s"),
    )
    await settle(limiter, key, first, 300)
    clock.at(30)
    second = headers(await limiter.admit(key, 0))
    assert second["x-ratelimit-remaining-requests"] == "3"
    assert second["x-ratelimit-reset-requests"] == "1m0s"  # this request's bucket
    assert second["x-ratelimit-remaining-tokens"] == "700"
    assert second["x-ratelimit-reset-tokens"] == "30s"
    clock.at(59.75)
    assert headers(await limiter.admit(key, 0))["x-ratelimit-reset-tokens"] == "250ms"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (-1, "0s"),
        (0.0004, "1ms"),
        (0.25, "250ms"),
        (1, "1s"),
        (1.5, "1.5s"),
        (59.999, "59.999s"),
        (60, "1m0s"),
        (61.25, "1m1.25s"),
        (360, "6m0s"),
    ],
)
def test_reset_text_is_written_as_openai_does(seconds: float, text: str) -> None:
    assert reset_text(seconds) == text


async def test_keys_are_independent() -> None:
    limiter = LocalLimiter(Clock())
    a, b = ApiKey("a", rpm=2, tpm=10), ApiKey("b", rpm=2, tpm=10)
    spent = await limiter.admit(a, 50)  # its reservation fills a's window at once
    assert await admitted(limiter, a, 2) == [False, False]
    await settle(limiter, a, spent, 50)
    assert await admitted(limiter, b, 2) == [True, True]
    assert headers(await limiter.admit(b, 0))["x-ratelimit-remaining-tokens"] == "10"


async def test_no_limits_means_unlimited_and_no_headers() -> None:
    limiter = LocalLimiter(Clock())
    free = ApiKey("free")
    verdicts = [await limiter.admit(free, 10**9) for _ in range(1000)]
    assert all(v == FREE and v.ticket is None for v in verdicts)
    assert len(limiter) == 0  # not even tracked
    only_rpm = await limiter.admit(ApiKey("r", rpm=3), 0)
    assert [name for name, _ in only_rpm.headers] == [
        "x-ratelimit-limit-requests",
        "x-ratelimit-remaining-requests",
        "x-ratelimit-reset-requests",
    ]
    only_tpm = ApiKey("t", tpm=5)
    assert await admitted(limiter, only_tpm, 100) == [True] * 100  # requests are not limited
    assert all(name.endswith("-tokens") for name, _ in (await limiter.admit(only_tpm, 0)).headers)


async def test_idle_keys_are_forgotten() -> None:
    clock = Clock()
    limiter = LocalLimiter(clock)
    for name in ("a", "b", "c"):
        await limiter.admit(ApiKey(name, rpm=1), 0)
    clock.at(30)
    await limiter.admit(ApiKey("d", rpm=1), 0)
    assert len(limiter) == 4
    clock.at(61)
    await limiter.admit(ApiKey("d", rpm=1), 0)
    assert len(limiter) == 1  # "d", used 31 s ago
    assert (await limiter.admit(ApiKey("a", rpm=1), 0)).allowed
    assert len(limiter) == 2


async def test_make_limiter_picks_the_backend_without_connecting() -> None:
    local = make_limiter(None)
    assert local.state() == {
        "backend": "local",
        "shared": False,
        "reason": "no Redis URL set: limits are counted per process",
    }
    shared = make_limiter("redis://:s3cret-pw@redis.example:6380/0")
    assert isinstance(shared, RedisLimiter)
    state = shared.state()
    assert (state["backend"], state["shared"]) == ("redis", True)
    assert "redis.example:6380" in str(state) and "s3cret" not in str(state)
    await shared.aclose()


def test_a_bad_redis_url_is_refused_without_its_password() -> None:
    assert redis_address("unix:///run/redis.sock") == "unix:/run/redis.sock"
    for url in ("http://:s3cret-pw@host:1", "redis://:s3cret-pw@host:notaport"):
        with pytest.raises(ValueError) as caught:
            make_limiter(url)
        assert "s3cret" not in str(caught.value)


async def test_redis_unreachable_falls_back_at_once_and_says_why() -> None:
    """Nothing listens on the port: connection refused, so the fallback answers at once."""
    port = free_port()
    limiter = RedisLimiter(f"redis://:s3cret-pw@127.0.0.1:{port}/0", backoff_s=60)
    handler = Records()
    records = handler.records
    logger = get_logger()
    logger.addHandler(handler)
    try:
        key = ApiKey("a", rpm=2, tpm=100)
        verdicts = [await limiter.admit(key, 50) for _ in range(3)]
        assert [v.allowed for v in verdicts] == [True, True, False]
        assert verdicts[0].ticket is not None and not verdicts[0].ticket.shared
        await limiter.settle(key, verdicts[0].ticket, 5)
    finally:
        logger.removeHandler(handler)
        await limiter.aclose()
    state = limiter.state()
    assert (state["backend"], state["shared"]) == ("local", False)
    assert str(state["reason"]).startswith(f"redis unreachable: 127.0.0.1:{port}: ")
    warnings = [r for r in records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # once per outage, not once per call
    logged = warnings[0].getMessage() + str(getattr(warnings[0], "fields", ""))
    assert f"127.0.0.1:{port}" in logged
    assert "s3cret" not in logged + str(state)
