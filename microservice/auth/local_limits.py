"""The limits of ``limits.py`` in this process's memory: exact for one process, per process for
several (and the Redis limiter's fallback while Redis does not answer)."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from microservice.auth.budgets import BudgetUse, Period, budget_of, key_periods
from microservice.auth.limits import FREE, WINDOW_S, Ticket, Verdict, admitted, is_limited, judge

if TYPE_CHECKING:
    from microservice.auth.keys import ApiKey


class _Window:
    """One key's counts of one limit (requests or tokens): a bucket per second, oldest first."""

    __slots__ = ("buckets", "total")

    def __init__(self) -> None:
        self.buckets: deque[list[int]] = deque()
        self.total = 0

    def prune(self, second: int) -> None:
        while self.buckets and second - self.buckets[0][0] >= WINDOW_S:
            self.total -= self.buckets.popleft()[1]

    def add(self, second: int, count: int) -> int:
        """Count into ``second``'s bucket; the bucket's second (a clock that stepped back adds
        to the newest bucket, so buckets stay in order)."""
        if self.buckets and self.buckets[-1][0] >= second:
            self.buckets[-1][1] += count
            self.total += count
            return self.buckets[-1][0]
        self.buckets.append([second, count])
        self.total += count
        return second

    def settle(self, second: int, change: int, now_second: int) -> None:
        """``change`` into the bucket of ``second`` while it is in the window (never below 0);
        once it left, an excess goes to the current second and a refund is dropped."""
        if now_second - second < WINDOW_S:
            for bucket in reversed(self.buckets):
                if bucket[0] == second:
                    left = max(0, bucket[1] + change)
                    self.total += left - bucket[1]
                    bucket[1] = left
                    if not left:  # as in Redis: no empty buckets
                        self.buckets.remove(bucket)
                    return
        if change > 0:
            self.add(now_second, change)

    def view(self) -> list[tuple[int, int]]:
        return [(second, count) for second, count in self.buckets]


class _KeyState:
    __slots__ = ("last_used", "requests", "tokens")

    def __init__(self, now: float) -> None:
        self.requests = _Window()
        self.tokens = _Window()
        self.last_used = now


class LocalLimiter:
    """Nothing awaits between reading and counting, so each call is atomic on the event loop.

    Keys idle for a whole window are forgotten (checked at most once a window), so memory is
    bounded by the keys used in the last two minutes; a budget's counter is kept until its
    period ended ``GRACE_S`` ago.
    """

    def __init__(
        self,
        clock: Callable[[], float] = time.time,
        reason: str = "no Redis URL set: limits are counted per process",
    ) -> None:
        self._clock = clock
        self._reason = reason
        self._keys: dict[str, _KeyState] = {}
        # (key name, period name, period id) -> [tokens, Unix time the counter goes]
        self._budgets: dict[tuple[str, str, str], list[float]] = {}
        self._swept_at = clock()

    def __len__(self) -> int:
        """How many keys are held (for tests of the forgetting)."""
        return len(self._keys)

    def _sweep(self, now: float) -> None:
        if now - self._swept_at < WINDOW_S:
            return
        self._swept_at = now
        idle = [n for n, s in self._keys.items() if now - s.last_used >= WINDOW_S]
        for idle_name in idle:
            del self._keys[idle_name]
        gone = [k for k, (_, until) in self._budgets.items() if until <= now]
        for counter in gone:
            del self._budgets[counter]

    def _state(self, name: str, now: float) -> _KeyState:
        self._sweep(now)
        state = self._keys.get(name)
        if state is None:
            state = self._keys[name] = _KeyState(now)
        second = math.floor(now)
        state.requests.prune(second)
        state.tokens.prune(second)
        return state

    def _counter(self, name: str, period: Period, now: float) -> list[float]:
        counter = self._budgets.get((name, period.name, period.id))
        if counter is None:
            counter = [0, now + period.keep_s(now)]
            self._budgets[(name, period.name, period.id)] = counter
        return counter

    def _uses(self, key: ApiKey, periods: Iterable[Period], now: float) -> tuple[BudgetUse, ...]:
        uses = []
        for period in periods:
            budget = budget_of(key, period.name)
            if budget is not None:
                used = int(self._counter(key.name, period, now)[0])
                uses.append(BudgetUse(period, budget, used))
        return tuple(uses)

    async def admit(self, key: ApiKey, tokens: int) -> Verdict:
        if not is_limited(key):
            return FREE
        now = self._clock()
        state = self._state(key.name, now)
        periods = key_periods(key, now)
        budgets = self._uses(key, periods, now)
        verdict = judge(
            key,
            now,
            state.requests.view(),
            state.tokens.view(),
            reserve=tokens,
            budgets=budgets,
            budget_now=now,
        )
        if not verdict.allowed:
            return verdict
        second = math.floor(now)
        if key.rpm is not None:
            state.requests.add(second, 1)
        bucket = None
        if key.tpm is not None:
            bucket = state.tokens.add(second, tokens) if tokens > 0 else second
        for period in periods:
            self._counter(key.name, period, now)[0] += tokens
        state.last_used = now
        return admitted(verdict, Ticket(tokens, bucket, periods, shared=False))

    async def settle(self, key: ApiKey, ticket: Ticket, used: int) -> tuple[BudgetUse, ...]:
        change = used - ticket.tokens
        now = self._clock()
        if ticket.second is not None:
            state = self._state(key.name, now)
            state.tokens.settle(ticket.second, change, math.floor(now))
            state.last_used = now
        for period in ticket.periods:
            counter = self._budgets.get((key.name, period.name, period.id))
            if counter is not None:
                counter[0] = max(0, counter[0] + change)
        return self._uses(key, (p for p in ticket.periods if now < p.ends_at), now)

    def remember(self, key: ApiKey, budgets: Iterable[BudgetUse]) -> None:
        """Take over the shared counts of a key's budgets (what Redis last said), so that an
        outage goes on from them instead of from zero."""
        now = self._clock()
        for use in budgets:
            self._counter(key.name, use.period, now)[0] = use.used

    def state(self) -> dict[str, object]:
        return {"backend": "local", "shared": False, "reason": self._reason}

    async def aclose(self) -> None:
        self._keys.clear()
        self._budgets.clear()
