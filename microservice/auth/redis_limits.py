"""The limits of ``limits.py`` counted in Redis, so every microservice process shares them.

Per key name Redis holds: ``llm-usvc:rl:{<name>}:requests`` and ``...:tokens``, hashes whose
fields are the 1-second buckets (Unix seconds) and whose values are the counts, each write
renewing their expiry to 61 s (an admit deletes the buckets that left the window); and per
budget one counter per period, ``...:day:2025-03-14`` and ``...:month:2025-03``, expiring an
hour after the period ends. The braces are a Redis Cluster hash tag: all of a key's counts live
in one slot, so one script may touch them all (``redis_scripts``).

Each call is one Lua script, so reading, deciding and counting are atomic across processes.
The window's time is Redis's own ``TIME``: every process then agrees on it, whatever its host's
clock says. Budget periods are named from the ``clock`` given here (also the fallback's).

Redis down (refused, timed out, any Redis error) never refuses a request: the call is answered at
once by an in-process ``LocalLimiter``, one warning is logged per outage, and after a back-off
one call tries Redis again; when it answers, the limits are shared again. The fallback's
budgets go on from the counts Redis last reported. A request admitted in Redis is settled in
Redis; if that settling fails, its reservation stays counted (the window's until it leaves, the
budget's for good: a budget errs towards refusing). The URL may carry a password: only
host:port is ever logged, shown in ``state()`` or put in an exception.
"""

from __future__ import annotations

import asyncio
import time
import urllib.parse
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from microservice.auth.budgets import PERIODS, BudgetUse, Period, budget_of, key_periods
from microservice.auth.limits import (
    FREE,
    WINDOW_S,
    Ticket,
    Verdict,
    admitted,
    is_limited,
    judge,
)
from microservice.auth.local_limits import LocalLimiter
from microservice.auth.redis_scripts import ADMIT_LUA, SETTLE_LUA
from microservice.observability.logs import get_logger

if TYPE_CHECKING:
    from microservice.auth.keys import ApiKey

PREFIX = "llm-usvc:rl:"
# A burst queues for a few connections rather than opening one each: hundreds of connects at
# once overrun the timeout, and each call that times out is counted in the process instead.
MAX_CONNECTIONS = 8
# The wait for one of them is congestion here, not Redis failing: it is bounded apart from
# Redis's own timeout, generously (hundreds of admits at once on two loaded cores take about a
# second), and a call that reaches Redis after an outage began goes to the fallback at once.
QUEUE_WAIT_S = 3.0


def redis_address(url: str) -> str:
    """host:port (or the socket path) of a Redis URL: what may be logged, never the password."""
    try:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme == "unix":
            return f"unix:{parts.path}"
        if parts.scheme not in ("redis", "rediss"):
            raise ValueError
        return f"{parts.hostname or 'localhost'}:{parts.port or 6379}"
    except ValueError:
        raise ValueError("the Redis URL is not redis://, rediss:// or unix:// HOST:PORT") from None


def _pairs(flat: Sequence[Any]) -> list[tuple[int, int]]:
    """The script's flat [second, count, ...] as sorted pairs (HGETALL has no order)."""
    return sorted((int(flat[i]), int(flat[i + 1])) for i in range(0, len(flat), 2))


def _day_month(periods: Sequence[Period]) -> list[Period | None]:
    """The day's and the month's period, in the scripts' order (None: no such budget)."""
    return [next((p for p in periods if p.name == name), None) for name in PERIODS]


