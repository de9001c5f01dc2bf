"""The one table from failures to HTTP answers, and the one JSON error envelope.

Connectors raise ``ModelServerError`` subclasses; request checks raise ``RequestInvalid``. Every
error answer, before or during a stream, has the OpenAI shape
``{"error": {"message", "type", "param", "code"}}`` so the openai SDK reports it properly.
The ``type`` strings of model-server failures (``upstream_*``) are part of the wire contract
clients match on, so they keep their first names.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from microservice.logs import get_logger


class ServiceError(Exception):
    """A failure with a known HTTP answer."""

    status = 500
    kind = "internal_error"
    code: str | None = None  # OpenAI's error code where it has one; else the status
    retry_after: int | None = None  # seconds, sent as Retry-After when set
    headers: tuple[tuple[str, str], ...] = ()  # more headers of the answer

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class RequestInvalid(ServiceError):
    status = 422
    kind = "invalid_request_error"


class BodyNotJson(RequestInvalid):
    status = 400


class BodyTooLarge(RequestInvalid):
    status = 413


class InvalidApiKey(ServiceError):
    """No key, or not a key of the keys file (the message never repeats what was sent)."""

    status = 401
    kind = "invalid_request_error"
    code = "invalid_api_key"
    headers = (("WWW-Authenticate", "Bearer"),)


class ModelNotAllowed(ServiceError):
    status = 403
    kind = "permission_error"
    code = "model_not_allowed"


class ModelNotFound(ServiceError):
    status = 404
    kind = "invalid_request_error"
    code = "model_not_found"


class WrongModelKind(RequestInvalid):
    """A chat request for an embedding model, or the other way round."""

    status = 400
    code = "model_not_supported"


class KeyRateLimited(ServiceError):
    """The key's requests or tokens per minute are used up; other keys are not affected."""

    status = 429
    kind = "rate_limit_error"
    code = "rate_limit_exceeded"

    def __init__(
        self, message: str, retry_after: int, headers: tuple[tuple[str, str], ...]
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.headers = headers


class ModelServerError(ServiceError):
    """vLLM (the model server) failed us; subclasses say how."""

    status = 502
    kind = "upstream_error"


class ModelServerUnreachable(ModelServerError):
    status = 503
    kind = "upstream_unavailable"


class ModelServerTimeout(ModelServerError):
    status = 504
    kind = "upstream_timeout"


class ModelServerRejected(ModelServerError):
    """The model server refused the request (4xx): the client's fault, its message kept."""

    kind = "invalid_request_error"

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class ModelServerFailed(ModelServerError):
    """The model server answered 5xx or something that is not its API."""


class ModelServerConnectionLost(ModelServerFailed):
    """The connection to the replica broke (reset, closed early): it is likely gone."""


class NoHealthyReplica(ModelServerUnreachable):
    """No replica is in rotation: all are down or still loading."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Overloaded(ServiceError):
    """Admission control: every replica is at its in-flight limit and the queue is full, or the
    request waited in it too long. Answered at once, never absorbed."""

    status = 429
    kind = "rate_limit_error"

    def __init__(self, message: str, reason: str, retry_after: int) -> None:
        super().__init__(message)
        self.reason = reason
        self.retry_after = retry_after


def error_body(error: ServiceError) -> dict[str, Any]:
    return {
        "error": {
            "message": error.message,
            "type": error.kind,
            "param": error.param,
            "code": error.code if error.code is not None else error.status,
        }
    }


def error_response(error: ServiceError) -> Response:
    headers = dict(error.headers)
    if error.retry_after is not None:
        headers["Retry-After"] = str(error.retry_after)
    return Response(
        orjson.dumps(error_body(error)),
        status_code=error.status,
        media_type="application/json",
        headers=headers,
    )


def sse_error_event(error: ServiceError) -> bytes:
    """The in-band error a stream ends with (before ``[DONE]``) instead of just stopping."""
    return b"data: " + orjson.dumps(error_body(error)) + b"\n\n"


def service_error_response(error: ServiceError) -> Response:
    """The answer to a ``ServiceError``; the model server's failures (5xx) are logged."""
    if error.status >= 500:
        get_logger().warning("model server failure", extra={"fields": {"error": error.message}})
    return error_response(error)


def from_validation(error: ValidationError | RequestValidationError) -> RequestInvalid:
    """First problem of a pydantic error as one message naming the field."""
    first = error.errors()[0]
    loc = [str(part) for part in first.get("loc", ()) if part != "body"]
    field = ".".join(loc) or None
    message = str(first.get("msg", "invalid")).removeprefix("Value error, ")
    return RequestInvalid(f"{field}: {message}" if field else message, param=field)


def install(app: FastAPI) -> None:
    """Route every failure through the envelope (FastAPI's default is ``{"detail": ...}``)."""

    async def on_service_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ServiceError)
        return service_error_response(exc)

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return error_response(from_validation(exc))

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        error = ServiceError(str(exc.detail))
        error.status, error.kind = exc.status_code, "http_error"
        return error_response(error)

    app.add_exception_handler(ServiceError, on_service_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
