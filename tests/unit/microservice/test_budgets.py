"""Token budgets per UTC day and month: the periods and their resets, and the counters kept in
process memory on a fake clock (the shared scenarios at a midnight and a month's end are in
test_reservations.py, and on a real Redis in the integration tests)."""

from __future__ import annotations

import pytest

from microservice.auth.budgets import GRACE_S, period_at
from microservice.auth.keys import ApiKey
from microservice.auth.local_limits import LocalLimiter
from tests.limit_scenarios import Clock, settle, utc


@pytest.mark.parametrize(
    ("now", "name", "period_id", "reset"),
    [
        ("2031-03-14T00:00:00", "day", "2031-03-14", "2031-03-15T00:00:00Z"),
        ("2031-03-14T23:59:59.999", "day", "2031-03-14", "2031-03-15T00:00:00Z"),
        ("2031-12-31T12:00:00", "day", "2031-12-31", "2032-01-01T00:00:00Z"),
        ("2031-12-31T23:59:59", "month", "2031-12", "2032-01-01T00:00:00Z"),
        ("2032-02-29T10:00:00", "day", "2032-02-29", "2032-03-01T00:00:00Z"),
        ("2032-02-01T00:00:00", "month", "2032-02", "2032-03-01T00:00:00Z"),
        ("2031-02-28T23:00:00", "month", "2031-02", "2031-03-01T00:00:00Z"),
    ],
)
def test_periods_are_utc_calendar_days_and_months(
    now: str, name: str, period_id: str, reset: str
) -> None:
    period = period_at(name, utc(now))  # type: ignore[arg-type]
    assert (period.name, period.id, period.reset_iso) == (name, period_id, reset)


def test_seconds_to_the_reset_and_the_counters_life() -> None:
    day = period_at("day", utc("2031-03-14T23:59:59.2"))
    assert day.seconds_left(utc("2031-03-14T23:59:59.2")) == 1
    assert day.seconds_left(utc("2031-03-14T00:00:00")) == 86_400
    assert day.seconds_left(utc("2031-03-15T01:00:00")) == 1  # never 0 in Retry-After
    assert day.keep_s(utc("2031-03-14T23:00:00")) == 3600 + GRACE_S
    assert day.keep_s(utc("2031-03-15T02:00:00")) == 0


async def test_a_period_over_its_grace_is_forgotten() -> None:
    clock = Clock(utc("2031-03-14T23:59:00"))
    limiter = LocalLimiter(clock)
    key = ApiKey("a", tokens_per_day=100)
    late = await limiter.admit(key, 80)
    clock.now = utc("2031-03-15T00:30:00")
    await settle(limiter, key, late, 30)  # within the grace: into the 14th
    assert len(limiter._budgets) == 1
    clock.now = utc("2031-03-15T01:00:01")
    early = await limiter.admit(key, 5)  # sweeps the 14th
    assert [(u.period.id, u.used) for u in early.budgets] == [("2031-03-15", 5)]
    assert len(limiter._budgets) == 1
    await settle(limiter, key, late, 0)  # a settle that comes too late changes nothing


async def test_remembered_counts_go_on_in_the_fallback() -> None:
    """What Redis last said is where an outage goes on from, not zero."""
    clock = Clock(utc("2031-03-14T12:00:00"))
    limiter = LocalLimiter(clock)
    key = ApiKey("a", tokens_per_day=1000)
    seen = (await limiter.admit(key, 0)).budgets
    limiter.remember(key, [type(u)(u.period, u.budget, 990) for u in seen])
    assert (await limiter.admit(key, 20)).allowed  # 990 < 1000
    refused = await limiter.admit(key, 1)
    assert (refused.refused_by, [u.used for u in refused.budgets]) == ("tokens_per_day", [1010])


async def test_settle_reports_the_budgets_after_it() -> None:
    clock = Clock(utc("2031-03-14T12:00:00"))
    limiter = LocalLimiter(clock)
    key = ApiKey("a", tokens_per_day=1000, tokens_per_month=5000)
    verdict = await limiter.admit(key, 300)
    assert sorted((u.period.name, u.remaining) for u in verdict.budgets) == [
        ("day", 700),
        ("month", 4700),
    ]
    assert verdict.ticket is not None
    after = await limiter.settle(key, verdict.ticket, 120)
    assert sorted((u.period.name, u.used, u.remaining) for u in after) == [
        ("day", 120, 880),
        ("month", 120, 4880),
    ]
