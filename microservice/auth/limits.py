"""Per-API-key request and token limits over a sliding window of the last minute, and token
budgets per UTC day and month.

The same rules hold in process memory (``LocalLimiter``) and in Redis (``RedisLimiter``, shared
by every microservice process that points at the same Redis):

- Per key name, requests and tokens are counted separately, in 1-second buckets; a bucket
  leaves the window 60 s after the second it counts began. ``rpm: 5`` lets five requests through
  back to back and refuses a sixth until the bucket of the first has left the window.
- A request comes with a reservation: the most tokens it can use (``forms.reservation``). It is
  admitted when (a) the key has no ``rpm`` or the requests in the window + 1 <= ``rpm``, (b) the
  key has no ``tpm`` or the tokens in the window < ``tpm``, and (c) for each budget the key has,
  the period's tokens < the budget. Admitted, it counts at once: one request, and its
  reservation in the current second's bucket and in each budget's period. A refused one counts
  nothing.
- When it ends it is settled once, with the tokens vLLM reported (0 when it ended without an
  answer): the difference to the reservation goes into the reservation's own bucket, so the
  window is as if the request had used exactly that much when admitted. A bucket that already
  left the window takes no refund (its tokens are gone) and passes any excess to the current
  second (tokens used and never counted are counted when they are known). Budgets settle into
  the period of the reservation while its counter lives.
- So the tokens a key's requests of one minute use exceed ``tpm`` by at most the reservation of
  the one admitted last (whenever reservations are upper bounds), and a period's tokens exceed
  its budget by at most one reservation, across every process sharing the counts.
- A refusal names the limit that refused (a budget first, the month's before the day's, then
  ``requests`` before ``tokens``) and ``retry_after_s``: the whole seconds until every limit that
  refused would admit it again (a budget's reset, or room in the window).
- The headers are OpenAI's, for the window limits the key has. ``x-ratelimit-reset-*`` is, as
  OpenAI defines it, the time until the limit is back at its initial state: until every request
  (or token) now counted has left the window; ``retry_after_s`` is when room frees.

A key with no limit costs nothing: it is not counted and, in Redis, never leaves the process.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal, Protocol

from microservice.auth.budgets import BudgetUse, Period, has_budget

if TYPE_CHECKING:
    from microservice.auth.keys import ApiKey

WINDOW_S = 60
LimitName = Literal["requests", "tokens", "tokens_per_day", "tokens_per_month"]
# (second, count) pairs, oldest first, only those still in the window.
Buckets = Sequence[tuple[int, int]]


@dataclass(frozen=True, slots=True)
class Ticket:
    """Where an admitted request's reservation is counted, for its settling."""

    tokens: int  # the reservation
    second: int | None  # the tpm window's bucket it is in (None: the key has no tpm)
    periods: tuple[Period, ...]  # the budget periods it is in
    shared: bool  # counted in Redis (settled there), else in this process


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether one request may go on, and the headers that say where its key stands."""

    allowed: bool
    refused_by: LimitName | None  # which limit refused; None when allowed
    retry_after_s: int  # >= 1 when refused: when it would be admitted again; 0 when allowed
    headers: tuple[tuple[str, str], ...]  # x-ratelimit-* for the window limits the key has
    budgets: tuple[BudgetUse, ...] = ()  # the key's budgets, this request's reservation in
    ticket: Ticket | None = None  # what to settle; None when refused or nothing was counted


FREE = Verdict(True, None, 0, ())


class Limiter(Protocol):
    """What the guard calls; both backends keep the rules above."""

    async def admit(self, key: ApiKey, tokens: int) -> Verdict:
        """Admit or refuse one request that reserves ``tokens``."""
        ...

    async def settle(self, key: ApiKey, ticket: Ticket, used: int) -> tuple[BudgetUse, ...]:
        """The request ended having used ``used`` tokens; its budgets after that (those whose
        period has not ended)."""
        ...

    def state(self) -> dict[str, object]:
        """``{"backend": "redis"|"local", "shared": bool, "reason": str}`` for the health answer."""
        ...

    async def aclose(self) -> None: ...


def admitted(verdict: Verdict, ticket: Ticket) -> Verdict:
    """An allowed verdict with what to settle (nothing when no tokens were counted)."""
    holds = ticket.second is not None or bool(ticket.periods)
    return replace(verdict, ticket=ticket if holds else None)


def is_limited(key: ApiKey) -> bool:
    return key.rpm is not None or key.tpm is not None or has_budget(key)


def reset_text(seconds: float) -> str:
    """A duration as OpenAI writes it in ``x-ratelimit-reset-*`` ("250ms", "1.5s", "6m0s")."""
    ms = max(0, math.ceil(seconds * 1000 - 1e-6))  # up to the next ms: never promise too early
    if ms == 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    minutes, ms = divmod(ms, 60_000)
    whole, frac = divmod(ms, 1000)
    secs = f"{whole}.{frac:03d}".rstrip("0").rstrip(".") if frac else str(whole)
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


def _wait_for_room(buckets: Buckets, total: int, most: int, now: float) -> float:
    """Seconds until the buckets that leave the window bring ``total`` down to ``most``."""
    for second, count in buckets:
        total -= count
        if total <= most:
            return second + WINDOW_S - now
    return 0.0


def _until_empty(buckets: Buckets, now: float, *, adding: bool) -> float:
    """Seconds until the newest counted bucket (the current one when adding) leaves."""
    newest = buckets[-1][0] if buckets else None
    if adding:
        newest = max(newest if newest is not None else -1, math.floor(now))
    return 0.0 if newest is None else max(0.0, newest + WINDOW_S - now)


def _seconds(wait: float) -> int:
    return max(1, math.ceil(wait - 1e-9))


def judge(
    key: ApiKey,
    now: float,
    requests: Buckets,
    tokens: Buckets,
    *,
    reserve: int = 0,
    budgets: Sequence[BudgetUse] = (),
    budget_now: float | None = None,
) -> Verdict:
    """The verdict on one request reserving ``reserve`` tokens, from the key's window (at
    ``now``) and its budgets (at ``budget_now``, the limiter's clock) as they were before it.

    Shared by both backends so they answer alike; the Redis script applies the same test
    atomically and this only writes the answer.
    """
    req_total = sum(count for _, count in requests)
    tok_total = sum(count for _, count in tokens)
    refusals: list[tuple[LimitName, int]] = []
    for use in sorted(budgets, key=lambda u: u.period.name != "month"):  # the month first
        if use.spent:
            when = use.period.seconds_left(now if budget_now is None else budget_now)
            name: LimitName = "tokens_per_month" if use.period.name == "month" else "tokens_per_day"
            refusals.append((name, when))
    if key.rpm is not None and req_total + 1 > key.rpm:
        wait = _wait_for_room(requests, req_total, key.rpm - 1, now)
        refusals.append(("requests", min(WINDOW_S, _seconds(wait))))
    if key.tpm is not None and tok_total >= key.tpm:
        wait = _wait_for_room(tokens, tok_total, key.tpm - 1, now)
        refusals.append(("tokens", min(WINDOW_S, _seconds(wait))))
    allowed = not refusals
    counted = reserve if allowed else 0
    headers: list[tuple[str, str]] = []
    if key.rpm is not None:
        used = req_total + (1 if allowed else 0)
        headers += [
            ("x-ratelimit-limit-requests", str(key.rpm)),
            ("x-ratelimit-remaining-requests", str(max(0, key.rpm - used))),
            ("x-ratelimit-reset-requests", reset_text(_until_empty(requests, now, adding=allowed))),
        ]
    if key.tpm is not None:
        until = _until_empty(tokens, now, adding=counted > 0)
        headers += [
            ("x-ratelimit-limit-tokens", str(key.tpm)),
            ("x-ratelimit-remaining-tokens", str(max(0, key.tpm - tok_total - counted))),
            ("x-ratelimit-reset-tokens", reset_text(until)),
        ]
    after = tuple(BudgetUse(u.period, u.budget, u.used + counted) for u in budgets)
    if allowed:
        return Verdict(True, None, 0, tuple(headers), after)
    retry_after = max(wait for _, wait in refusals)
    return Verdict(False, refusals[0][0], retry_after, tuple(headers), after)
