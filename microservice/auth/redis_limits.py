"""The limits of ``limits.py`` counted in Redis, so every microservice process shares them.

Per key name and limit there is one hash, ``llm-usvc:rl:{<name>}:requests`` and
``...:tokens``, whose fields are the 1-second buckets (Unix seconds) and whose values are the
counts; each write renews its expiry to 61 s, and an admit deletes the buckets that left the
window. The braces are a Redis Cluster hash tag: both hashes of a key live in one slot, so one
script may touch both.

Each call is one Lua script, so reading, deciding and counting are atomic across processes.
Time is Redis's own ``TIME``: every process then agrees on the window, whatever its host's
clock says (the ``clock`` given here is the fallback's).

Redis down (refused, timed out, any Redis error) never refuses a request: the call is answered at
once by an in-process ``LocalLimiter``, one warning is logged per outage, and after a back-off
one call tries Redis again; when it answers, the limits are shared again. The URL may carry a
password: only host:port is ever logged, shown in ``state()`` or put in an exception.
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from microservice.auth.limits import WINDOW_S, LocalLimiter, Verdict, judge
from microservice.observability.logs import get_logger

if TYPE_CHECKING:
    from microservice.auth.keys import ApiKey

PREFIX = "llm-usvc:rl:"

# KEYS: requests hash, tokens hash. ARGV: rpm, tpm (0: none), window seconds.
# Returns {seconds, microseconds, requests, tokens, admitted}, the buckets as flat
# [second, count, ...] lists as they were before this request.
ADMIT_LUA = """
redis.replicate_commands()
local window = tonumber(ARGV[3])
local time = redis.call('TIME')
local now = tonumber(time[1])
local function load(key)
  local flat = redis.call('HGETALL', key)
  local live, stale, total = {}, {}, 0
  for i = 1, #flat, 2 do
    local second, count = tonumber(flat[i]), tonumber(flat[i + 1])
    if now - second >= window then
      stale[#stale + 1] = flat[i]
    else
      live[#live + 1] = second
      live[#live + 1] = count
      total = total + count
    end
  end
  if #stale > 0 then redis.call('HDEL', key, unpack(stale)) end
  return live, total
end
local rpm, tpm = tonumber(ARGV[1]), tonumber(ARGV[2])
local requests, tokens, admitted = {}, {}, 1
if rpm > 0 then
  local total
  requests, total = load(KEYS[1])
  if total + 1 > rpm then admitted = 0 end
end
if tpm > 0 then
  local total
  tokens, total = load(KEYS[2])
  if total >= tpm then admitted = 0 end
end
if admitted == 1 and rpm > 0 then
  redis.call('HINCRBY', KEYS[1], now, 1)
  redis.call('EXPIRE', KEYS[1], window + 1)
end
return {time[1], time[2], requests, tokens, admitted}
"""

# KEYS: tokens hash. ARGV: tokens, expiry seconds.
SPEND_LUA = """
redis.replicate_commands()
local time = redis.call('TIME')
redis.call('HINCRBY', KEYS[1], time[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
"""


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


class RedisLimiter:
    """Limits shared through Redis, with this process's memory as the fallback."""

    def __init__(
        self,
        url: str,
        *,
        clock: Callable[[], float] = time.time,
        backoff_s: float = 5.0,
        timeout_s: float = 0.25,
        prefix: str = PREFIX,
    ) -> None:
        self._where = redis_address(url)
        parts = urllib.parse.urlsplit(url)
        # The forms the password may take in a library's message; scrubbed from any we show.
        secrets = {url, parts.password, urllib.parse.unquote(parts.password or "")}
        secrets |= set(urllib.parse.parse_qs(parts.query).get("password", []))
        self._secrets = sorted((s for s in secrets if s), key=len, reverse=True)
        try:
            self._client = aioredis.Redis.from_url(
                url,
                socket_timeout=timeout_s,
                socket_connect_timeout=timeout_s,
                # One reconnect: a pooled connection is stale after Redis restarts.
                retry=Retry(NoBackoff(), 1),
            )
        except ValueError:
            raise ValueError(f"the Redis URL for {self._where} is not valid") from None
        self._admit = self._client.register_script(ADMIT_LUA)
        self._spend = self._client.register_script(SPEND_LUA)
        self._prefix = prefix
        self._backoff_s = backoff_s
        self._local = LocalLimiter(clock, reason="")
        self._outage: str | None = None  # why Redis is not used, while it is not
        self._retry_at = 0.0  # time.monotonic() after which one call tries Redis again
        self._probing = False

    def _keys(self, name: str) -> tuple[str, str]:
        return f"{self._prefix}{{{name}}}:requests", f"{self._prefix}{{{name}}}:tokens"

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
            reply = await script(keys=keys, args=args)
        except (RedisError, OSError) as error:
            self._failed(error)
            return None
        finally:
            if probe:
                self._probing = False
        self._answered()
        return reply

    async def admit(self, key: ApiKey) -> Verdict:
        if key.rpm is None and key.tpm is None:
            return judge(key, 0.0, (), ())
        args = [key.rpm or 0, key.tpm or 0, WINDOW_S]
        reply = await self._ask(self._admit, list(self._keys(key.name)), args)
        if reply is None:
            return await self._local.admit(key)
        now = int(reply[0]) + int(reply[1]) / 1_000_000
        return judge(key, now, _pairs(reply[2]), _pairs(reply[3]))

    async def spend_tokens(self, key: ApiKey, tokens: int) -> None:
        if key.tpm is None or tokens <= 0:
            return
        tokens_key = self._keys(key.name)[1]
        if await self._ask(self._spend, [tokens_key], [tokens, WINDOW_S + 1]) is None:
            await self._local.spend_tokens(key, tokens)

    def state(self) -> dict[str, object]:
        if self._outage is not None:
            return {"backend": "local", "shared": False, "reason": self._outage}
        return {"backend": "redis", "shared": True, "reason": f"shared in redis at {self._where}"}

    async def aclose(self) -> None:
        await self._client.aclose()
        await self._local.aclose()
