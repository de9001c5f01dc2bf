"""Readiness: ready while at least one replica is, with every replica listed.

The replica probes keep the state current off the request path. A health check answers from
it while a ready replica was seen within ``LLM_HEALTH_CACHE_S``; otherwise (nothing ready, or
an old answer) it checks every replica first, so a failure is never answered from memory and
a recovery shows at once. The service itself starts and answers while vLLM is still loading
(the OPEA component exited).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from microservice.routing.model_info import ModelInfo
from microservice.routing.pool import ReplicaPool


@dataclass(frozen=True, slots=True)
class Readiness:
    ready: bool
    reason: str
    replicas: list[dict[str, Any]] = field(default_factory=list)

    def body(self, *, model: str, endpoint: str, max_model_len: int | None) -> dict[str, Any]:
        return {
            "status": "ok" if self.ready else "unavailable",
            "model_server": {"endpoint": endpoint, "ready": self.ready, "reason": self.reason},
            "model": model,
            "max_model_len": max_model_len,
            "replicas": self.replicas,
        }


class HealthChecker:
    def __init__(self, pool: ReplicaPool, info: ModelInfo, cache_s: float) -> None:
        self._pool = pool
        self._info = info
        self._cache_s = cache_s

    async def check(self) -> Readiness:
        now = time.monotonic()
        if not any(r.healthy and now - r.checked_at < self._cache_s for r in self._pool.replicas):
            await self._pool.check_now(force=True)
        replicas = self._pool.replicas
        ready = [r for r in replicas if r.healthy]
        if len(replicas) == 1:
            reason = replicas[0].reason
        elif ready:
            reason = f"ready ({len(ready)} of {len(replicas)} replicas)"
        else:
            reason = "; ".join(f"{r.url}: {r.reason}" for r in replicas) or "no replica found"
        return Readiness(bool(ready), reason, [r.describe() for r in replicas])
