"""Thin HTTP routes: read, validate, hand over to the form's module or the health checker."""

from __future__ import annotations

import time
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from microservice import opea, openai_form
from microservice.chat import RequestIds
from microservice.errors import BodyTooLarge
from microservice.schemas import OpeaRequest, check_max_tokens, parse_json, parse_request
from microservice.state import StateDep

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


@router.post("/v1/chat/completions")
async def chat_completions(request: Request, state: StateDep) -> Response:
    chat = parse_request(parse_json(await read_body(request, state.settings.llm_max_body_bytes)))
    if not state.model_info.known:  # no replica reached yet: learn the context length first
        await state.pool.check_now()
    max_model_len = state.model_info.max_model_len
    check_max_tokens(chat, max_model_len)
    ids = RequestIds(request.state.request_id, request.headers.get("x-session-id"))
    if isinstance(chat, OpeaRequest):
        return await opea.answer(state, request, chat, ids, max_model_len)
    return await openai_form.answer(state, request, chat, ids)


@router.get("/v1/health_check")
async def health_check(state: StateDep) -> Response:
    readiness = await state.health.check()
    settings = state.settings
    body = readiness.body(
        settings.llm_model_name, settings.llm_model_server_endpoint, state.model_info.max_model_len
    )
    return _json(body, 200 if readiness.ready else 503)


@router.get("/health")
async def liveness() -> Response:
    """Liveness only: this process answers; readiness is /v1/health_check."""
    return _json({"status": "alive"})


@router.get("/v1/models")
async def models(state: StateDep) -> Response:
    model = {
        "id": state.settings.llm_model_name,
        "object": "model",
        "created": int(time.time()),
        "owned_by": state.settings.llm_model_server,
        "max_model_len": state.model_info.max_model_len,
    }
    return _json({"object": "list", "data": [model]})


@router.get("/metrics")
async def metrics(state: StateDep) -> Response:
    return Response(state.metrics.render(), media_type=state.metrics.content_type)
