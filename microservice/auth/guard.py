"""The check every API request passes when API keys are on: who is calling (401), may it use
this model (403), is the key within its limits (429); and, once answered, what it used.

Without a keys file every request is let through as the anonymous caller, with no work done.
The answer carries OpenAI's ``x-ratelimit-*`` headers for the key's limits, refused or not.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from microservice.auth.keys import ApiKey
from microservice.auth.limiter_choice import make_limiter
from microservice.auth.limits import Limiter
from microservice.auth.metrics import KeyMetrics
from microservice.auth.store import KeyStore
from microservice.errors import InvalidApiKey, KeyRateLimited, ModelNotAllowed
from microservice.relay.usage import Usage
from microservice.settings import MicroserviceSettings

BEARER = "bearer "


@dataclass(frozen=True, slots=True)
class Caller:
    """The key a request came with; ``None`` when API keys are off."""

    key: ApiKey | None = None


ANONYMOUS = Caller()


class Guard:
    def __init__(self, store: KeyStore | None, limiter: Limiter, metrics: KeyMetrics) -> None:
        self._store = store
        self._limiter = limiter
        self._metrics = metrics
        self._spending: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        if self._store is not None:
            await self._store.start()

    @property
    def enabled(self) -> bool:
        return self._store is not None

    def identify(self, authorization: str | None) -> Caller:
        """401 unless ``Authorization: Bearer <key>`` names a key of the file."""
        if self._store is None:
            return ANONYMOUS
        if not authorization or authorization[: len(BEARER)].lower() != BEARER:
            raise InvalidApiKey("missing API key: send `Authorization: Bearer <key>`")
        key = self._store.table.find(authorization[len(BEARER) :].strip())
        if key is None:
            raise InvalidApiKey("invalid API key")
        return Caller(key)

    async def admit(self, caller: Caller, model: str) -> tuple[tuple[str, str], ...]:
        """403 for a model outside the key's list, 429 over its limits; otherwise the request
        is counted and the rate-limit headers for the answer are returned."""
        key = caller.key
        if key is None:
            return ()
        if not key.may_use(model):
            raise ModelNotAllowed(
                f"the API key `{key.name}` may not use the model `{model}`", param="model"
            )
        verdict = await self._limiter.admit(key)
        if not verdict.allowed:
            limit = verdict.refused_by or "requests"
            self._metrics.rate_limited.labels(key.name, limit).inc()
            raise KeyRateLimited(
                f"rate limit reached for the API key `{key.name}`: {limit} per minute; "
                f"try again in {verdict.retry_after_s} s",
                verdict.retry_after_s,
                verdict.headers,
            )
        self._metrics.requests.labels(key.name).inc()
        return verdict.headers

    def record(self, caller: Caller, usage: Usage) -> None:
        """The tokens an answered request used: into the key's metrics and its token limit
        (counted in the background: the answer never waits for Redis)."""
        key = caller.key
        if key is None:
            return
        self._metrics.prompt_tokens.labels(key.name).inc(usage.prompt_tokens)
        self._metrics.completion_tokens.labels(key.name).inc(usage.completion_tokens)
        tokens = usage.prompt_tokens + usage.completion_tokens
        if key.tpm is not None and tokens:
            task = asyncio.get_running_loop().create_task(self._limiter.spend_tokens(key, tokens))
            self._spending.add(task)
            task.add_done_callback(self._spending.discard)

    def limiter_state(self) -> dict[str, object]:
        """Where the limits are counted (Redis, or this process) and why, for health."""
        return self._limiter.state()

    async def aclose(self) -> None:
        if self._store is not None:
            await self._store.stop()
        if self._spending:
            await asyncio.gather(*self._spending, return_exceptions=True)
        await self._limiter.aclose()


def build_guard(settings: MicroserviceSettings, registry: CollectorRegistry) -> Guard:
    """The guard of LLM_API_KEYS_FILE (none: every request passes, nothing is counted); its
    per-key metrics in the app's ``registry``."""
    metrics = KeyMetrics(registry)
    if settings.llm_api_keys_file is None:
        return Guard(None, make_limiter(None), metrics)
    store = KeyStore(settings.llm_api_keys_file, settings.llm_api_keys_reload_s)
    url = settings.llm_rate_limit_redis_url
    return Guard(store, make_limiter(url.get_secret_value() if url else None), metrics)
