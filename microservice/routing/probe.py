"""One check of one replica: is it up, does it serve our model, how loaded is it.

``/health`` first (vLLM answers 200 only once the model is loaded); ``/v1/models`` when the
replica (re)joins, to check it serves our model and learn the context length, and on every
check while it holds LoRA adapters or the models file names some (they come and go);
``/metrics`` for its load. The reasons are the operator's: they appear as they are in
``/v1/health_check``.
"""

from __future__ import annotations

import asyncio
import time

import orjson

from microservice import paths
from microservice.errors import ModelServerError, ModelServerTimeout, ModelServerUnreachable
from microservice.routing.model_info import ModelInfo, find_model
from microservice.routing.replica import CacheStats, Load, Replica, parse_engine
from microservice.upstream.client import ModelServerClient, Reply

SLOW_CHECKS_TO_LEAVE = 2


async def probe(
    client: ModelServerClient, replica: Replica, info: ModelInfo, limit_s: float
) -> None:
    url = replica.url
    started = time.monotonic()
    replica.checking(started)
    try:
        health = await _health(client, url, limit_s)
        replica.heard(time.monotonic())
        if health.status != 200:
            replica.mark_down(f"model server is not ready (health {health.status})")
            return
        if not replica.healthy or info.follows_adapters or replica.adapters:
            reason, wrong_model = await _serves_model(client, replica, info, limit_s)
            if reason is not None:
                replica.mark_down(reason, wrong_model=wrong_model)
                return
        load, cache = await _load(client, url, limit_s)
    except ModelServerUnreachable:
        replica.mark_down("model server is unreachable (not started or still loading)")
        return
    except ModelServerTimeout:
        # A busy CPU engine can be slow to answer. A replica that answered a request during
        # this check is alive (passive health); else one slow check keeps a healthy replica in
        # (a session must not move for it), and the next one takes it out when nothing at all
        # was heard from the replica since the first began.
        if replica.healthy and replica.quiet_since is None:
            return
        replica.slow_checks += 1
        silent = replica.quiet_since is not None and replica.quiet_since < started
        if not replica.healthy or (replica.slow_checks >= SLOW_CHECKS_TO_LEAVE and silent):
            replica.mark_down(f"model server did not answer within {limit_s:g} s")
        return
    except ModelServerError as error:
        replica.mark_down(f"model server did not answer: {error.message}")
        return
    replica.mark_healthy(load, cache or replica.cache)


async def _health(client: ModelServerClient, url: str, limit_s: float) -> Reply:
    """``/health`` within ``limit_s``, connecting included: a connection slow to open on a
    starved host is a slow check, not an unreachable replica (a refused one still is)."""
    try:
        async with asyncio.timeout(limit_s):
            return await client.get(url, paths.VLLM_HEALTH, 2 * limit_s)
    except TimeoutError:
        raise ModelServerTimeout.at(url) from None


async def _serves_model(
    client: ModelServerClient, replica: Replica, info: ModelInfo, limit_s: float
) -> tuple[str | None, bool]:
    """(None, False) when the replica serves our model (its context length and the adapters it
    holds are learned); else why not, and whether it is up but serves other models."""
    models = await client.get(replica.url, paths.VLLM_MODELS, limit_s)
    if models.status != 200:
        return f"model server lists no models (status {models.status})", False
    try:
        listed = orjson.loads(models.body)
        entry = find_model(listed, info.model)
        served = sorted(str(m["id"]) for m in listed["data"])
        adapters = frozenset(str(m["id"]) for m in listed["data"] if m.get("parent") == info.model)
    except (ValueError, KeyError, TypeError):  # orjson's decode error is a ValueError too
        return "model server answered /v1/models with an unexpected body", False
    if entry is None:
        return f"model {info.model!r} is not served (served: {served})", True
    info.learn(entry)
    replica.adapters = adapters
    return None, False


async def _load(
    client: ModelServerClient, url: str, limit_s: float
) -> tuple[Load, CacheStats | None]:
    """The engine's load and prefix cache; a replica without /metrics is routed on our own
    counts alone, and keeps what was last known of its cache."""
    try:
        metrics = await client.get(url, paths.VLLM_METRICS, limit_s)
    except ModelServerTimeout:
        return Load(), None
    if metrics.status != 200:
        return Load(), None
    return parse_engine(metrics.body.decode(errors="replace"))
