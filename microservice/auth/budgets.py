"""Per-key token budgets per UTC calendar day and month: which period a moment falls in, when
it resets, and where a key stands in it.

A period is named by its UTC date (``2025-03-14``, ``2025-03``) and computed from the limiter's
clock, never Redis's: the name picks the counter, so a test that moves the clock over midnight
moves every backend into the next period. Counters outlive their period by ``GRACE_S``, so a
request admitted just before a reset still settles into the period it was counted in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from microservice.auth.keys import ApiKey

PeriodName = Literal["day", "month"]
PERIODS: tuple[PeriodName, ...] = ("day", "month")
GRACE_S = 3600  # how long a period's counter is kept after the period ended


@dataclass(frozen=True, slots=True)
class Period:
    """One UTC day or month: its name, its id (the counter's name) and when it ends."""

    name: PeriodName
    id: str
    ends_at: float  # Unix seconds of the next period's start: the reset

    @property
    def reset_iso(self) -> str:
        return datetime.fromtimestamp(self.ends_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def seconds_left(self, now: float) -> int:
        """Whole seconds until the reset, at least 1 (Retry-After never says 0)."""
        return max(1, math.ceil(self.ends_at - now - 1e-9))

    def keep_s(self, now: float) -> int:
        """The counter's time to live: to the reset and ``GRACE_S`` more (0: already gone)."""
        return max(0, math.ceil(self.ends_at + GRACE_S - now))


def period_at(name: PeriodName, now: float) -> Period:
    """The UTC day or month that ``now`` (Unix seconds) falls in."""
    moment = datetime.fromtimestamp(now, UTC)
    if name == "day":
        start = moment.replace(hour=0, minute=0, second=0, microsecond=0)
        return Period("day", start.strftime("%Y-%m-%d"), start.timestamp() + 86_400)
    start = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    following = start.replace(year=start.year + 1, month=1) if start.month == 12 else None
    following = following or start.replace(month=start.month + 1)
    return Period("month", start.strftime("%Y-%m"), following.timestamp())


def budget_of(key: ApiKey, name: PeriodName) -> int | None:
    return key.tokens_per_day if name == "day" else key.tokens_per_month


def has_budget(key: ApiKey) -> bool:
    return key.tokens_per_day is not None or key.tokens_per_month is not None


def key_periods(key: ApiKey, now: float) -> tuple[Period, ...]:
    """The periods the key has a budget for, at ``now``."""
    return tuple(period_at(name, now) for name in PERIODS if budget_of(key, name) is not None)


@dataclass(frozen=True, slots=True)
class BudgetUse:
    """A key's tokens counted in one period against its budget for it."""

    period: Period
    budget: int
    used: int

    @property
    def remaining(self) -> int:
        return max(0, self.budget - self.used)

    @property
    def spent(self) -> bool:
        """The admission rule: refused once the period's tokens reach the budget."""
        return self.used >= self.budget
