"""The check every API request passes when API keys are on: who is calling (401), may it use
this model (403), is the key within its limits and budgets (429) for the tokens the request
reserves; and, once it ended, what it used.

Without a keys file every request is let through as the anonymous caller, with no work done.
The answer carries OpenAI's ``x-ratelimit-*`` headers for the key's limits, refused or not.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from functools import partial
from typing import Literal

from prometheus_client import CollectorRegistry

from microservice.auth.admission import KEPT, Admission
from microservice.auth.budgets import BudgetUse
from microservice.auth.keys import ApiKey
from microservice.auth.limiter_choice import make_limiter
from microservice.auth.limits import Limiter, Ticket, Verdict
from microservice.auth.metrics import KeyMetrics
from microservice.auth.store import KeyStore
from microservice.errors import BudgetExceeded, InvalidApiKey, KeyRateLimited, ModelNotAllowed
from microservice.observability.logs import get_logger
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
        self._settling: set[asyncio.Task[None]] = set()

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

    async def admit(self, caller: Caller, model: str, tokens: int) -> Admission:
        """403 for a model outside the key's list, 429 over its limits or budgets; otherwise
        the request and the ``tokens`` it reserves are counted, and its admission holds the
        answer's rate-limit headers and the settling of the reservation."""
        key = caller.key
        if key is None:
            return Admission()
        if not key.may_use(model):
            raise ModelNotAllowed(
                f"the API key `{key.name}` may not use the model `{model}`", param="model"
            )
        verdict = await self._limiter.admit(key, tokens)
        self._show_budgets(key, verdict.budgets)
        if not verdict.allowed:
            self._metrics.rate_limited.labels(key.name, verdict.refused_by or "requests").inc()
            raise _refusal(key, verdict)
        self._metrics.requests.labels(key.name).inc()
        return Admission(verdict.headers, partial(self._settle, key, verdict.ticket))

    def _settle(
        self, key: ApiKey, ticket: Ticket | None, usage: Usage | Literal["kept"] | None
    ) -> None:
        """A request's end: its usage into the key's metrics, and the difference to its
        reservation into its counts (in the background: the answer never waits for Redis);
        ``KEPT`` counts the whole reservation as used (``Admission.keep``)."""
        if isinstance(usage, Usage):
            self._metrics.prompt_tokens.labels(key.name).inc(usage.prompt_tokens)
            self._metrics.completion_tokens.labels(key.name).inc(usage.completion_tokens)
        if ticket is None:
            return
        if usage == KEPT:
            used = ticket.tokens
        else:
            used = usage.prompt_tokens + usage.completion_tokens if usage is not None else 0
        task = asyncio.get_running_loop().create_task(self._settle_counts(key, ticket, used))
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)

    async def _settle_counts(self, key: ApiKey, ticket: Ticket, used: int) -> None:
        try:
            self._show_budgets(key, await self._limiter.settle(key, ticket, used))
        except Exception:  # a settling that failed must not take the loop's other work down
            get_logger().exception("settling a request's tokens failed", extra={"fields": {}})

    def _show_budgets(self, key: ApiKey, budgets: tuple[BudgetUse, ...]) -> None:
        for use in budgets:
            self._metrics.budget_remaining.labels(key.name, use.period.name).set(use.remaining)

    def limiter_state(self) -> dict[str, object]:
        """Where the limits are counted (Redis, or this process) and why, for health."""
        return self._limiter.state()

    async def aclose(self) -> None:
        if self._store is not None:
            await self._store.stop()
        if self._settling:
            await asyncio.gather(*self._settling, return_exceptions=True)
        await self._limiter.aclose()


def _refusal(key: ApiKey, verdict: Verdict) -> KeyRateLimited:
    """The 429 of a refused verdict: ``budget_exceeded`` for a budget, naming its reset."""
    limit = verdict.refused_by or "requests"
    if limit in ("tokens_per_day", "tokens_per_month"):
        use = next(u for u in verdict.budgets if f"tokens_per_{u.period.name}" == limit)
        return BudgetExceeded(
            f"token budget reached for the API key `{key.name}`: {use.budget} tokens per UTC "
            f"{use.period.name}; it resets at {use.period.reset_iso}, "
            f"in {verdict.retry_after_s} s",
            verdict.retry_after_s,
            verdict.headers,
        )
    return KeyRateLimited(
        f"rate limit reached for the API key `{key.name}`: {limit} per minute; "
        f"try again in {verdict.retry_after_s} s",
        verdict.retry_after_s,
        verdict.headers,
    )


def build_guard(settings: MicroserviceSettings, registry: CollectorRegistry) -> Guard:
    """The guard of LLM_API_KEYS_FILE (none: every request passes, nothing is counted); its
    per-key metrics in the app's ``registry``."""
    metrics = KeyMetrics(registry)
    if settings.llm_api_keys_file is None:
        return Guard(None, make_limiter(None), metrics)
    store = KeyStore(settings.llm_api_keys_file, settings.llm_api_keys_reload_s)
    url = settings.llm_rate_limit_redis_url
    return Guard(store, make_limiter(url.get_secret_value() if url else None), metrics)
