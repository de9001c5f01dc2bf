"""Per-API-key request and token limits over a sliding window of the last minute.

The same rules hold in process memory (``LocalLimiter``) and in Redis (``RedisLimiter``, shared
by every microservice process that points at the same Redis):

- Per key name, requests and tokens are counted separately, in 1-second buckets; a bucket
  leaves the window 60 s after the second it counts began. ``rpm: 5`` lets five requests through
  back to back and refuses a sixth until the bucket of the first has left the window.
- A request is admitted when (a) the key has no ``rpm`` or the requests in the window + 1 <=
  ``rpm``, and (b) the key has no ``tpm`` or the tokens in the window < ``tpm``. Token counts are
  known only after the answer, so (b) only asks that there still be room; one long answer may
  overshoot, and the next request waits until the window has room again.
- An admitted request counts at once; a refused one counts nothing. After the answer the guard
  calls ``spend_tokens(key, prompt + completion)``.
- A refusal names the limit that refused (``requests`` first when both do) and ``retry_after_s``:
  the whole seconds until both limits would admit it again.
- The headers are OpenAI's, for the limits the key has. ``x-ratelimit-reset-*`` is, as OpenAI
  defines it, the time until the limit is back at its initial state: until every request (or
  token) now counted has left the window; ``retry_after_s`` is when room frees.

A key with neither limit costs nothing: it is not counted and, in Redis, never leaves the process.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from microservice.auth.keys import ApiKey

WINDOW_S = 60
LimitName = Literal["requests", "tokens"]
# (second, count) pairs, oldest first, only those still in the window.
Buckets = Sequence[tuple[int, int]]


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether one request may go on, and the headers that say where its key stands."""

    allowed: bool
    refused_by: LimitName | None  # which limit refused; None when allowed
    retry_after_s: int  # >= 1 when refused: when it would be admitted again; 0 when allowed
    headers: tuple[tuple[str, str], ...]  # x-ratelimit-* for the limits the key has


class Limiter(Protocol):
    """What the guard calls; both backends keep the rules above."""

    async def admit(self, key: ApiKey) -> Verdict: ...

    async def spend_tokens(self, key: ApiKey, tokens: int) -> None: ...

    def state(self) -> dict[str, object]:
        """``{"backend": "redis"|"local", "shared": bool, "reason": str}`` for the health answer."""
        ...

    async def aclose(self) -> None: ...


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


def judge(key: ApiKey, now: float, requests: Buckets, tokens: Buckets) -> Verdict:
    """The verdict on one request from the key's window as it was just before it.

    Shared by both backends so they answer alike; the Redis script applies the same test
    atomically and this only writes the answer.
    """
    req_total = sum(count for _, count in requests)
    tok_total = sum(count for _, count in tokens)
    refused_by: LimitName | None = None
    waits: list[float] = []
    if key.rpm is not None and req_total + 1 > key.rpm:
        refused_by = "requests"
        waits.append(_wait_for_room(requests, req_total, key.rpm - 1, now))
    if key.tpm is not None and tok_total >= key.tpm:
        refused_by = refused_by or "tokens"
        waits.append(_wait_for_room(tokens, tok_total, key.tpm - 1, now))
    allowed = refused_by is None
    headers: list[tuple[str, str]] = []
    if key.rpm is not None:
        used = req_total + (1 if allowed else 0)
        headers += [
            ("x-ratelimit-limit-requests", str(key.rpm)),
            ("x-ratelimit-remaining-requests", str(max(0, key.rpm - used))),
            ("x-ratelimit-reset-requests", reset_text(_until_empty(requests, now, adding=allowed))),
        ]
    if key.tpm is not None:
        headers += [
            ("x-ratelimit-limit-tokens", str(key.tpm)),
            ("x-ratelimit-remaining-tokens", str(max(0, key.tpm - tok_total))),
            ("x-ratelimit-reset-tokens", reset_text(_until_empty(tokens, now, adding=False))),
        ]
    retry_after = 0 if allowed else min(WINDOW_S, max(1, math.ceil(max(waits) - 1e-9)))
    return Verdict(allowed, refused_by, retry_after, tuple(headers))


class _Window:
    """One key's counts of one limit (requests or tokens): a bucket per second, oldest first."""

    __slots__ = ("buckets", "total")

    def __init__(self) -> None:
        self.buckets: deque[list[int]] = deque()
        self.total = 0

    def prune(self, second: int) -> None:
        while self.buckets and second - self.buckets[0][0] >= WINDOW_S:
            self.total -= self.buckets.popleft()[1]

    def add(self, second: int, count: int) -> None:
        # A clock that stepped back adds to the newest bucket, so buckets stay in order.
        if self.buckets and self.buckets[-1][0] >= second:
            self.buckets[-1][1] += count
        else:
            self.buckets.append([second, count])
        self.total += count

    def view(self) -> list[tuple[int, int]]:
        return [(second, count) for second, count in self.buckets]


class _KeyState:
    __slots__ = ("last_used", "requests", "tokens")

    def __init__(self, now: float) -> None:
        self.requests = _Window()
        self.tokens = _Window()
        self.last_used = now


class LocalLimiter:
    """The limits in this process's memory: exact for one process, per process for several.

    Nothing awaits between reading and counting, so each call is atomic on the event loop.
    Keys idle for a whole window are forgotten (checked at most once a window), so memory is
    bounded by the keys used in the last two minutes.
    """

    def __init__(
        self,
        clock: Callable[[], float] = time.time,
        reason: str = "no Redis URL set: limits are counted per process",
    ) -> None:
        self._clock = clock
        self._reason = reason
        self._keys: dict[str, _KeyState] = {}
        self._swept_at = clock()

    def __len__(self) -> int:
        """How many keys are held (for tests of the forgetting)."""
        return len(self._keys)

    def _state(self, name: str, now: float) -> _KeyState:
        if now - self._swept_at >= WINDOW_S:
            self._swept_at = now
            idle = [n for n, s in self._keys.items() if now - s.last_used >= WINDOW_S]
            for idle_name in idle:
                del self._keys[idle_name]
        state = self._keys.get(name)
        if state is None:
            state = self._keys[name] = _KeyState(now)
        second = math.floor(now)
        state.requests.prune(second)
        state.tokens.prune(second)
        return state

    async def admit(self, key: ApiKey) -> Verdict:
        if key.rpm is None and key.tpm is None:
            return judge(key, 0.0, (), ())
        now = self._clock()
        state = self._state(key.name, now)
        verdict = judge(key, now, state.requests.view(), state.tokens.view())
        if verdict.allowed and key.rpm is not None:
            state.requests.add(math.floor(now), 1)
            state.last_used = now
        return verdict

    async def spend_tokens(self, key: ApiKey, tokens: int) -> None:
        if key.tpm is None or tokens <= 0:
            return
        now = self._clock()
        state = self._state(key.name, now)
        state.tokens.add(math.floor(now), tokens)
        state.last_used = now

    def state(self) -> dict[str, object]:
        return {"backend": "local", "shared": False, "reason": self._reason}

    async def aclose(self) -> None:
        self._keys.clear()
