"""Readiness of the model server, checked on demand and cached briefly when good.

The service itself starts and answers while vLLM is still loading (the OPEA component exited);
the health answer says why it is not ready. A failure is never cached, so recovery shows at
the next probe.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from microservice.model_info import ModelInfo, find_model


@dataclass(frozen=True, slots=True)
class Readiness:
    ready: bool
    reason: str
    served_models: list[str] = field(default_factory=list)

    def body(self, model: str, endpoint: str, max_model_len: int | None) -> dict[str, Any]:
        return {
            "status": "ok" if self.ready else "unavailable",
            "model_server": {"endpoint": endpoint, "ready": self.ready, "reason": self.reason},
            "model": model,
            "max_model_len": max_model_len,
        }


class HealthChecker:
    """Asks vLLM's /health and /v1/models; concurrent probes share one check."""

    def __init__(
        self, client: httpx.AsyncClient, info: ModelInfo, model: str, endpoint: str, cache_s: float
    ) -> None:
        self._client = client
        self._info = info
        self._model = model
        self._endpoint = endpoint
        self._cache_s = cache_s
        self._good: Readiness | None = None
        self._good_until = 0.0
        self._lock = asyncio.Lock()

    async def check(self) -> Readiness:
        if self._good is not None and time.monotonic() < self._good_until:
            return self._good
        async with self._lock:
            if self._good is not None and time.monotonic() < self._good_until:
                return self._good
            result = await self._probe()
            if result.ready:
                self._good, self._good_until = result, time.monotonic() + self._cache_s
            else:
                self._good_until = 0.0
            return result

    async def _probe(self) -> Readiness:
        timeout = httpx.Timeout(3.0)
        try:
            health = await self._client.get("/health", timeout=timeout)
            if health.status_code != 200:
                return Readiness(False, f"model server is not ready (health {health.status_code})")
            models = await self._client.get("/v1/models", timeout=timeout)
        except httpx.ConnectError:
            return Readiness(False, "model server is unreachable (not started or still loading)")
        except httpx.HTTPError as error:
            return Readiness(False, f"model server did not answer: {type(error).__name__}")
        if models.status_code != 200:
            return Readiness(False, f"model server lists no models (status {models.status_code})")
        try:
            answer = orjson.loads(models.content)
            entry = find_model(answer, self._model)
        except ValueError:  # orjson's decode error is a ValueError too
            return Readiness(False, "model server answered /v1/models with an unexpected body")
        served = sorted(m["id"] for m in answer["data"])
        if entry is None:
            return Readiness(
                False, f"model {self._model!r} is not served (served: {served})", served
            )
        self._info.learn(entry)
        return Readiness(True, "ready", served)
