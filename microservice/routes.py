"""Thin HTTP routes: who calls, read and validate, pick the model, admit, hand over.

The three model routes (chat, completions, embeddings) are plain Starlette endpoints: FastAPI's
per-request dependency solving showed in the profile of the hot path, and they read and validate
their body themselves anyway. ``openai_api`` documents them as it documents the others, and
``direct_routes`` serves them past Starlette's router and middleware.

Every API route (chat, completions, embeddings, models) needs an API key when keys are on;
health and /metrics never do. The order of refusals: 401 (no or wrong key), 4xx for the body,
404 (no such model), 403 (not this key's model), 429 (this key's limits).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from microservice import opea, openai_form
from microservice.auth.guard import Caller
from microservice.calls import RequestIds
from microservice.catalog import ModelKind
from microservice.errors import BodyTooLarge
from microservice.openai_schemas import (
    CompletionRequest,
    EmbeddingRequest,
    parse_completion,
    parse_embedding,
)
from microservice.schemas import OpeaRequest, check_max_tokens, parse_json, parse_request
from microservice.served import ServedModel
from microservice.state import ServiceState, StateDep, service_state

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


async def _json_body(request: Request, state: ServiceState) -> dict[str, Any]:
    return parse_json(await read_body(request, state.settings.llm_max_body_bytes))


async def _admit(
    request: Request, state: ServiceState, caller: Caller, served: ServedModel
) -> None:
    """The key's limits; its rate-limit headers go on the answer (the middleware adds them)."""
    headers = await state.guard.admit(caller, served.name)
    if headers:
        request.state.response_headers = headers


def _ids(request: Request) -> RequestIds:
    return RequestIds(request.state.request_id, request.headers.get("x-session-id"))


async def chat_completions(request: Request) -> Response:
    state = service_state(request)
    caller = state.guard.identify(request.headers.get("authorization"))
    chat = parse_request(await _json_body(request, state))
    served = state.models.get(None if isinstance(chat, OpeaRequest) else chat.model, "chat")
    await _admit(request, state, caller, served)
    max_model_len = await served.learn_context_length()
    check_max_tokens(chat, max_model_len)
    if isinstance(chat, OpeaRequest):
        return await opea.answer(state, request, served, caller, chat, _ids(request), max_model_len)
    call = chat.to_model_server(served.served_name, _ids(request))
    return await openai_form.relay(
        state, request, served, call, caller, "openai", chat.wants_usage_chunk
    )


async def _relayed(
    request: Request,
    state: ServiceState,
    caller: Caller,
    openai: CompletionRequest | EmbeddingRequest,
    kind: ModelKind,
    form: str,
) -> Response:
    """Completions and embeddings: vLLM's answer passed through."""
    served = state.models.get(openai.model, kind)
    await _admit(request, state, caller, served)
    openai.check_tokens(await served.learn_context_length())
    call = openai.to_model_server(served.served_name, _ids(request))
    return await openai_form.relay(
        state, request, served, call, caller, form, openai.wants_usage_chunk
    )


async def completions(request: Request) -> Response:
    state = service_state(request)
    caller = state.guard.identify(request.headers.get("authorization"))
    completion = parse_completion(await _json_body(request, state))
    return await _relayed(request, state, caller, completion, "chat", "completions")


async def embeddings(request: Request) -> Response:
    state = service_state(request)
    caller = state.guard.identify(request.headers.get("authorization"))
    embedding = parse_embedding(await _json_body(request, state))
    return await _relayed(request, state, caller, embedding, "embedding", "embeddings")


# Served by ``direct_routes`` for POST; in the router too, for the OpenAPI document and the
# 405 of any other method.
MODEL_ROUTES: dict[str, Callable[[Request], Awaitable[Response]]] = {
    "/v1/chat/completions": chat_completions,
    "/v1/completions": completions,
    "/v1/embeddings": embeddings,
}
for path, endpoint in MODEL_ROUTES.items():
    router.add_route(path, endpoint, methods=["POST"])


@router.get("/v1/models")
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


@router.get("/v1/health_check")
async def health_check(state: StateDep) -> Response:
    """Ready while the default model is; every model and the rate-limit store are listed."""
    default = state.models.default
    readiness = await default.health.check()
    endpoints = ",".join(default.spec.endpoints)
    body = readiness.body(default.name, endpoints, default.info.max_model_len)
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


@router.get("/health")
async def liveness() -> Response:
    """Liveness only: this process answers; readiness is /v1/health_check."""
    return _json({"status": "alive"})


@router.get("/metrics")
async def metrics(state: StateDep) -> Response:
    return Response(state.metrics.render(), media_type=state.metrics.content_type)
