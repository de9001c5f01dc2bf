"""The reservation and budget rules of ``microservice.auth.limits`` as scenarios that any backend
must pass: run on the process's memory by the unit tests, on a real redis-server (two limiters
standing for two processes) by tests/integration/microservice/test_redis_limits.py.

Budgets run on the limiter's clock (``Clock``), which the scenarios move over a UTC midnight
and a month's end; nothing here waits for the minute window to move (Redis keeps its own time).
"""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime

from microservice.auth.keys import ApiKey
from microservice.auth.limits import Limiter, Verdict

_names = itertools.count()


def utc(text: str) -> float:
    """Unix seconds of an ISO date-time in UTC, e.g. ``2031-01-31T23:59:59.5``."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def fresh(
    *,
    rpm: int | None = None,
    tpm: int | None = None,
    tokens_per_day: int | None = None,
    tokens_per_month: int | None = None,
) -> ApiKey:
    """A key name no other test used (Redis keeps the counts of a name for a while)."""
    return ApiKey(
        f"scenario-{next(_names)}",
        rpm=rpm,
        tpm=tpm,
        tokens_per_day=tokens_per_day,
        tokens_per_month=tokens_per_month,
    )


def left(verdict: Verdict, what: str = "tokens") -> int:
    return int(dict(verdict.headers)[f"x-ratelimit-remaining-{what}"])


async def settle(limiter: Limiter, key: ApiKey, verdict: Verdict, used: int) -> None:
    assert verdict.allowed and verdict.ticket is not None, verdict
    await limiter.settle(key, verdict.ticket, used)


async def reservation_counts_at_once_and_settles_to_what_was_used(a: Limiter, b: Limiter) -> None:
    key = fresh(tpm=1000)
    first = await a.admit(key, 600)
    assert first.allowed and left(first) == 400  # counted at admission, not after the answer
    second = await b.admit(key, 300)
    assert second.allowed and left(second) == 100
    third = await a.admit(key, 250)
    assert third.allowed and left(third) == 0  # 900 < 1000: admitted, overshooting by 150
    refused = await b.admit(key, 1)
    assert (refused.allowed, refused.refused_by) == (False, "tokens")
    await settle(a, key, first, 100)  # 500 back
    await settle(b, key, third, 0)  # ended without an answer: all 250 back
    after = await b.admit(key, 0)
    assert after.allowed and left(after) == 1000 - 100 - 300
    await settle(a, key, second, 450)  # 150 over its reservation: counted too
    assert left(await a.admit(key, 0)) == 1000 - 100 - 450


async def a_burst_overshoots_by_less_than_one_reservation(a: Limiter, b: Limiter) -> None:
    """Concurrent admits through both limiters: what is admitted minus tpm < one reservation."""
    tpm, reservation = 1000, 170
    key = fresh(tpm=tpm)
    verdicts = await asyncio.gather(*(x.admit(key, reservation) for x in (a, b) * 20))
    admitted = sum(reservation for v in verdicts if v.allowed)
    assert tpm <= admitted < tpm + reservation, admitted
    assert sum(v.allowed for v in verdicts) == -(-tpm // reservation)  # ceil(1000 / 170) = 6
    refused = [v for v in verdicts if not v.allowed]
    assert all(v.refused_by == "tokens" and 1 <= v.retry_after_s <= 60 for v in refused)


async def a_day_budget_resets_at_utc_midnight(a: Limiter, b: Limiter, clock: Clock) -> None:
    clock.now = utc("2031-03-14T23:59:58.5")
    key = fresh(tokens_per_day=1000)
    first = await a.admit(key, 800)
    assert first.allowed and [u.remaining for u in first.budgets] == [200]
    second = await b.admit(key, 300)
    assert second.allowed  # 800 < 1000: admitted, the day then holds 1100
    refused = await a.admit(key, 1)
    assert (refused.allowed, refused.refused_by) == (False, "tokens_per_day")
    assert refused.retry_after_s == 2  # 1.5 s to midnight, in whole seconds
    [use] = refused.budgets
    assert (use.period.id, use.period.reset_iso) == ("2031-03-14", "2031-03-15T00:00:00Z")
    clock.now = utc("2031-03-15T00:00:00")
    next_day = await b.admit(key, 10)
    assert next_day.allowed and [u.used for u in next_day.budgets] == [10]
    await settle(a, key, first, 50)  # settles into the 14th, not into the 15th
    await settle(b, key, second, 0)
    assert [u.used for u in (await a.admit(key, 0)).budgets] == [10]
    clock.now = utc("2031-03-14T23:59:59")  # back in the 14th (a clock that stepped back)
    assert [u.used for u in (await b.admit(key, 0)).budgets] == [50]


async def a_month_budget_resets_on_the_first(a: Limiter, b: Limiter, clock: Clock) -> None:
    clock.now = utc("2031-12-31T23:00:00")
    key = fresh(tokens_per_day=10_000, tokens_per_month=500)
    spent = await a.admit(key, 600)
    assert spent.allowed
    refused = await b.admit(key, 1)
    assert (refused.allowed, refused.refused_by) == (False, "tokens_per_month")
    assert refused.retry_after_s == 3600
    month = next(u for u in refused.budgets if u.period.name == "month")
    assert (month.period.id, month.period.reset_iso) == ("2031-12", "2032-01-01T00:00:00Z")
    assert (month.used, month.remaining) == (600, 0)
    await settle(a, key, spent, 400)  # used less than reserved: the month has room again
    again = await b.admit(key, 1)
    assert again.allowed
    assert sorted((u.period.name, u.used) for u in again.budgets) == [
        ("day", 401),
        ("month", 401),
    ]
    clock.now = utc("2032-01-01T00:00:00")
    new_year = await a.admit(key, 0)
    assert new_year.allowed
    assert {u.period.id for u in new_year.budgets} == {"2032-01-01", "2032-01"}


async def budgets_and_window_refuse_together(a: Limiter, b: Limiter, clock: Clock) -> None:
    """A spent budget names itself and waits for its reset, even when the window refuses too;
    a refusal counts nothing anywhere."""
    clock.now = utc("2031-06-30T12:00:00")
    key = fresh(rpm=1, tokens_per_day=100)
    assert (await a.admit(key, 150)).allowed
    refused = await b.admit(key, 5)
    assert (refused.refused_by, refused.retry_after_s) == ("tokens_per_day", 12 * 3600)
    assert [u.used for u in refused.budgets] == [150]


SCENARIOS = (
    reservation_counts_at_once_and_settles_to_what_was_used,
    a_burst_overshoots_by_less_than_one_reservation,
)
BUDGET_SCENARIOS = (
    a_day_budget_resets_at_utc_midnight,
    a_month_budget_resets_on_the_first,
    budgets_and_window_refuse_together,
)
