"""The routes: who calls, read and validate, pick the model, admit, answer.

Every API route (chat, completions, responses, embeddings, rerank, score, models) needs an API
key when keys are on; health and /metrics never do. The order of refusals: 401 (no or wrong
key), 4xx for the body, 404 (no such model), 4xx for the priority asked (``X-LLM-Priority``),
422 (a ``max_tokens`` over the model's context), 403 (not this key's model), 429 (this key's
limits and budgets).

The model routes are plain Starlette endpoints that read their own body; ``direct_routes``
says why and serves them.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from microservice import paths
from microservice.api.model_route import model_route
from microservice.api.state import StateDep
from microservice.forms import parse
from microservice.observability import audit

router = APIRouter()


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


async def chat_completions(request: Request) -> Response:
    return await model_route(request, parse.chat, "chat")


async def completions(request: Request) -> Response:
    return await model_route(request, parse.completion, "chat")


async def responses(request: Request) -> Response:
    return await model_route(request, parse.response, "chat")


async def embeddings(request: Request) -> Response:
    return await model_route(request, parse.embedding, "embedding")


async def rerank(request: Request) -> Response:
    return await model_route(request, parse.rerank, "rerank")


async def score(request: Request) -> Response:
    return await model_route(request, parse.score, "rerank")


# Served by ``direct_routes`` for POST; in the router too, for the OpenAPI document and the
# 405 of any other method.
MODEL_ROUTES: dict[str, Callable[[Request], Awaitable[Response]]] = {
    paths.CHAT: chat_completions,
    paths.COMPLETIONS: completions,
    paths.EMBEDDINGS: embeddings,
    paths.RESPONSES: responses,
    paths.RERANK: rerank,
    paths.SCORE: score,
}
for path, endpoint in MODEL_ROUTES.items():
    router.add_route(path, endpoint, methods=["POST"])


@router.get(paths.MODELS)
async def models(request: Request, state: StateDep) -> Response:
    """The models this service serves (a key with a model list sees only those)."""
    caller = state.guard.identify(request.headers.get("authorization"))
    audit.caller(caller.key.name if caller.key is not None else None)
    created = int(time.time())
    data = [
        {
            "id": model.name,
            "object": "model",
            "created": created,
            "owned_by": state.settings.llm_model_server,
            "kind": model.spec.kind,
            "max_model_len": model.info.max_model_len,
            **({"parent": model.spec.base} if model.spec.base else {}),  # an adapter's model
        }
        for model in state.models.listed()
        if caller.key is None or caller.key.may_use(model.name)
    ]
    return _json({"object": "list", "data": data})


@router.get(paths.HEALTH_CHECK)
async def health_check(state: StateDep) -> Response:
    """Ready while the default model is; every model and the rate-limit store are listed."""
    default = state.models.default
    readiness = await default.health.check()
    endpoints = ",".join(default.spec.endpoints)
    body = readiness.body(
        model=default.name, endpoint=endpoints, max_model_len=default.info.max_model_len
    )
    others = [m for m in state.models.all if m is not default]
    body["models"] = {default.name: {"ready": readiness.ready, "reason": readiness.reason}}
    for model in others:
        other = await model.health.check()
        body["models"][model.name] = {
            "ready": other.ready,
            "reason": other.reason,
            "replicas": other.replicas,
        }
    if state.guard.enabled:
        body["rate_limits"] = state.guard.limiter_state()
    return _json(body, 200 if readiness.ready else 503)


@router.get(paths.LIVENESS)
async def liveness() -> Response:
    """Liveness only: this process answers; readiness is /v1/health_check."""
    return _json({"status": "alive"})


@router.get(paths.METRICS)
async def metrics(state: StateDep) -> Response:
    return Response(state.metrics.render(), media_type=state.metrics.content_type)
