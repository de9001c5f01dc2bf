"""Which backend counts the limits: Redis when a URL is given (limits shared by every process),
else this process's memory.

Nothing connects here: Redis is first asked on the first request, and a Redis that does not
answer then makes that request fall back to process memory.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from microservice.auth.limits import Limiter
from microservice.auth.local_limits import LocalLimiter


def make_limiter(redis_url: str | None, clock: Callable[[], float] = time.time) -> Limiter:
    if not redis_url:
        return LocalLimiter(clock)
    from microservice.auth.redis_limits import RedisLimiter  # redis is imported only if used

    return RedisLimiter(redis_url, clock=clock)
