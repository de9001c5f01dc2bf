"""The OpenAPI document of the service, served at GET /openapi.json.

The routes read their raw body themselves (no pydantic model in their signature, for speed), so
FastAPI's own document has no request bodies and says nothing of the errors. This one adds them
from the same pydantic models the routes validate with, and lists every answer a route gives:
its 200 body (vLLM's answer passes through, so only the fields we guarantee are required), the
SSE stream of the streaming routes, and the error envelope of every error status it can answer.
The fuzz test (tests/integration/microservice/test_fuzz.py) holds the service to it.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.routing import Route

from microservice import paths
from microservice.api.openapi_bodies import (
    CHAT_COMPLETION,
    CHAT_STREAM,
    COMPLETION_STREAM,
    EMBEDDINGS,
    ERROR,
    EXAMPLES,
    HEALTH,
    JSON,
    MODELS,
    OPEA_ANSWER,
    RERANKED,
    RESPONSE,
    RESPONSE_STREAM,
    SCORES,
    STRING,
    TEXT_COMPLETION,
    obj,
)
from microservice.forms.opea import OpeaRequest
from microservice.forms.openai import CompletionRequest, EmbeddingRequest, OpenAIRequest
from microservice.forms.responses import ResponsesRequest
from microservice.forms.scoring import RerankRequest, ScoreRequest

REF = "#/components/schemas/{model}"
SSE = "text/event-stream"
BEARER = "bearer"

# Every error status an API route can answer, and why.
ERROR_STATUSES = {
    400: "Not JSON, a model of the other kind, or refused by the model server (its message).",
    401: "No API key, or one that is not in the keys file (API keys on).",
    403: "The API key may not use this model.",
    404: "No such model.",
    413: "The body is over LLM_MAX_BODY_BYTES.",
    422: "The body is invalid; `param` names the field.",
    429: "The API key's rate limit or token budget, or every replica at its in-flight limit.",
    502: "The model server failed.",
    503: "No model server replica is ready, or it is unreachable.",
    504: "The model server did not answer in time.",
}
API_ERRORS = tuple(ERROR_STATUSES)
# Headers of error answers: name → always sent. Retry-After on 503 only when no replica is ready.
ERROR_HEADERS = {
    401: {"WWW-Authenticate": True},
    429: {"Retry-After": True},
    503: {"Retry-After": False},
}


def _answer(
    description: str, content: dict[str, Any], headers: dict[str, bool] | None = None
) -> dict[str, Any]:
    """A response; every one carries the request's id (the middleware adds it)."""
    answer_headers = {"X-Request-Id": {"required": True, "schema": STRING}}
    for name, required in (headers or {}).items():
        answer_headers[name] = {"required": required, "schema": STRING}
    media = {media: {"schema": schema} for media, schema in content.items()}
    return {"description": description, "content": media, "headers": answer_headers}


def _api(path: str, body: Any, ok: dict[str, Any], statuses: tuple[int, ...]) -> dict[str, Any]:
    """An API route (bearer key): its body with examples, its 200 and its error answers."""
    operation: dict[str, Any] = {"security": [{BEARER: []}]}
    if body is not None:
        examples = {name: {"value": value} for name, value in EXAMPLES[path].items()}
        media = {"schema": body, "examples": examples}
        operation["requestBody"] = {"required": True, "content": {JSON: media}}
    errors = {
        str(s): _answer(ERROR_STATUSES[s], {JSON: ERROR}, ERROR_HEADERS.get(s)) for s in statuses
    }
    operation["responses"] = {"200": ok, **errors}
    return operation


