"""The routes: who calls, read and validate, pick the model, admit, answer.

Every API route (chat, completions, embeddings, models) needs an API key when keys are on;
health and /metrics never do. The order of refusals: 401 (no or wrong key), 4xx for the body,
404 (no such model), 403 (not this key's model), 429 (this key's limits).

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
from microservice.api.answer import answer
from microservice.api.state import StateDep, service_state
from microservice.config.catalog import ModelKind
from microservice.errors import BodyTooLarge
from microservice.forms import parse
from microservice.forms.shape import ModelRequest
from microservice.upstream.model_call import RequestIds

router = APIRouter()


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it is known to be over ``limit``."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise BodyTooLarge(f"body is {length} bytes; the limit is {limit}", param="body")
    body = bytearray()
    async for part in request.stream():
        body += part
        if len(body) > limit:
            raise BodyTooLarge(f"body is over the limit of {limit} bytes", param="body")
    return bytes(body)


async def _model_route(
    request: Request, read: Callable[[bytes], ModelRequest], kind: ModelKind
) -> Response:
    """One model request, top to bottom: the caller, its body read into its form, the model
    it names, the caller admitted to it, the budget checked, the call answered."""
    service = service_state(request)
    settings = service.settings
    caller = service.guard.identify(request.headers.get("authorization"))
    form = read(await read_body(request, settings.llm_max_body_bytes))
    served = service.models.get(form.requested_model, kind)
    rate_limit_headers = await service.guard.admit(caller, served.name)
    if rate_limit_headers:
        request.state.response_headers = rate_limit_headers  # the request context adds them
    max_model_len = await served.learn_context_length()
    form.check_tokens(max_model_len)
    call = form.to_model_server(
        served.served_name,
        RequestIds(request.state.request_id, request.headers.get("x-session-id")),
        max_model_len=max_model_len,
        may_stream=not (settings.llm_disable_streaming or settings.llm_output_guard_exists),
    )
    return await answer(
        request, service, served=served, call=call, caller=caller, shape=form.answer_shape()
    )


async def chat_completions(request: Request) -> Response:
    return await _model_route(request, parse.chat, "chat")


async def completions(request: Request) -> Response:
    return await _model_route(request, parse.completion, "chat")


async def embeddings(request: Request) -> Response:
    return await _model_route(request, parse.embedding, "embedding")


# Served by ``direct_routes`` for POST; in the router too, for the OpenAPI document and the
# 405 of any other method.
MODEL_ROUTES: dict[str, Callable[[Request], Awaitable[Response]]] = {
    paths.CHAT: chat_completions,
    paths.COMPLETIONS: completions,
    paths.EMBEDDINGS: embeddings,
}
for path, endpoint in MODEL_ROUTES.items():
    router.add_route(path, endpoint, methods=["POST"])


@router.get(paths.MODELS)
async def models(request: Request, state: StateDep) -> Response:
    """The models this service serves (a key with a model list sees only those)."""
    caller = state.guard.identify(request.headers.get("authorization"))
    created = int(time.time())
    data = [
        {
            "id": model.name,
            "object": "model",
            "created": created,
            "owned_by": state.settings.llm_model_server,
            "kind": model.spec.kind,
            "max_model_len": model.info.max_model_len,
        }
        for model in state.models.all
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