class RedisLimiter:
    """Limits shared through Redis, with this process's memory as the fallback."""

    def __init__(
        self,
        url: str,
        *,
        clock: Callable[[], float] = time.time,
        backoff_s: float = 5.0,
        timeout_s: float = 0.25,
        queue_wait_s: float = QUEUE_WAIT_S,
        prefix: str = PREFIX,
    ) -> None:
        self._where = redis_address(url)
        parts = urllib.parse.urlsplit(url)
        # The forms the password may take in a library's message; scrubbed from any we show.
        secrets = {url, parts.password, urllib.parse.unquote(parts.password or "")}
        secrets |= set(urllib.parse.parse_qs(parts.query).get("password", []))
        self._secrets = sorted((s for s in secrets if s), key=len, reverse=True)
        try:
            pool = aioredis.BlockingConnectionPool.from_url(
                url,
                max_connections=MAX_CONNECTIONS,
                timeout=queue_wait_s,  # never waited on: ``_connections`` admits one a connection
                socket_timeout=timeout_s,
                socket_connect_timeout=timeout_s,
                # One reconnect: a pooled connection is stale after Redis restarts.
                retry=Retry(NoBackoff(), 1),
            )
            self._client = aioredis.Redis(connection_pool=pool)
        except ValueError:
            raise ValueError(f"the Redis URL for {self._where} is not valid") from None
        self._connections = asyncio.Semaphore(MAX_CONNECTIONS)
        self._queue_wait_s = queue_wait_s
        self._admit = self._client.register_script(ADMIT_LUA)
        self._settle = self._client.register_script(SETTLE_LUA)
        self._prefix = prefix
        self._backoff_s = backoff_s
        self._clock = clock
        self._local = LocalLimiter(clock, reason="")
        self._outage: str | None = None  # why Redis is not used, while it is not
        self._retry_at = 0.0  # time.monotonic() after which one call tries Redis again
        self._probing = False

    def _keys(self, name: str, periods: Sequence[Period | None]) -> list[str]:
        """The key's requests and tokens hashes and its day and month counters (a placeholder
        in the same slot for a budget it has not: the scripts leave those alone)."""
        base = f"{self._prefix}{{{name}}}"
        counters = [f"{base}:{p.name}:{p.id}" if p else f"{base}:none" for p in periods]
        return [f"{base}:requests", f"{base}:tokens", *counters]

    def _claim(self) -> bool:
        """Whether this call asks Redis: always when it answers; during an outage one call
        per back-off (the others are not made to wait out its timeout)."""
        if self._outage is None:
            return True
        if self._probing or time.monotonic() < self._retry_at:
            return False
        self._probing = True
        return True

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text[:300]

    def _failed(self, error: Exception) -> None:
        self._retry_at = time.monotonic() + self._backoff_s
        if self._outage is not None:
            return
        detail = self._scrub(f"{type(error).__name__}: {error}")
        self._outage = f"redis unreachable: {self._where}: {detail}"
        get_logger().warning(
            "rate limits fall back to this process: redis unreachable",
            extra={"fields": {"redis": self._where, "error": detail, "retry_s": self._backoff_s}},
        )

    def _answered(self) -> None:
        if self._outage is None:
            return
        self._outage = None
        get_logger().info(
            "rate limits shared in redis again", extra={"fields": {"redis": self._where}}
        )

    async def _ask(self, script: AsyncScript, keys: list[str], args: list[int]) -> Any:
        """The script's reply, or None when Redis is in back-off or did not answer now."""
        if not self._claim():
            return None
        probe = self._outage is not None
        try:
            return await self._queued(script, keys, args, probe=probe)
        finally:
            if probe:
                self._probing = False

    async def _queued(
        self, script: AsyncScript, keys: list[str], args: list[int], *, probe: bool
    ) -> Any:
        """The call once a connection is free; None if an outage began while it waited."""
        try:
            async with asyncio.timeout(self._queue_wait_s):
                await self._connections.acquire()
        except TimeoutError:
            self._failed(TimeoutError(f"no answer within {self._queue_wait_s:g} s of queueing"))
            return None
        try:
            if self._outage is not None and not probe:
                return None
            reply = await script(keys=keys, args=args)
        except (RedisError, OSError) as error:
            self._failed(error)
            return None
        finally:
            self._connections.release()
        self._answered()
        return reply

    async def admit(self, key: ApiKey, tokens: int) -> Verdict:
        if not is_limited(key):
            return FREE
        now = self._clock()
        periods = key_periods(key, now)
        by_name = _day_month(periods)
        budgets = [budget_of(key, name) or 0 for name in PERIODS]
        ttls = [p.keep_s(now) if p else 0 for p in by_name]
        args = [key.rpm or 0, key.tpm or 0, WINDOW_S, tokens, *budgets, *ttls]
        reply = await self._ask(self._admit, self._keys(key.name, by_name), args)
        if reply is None:
            return await self._local.admit(key, tokens)
        window_now = int(reply[0]) + int(reply[1]) / 1_000_000
        counts = {"day": int(reply[4]), "month": int(reply[5])}
        uses = [BudgetUse(p, budget_of(key, p.name) or 0, counts[p.name]) for p in periods]
        verdict = judge(
            key,
            window_now,
            _pairs(reply[2]),
            _pairs(reply[3]),
            reserve=tokens,
            budgets=uses,
            budget_now=now,
        )
        self._local.remember(key, verdict.budgets)
        if int(reply[6]) != 1:
            return verdict
        second = int(reply[0]) if key.tpm is not None else None
        return admitted(verdict, Ticket(tokens, second, periods, shared=True))

    async def settle(self, key: ApiKey, ticket: Ticket, used: int) -> tuple[BudgetUse, ...]:
        if not ticket.shared:
            return await self._local.settle(key, ticket, used)
        now = self._clock()
        by_name = _day_month(ticket.periods)
        ttls = [p.keep_s(now) if p else 0 for p in by_name]
        second = -1 if ticket.second is None else ticket.second
        args = [second, used - ticket.tokens, WINDOW_S, *ttls]
        reply = await self._ask(self._settle, self._keys(key.name, by_name)[1:], args)
        if reply is None:
            return ()  # the reservation stays counted (see the module's docstring)
        uses = tuple(
            BudgetUse(p, budget_of(key, p.name) or 0, int(count))
            for p, count in zip(by_name, reply, strict=True)
            if p is not None and int(count) >= 0
        )
        self._local.remember(key, uses)
        return tuple(u for u in uses if now < u.period.ends_at)  # the periods still current

    def state(self) -> dict[str, object]:
        if self._outage is not None:
            return {"backend": "local", "shared": False, "reason": self._outage}
        return {"backend": "redis", "shared": True, "reason": f"shared in redis at {self._where}"}

    async def aclose(self) -> None:
        await self._client.aclose(close_connection_pool=True)  # the pool is ours
        await self._local.aclose()