def _operations(ref: dict[type[BaseModel], dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """What each route reads and answers, by path (every route has one method)."""
    chat = {"oneOf": [ref[OpeaRequest], ref[OpenAIRequest]]}
    chat_ok = {JSON: {"anyOf": [CHAT_COMPLETION, OPEA_ANSWER]}, SSE: CHAT_STREAM}
    chat_text = "OpenAI form: vLLM's chat.completion or its stream; OPEA form: the OPEA answer"
    text_ok = {JSON: TEXT_COMPLETION, SSE: COMPLETION_STREAM}
    not_ready = "Not ready; `model_server.reason` says why."
    return {
        paths.CHAT: _api(
            paths.CHAT,
            chat,
            _answer(f"{chat_text} or its stream.", chat_ok),
            API_ERRORS,
        ),
        paths.COMPLETIONS: _api(
            paths.COMPLETIONS,
            ref[CompletionRequest],
            _answer("vLLM's text_completion, or its stream.", text_ok),
            API_ERRORS,
        ),
        paths.EMBEDDINGS: _api(
            paths.EMBEDDINGS,
            ref[EmbeddingRequest],
            _answer("vLLM's embeddings.", {JSON: EMBEDDINGS}),
            API_ERRORS,
        ),
        paths.RESPONSES: _api(
            paths.RESPONSES,
            ref[ResponsesRequest],
            _answer(
                "vLLM's response, or its stream of events.", {JSON: RESPONSE, SSE: RESPONSE_STREAM}
            ),
            API_ERRORS,
        ),
        paths.RERANK: _api(
            paths.RERANK,
            ref[RerankRequest],
            _answer("vLLM's results, best first.", {JSON: RERANKED}),
            API_ERRORS,
        ),
        paths.SCORE: _api(
            paths.SCORE,
            ref[ScoreRequest],
            _answer("vLLM's score of each pair.", {JSON: SCORES}),
            API_ERRORS,
        ),
        paths.MODELS: _api(
            "", None, _answer("The models (this key may use).", {JSON: MODELS}), (401,)
        ),
        paths.HEALTH_CHECK: {
            "responses": {
                "200": _answer("Ready: the default model has a ready replica.", {JSON: HEALTH}),
                "503": _answer(not_ready, {JSON: HEALTH}),
            }
        },
        paths.LIVENESS: {
            "responses": {
                "200": _answer("Alive.", {JSON: obj(["status"], status={"const": "alive"})})
            }
        },
        paths.METRICS: {
            "responses": {"200": _answer("Prometheus metrics.", {"text/plain": STRING})}
        },
    }


def _plain_operations(route: Route) -> dict[str, dict[str, Any]]:
    """The summary and operation id FastAPI would give the route (``generate_unique_id``)."""
    unique = re.sub(r"\W", "_", f"{route.name}{route.path_format}")
    summary = route.name.replace("_", " ").title()
    return {
        method.lower(): {"summary": summary, "operationId": f"{unique}_{method.lower()}"}
        for method in sorted(route.methods or ())
        if method != "HEAD"
    }


def build_openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document of ``app`` with the request bodies, answers and security added."""
    doc = get_openapi(
        title=app.title,
        version=app.version,
        openapi_version=app.openapi_version,
        description=app.description,
        routes=app.routes,
    )
    models: list[type[BaseModel]] = [
        OpeaRequest,
        OpenAIRequest,
        CompletionRequest,
        EmbeddingRequest,
        ResponsesRequest,
        RerankRequest,
        ScoreRequest,
    ]
    refs, definitions = models_json_schema([(m, "validation") for m in models], ref_template=REF)
    components = doc.setdefault("components", {})
    components.setdefault("schemas", {}).update(definitions.get("$defs", {}))
    components["securitySchemes"] = {
        BEARER: {
            "type": "http",
            "scheme": "bearer",
            "description": "A key of LLM_API_KEYS_FILE; needed only when that file is set.",
        }
    }
    paths = doc.setdefault("paths", {})
    for route in app.routes:  # plain endpoints: FastAPI documents only its own routes
        if type(route) is Route and route.include_in_schema:
            paths.setdefault(route.path, {}).update(_plain_operations(route))
    order = [route.path for route in app.routes if isinstance(route, Route)]
    doc["paths"] = {path: paths[path] for path in order if path in paths}
    ref = {model: refs[(model, "validation")] for model in models}
    for path, extra in _operations(ref).items():
        for operation in doc["paths"].get(path, {}).values():
            operation.update(extra)
    return copy.deepcopy(doc)  # shares nothing with this module's constants


def install_openapi(app: FastAPI) -> None:
    """Serve :func:`build_openapi` as ``app``'s GET /openapi.json, built on the first request
    for it and kept (nothing is built before)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
