"""A request body read into its form: JSON first, then the form's model; the first problem
named with its field (``param``) in the error envelope."""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from common.config_errors import first_problem
from microservice.errors import BodyNotJson, RequestInvalid
from microservice.forms.guided import map_guided_fields
from microservice.forms.opea import OpeaRequest
from microservice.forms.openai import CompletionRequest, EmbeddingRequest, OpenAIRequest
from microservice.forms.responses import ResponsesRequest
from microservice.forms.scoring import RerankRequest, ScoreRequest, check_score_texts

FormT = TypeVar("FormT", bound=BaseModel)


def invalid_request(error: ValidationError | RequestValidationError) -> RequestInvalid:
    """The first problem of a validation error, naming the field (``body`` left out)."""
    field, message = first_problem(error.errors(), skip=("body",))
    return RequestInvalid(f"{field}: {message}" if field else message, param=field)


def json_object(body: bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise BodyNotJson(f"body is not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise RequestInvalid("body must be a JSON object", param="body")
    return data


def _validated(form: type[FormT], data: dict[str, Any]) -> FormT:
    try:
        return form.model_validate(data)
    except ValidationError as error:
        raise invalid_request(error) from None


def chat(body: bytes) -> OpeaRequest | OpenAIRequest:
    """The form is told by the shape of ``messages``: an object is OPEA's, a list OpenAI's."""
    data = json_object(body)
    map_guided_fields(data)
    messages = data.get("messages")
    if isinstance(messages, dict):
        return _validated(OpeaRequest, data)
    if isinstance(messages, list):
        return _validated(OpenAIRequest, data)
    if messages is None:
        raise RequestInvalid("messages: field required", param="messages")
    raise RequestInvalid(
        "messages: must be an object {system, user} or a list of {role, content}",
        param="messages",
    )


def completion(body: bytes) -> CompletionRequest:
    data = json_object(body)
    map_guided_fields(data)
    return _validated(CompletionRequest, data)


def response(body: bytes) -> ResponsesRequest:
    return _validated(ResponsesRequest, json_object(body))


def embedding(body: bytes) -> EmbeddingRequest:
    return _validated(EmbeddingRequest, json_object(body))


def rerank(body: bytes) -> RerankRequest:
    return _validated(RerankRequest, json_object(body))


def score(body: bytes) -> ScoreRequest:
    data = json_object(body)
    form = _validated(ScoreRequest, data)
    check_score_texts(data)
    return form
