"""The one place a failure becomes an HTTP answer: a ``ServiceError`` answers its own status
with the error envelope (``errors.error_body``), Retry-After and its headers; FastAPI's own
validation and HTTP errors are answered in the same envelope instead of ``{"detail": ...}``.
"""

from __future__ import annotations

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from microservice.errors import ServiceError, error_body
from microservice.forms.parse import invalid_request
from microservice.observability import audit
from microservice.observability.logs import get_logger


def error_response(error: ServiceError) -> Response:
    """The answer to a ``ServiceError``; failures on our side (5xx) are logged."""
    audit.failed(error.error_type)
    if error.status >= 500:
        get_logger().warning("model server failure", extra={"fields": {"error": error.message}})
    headers = dict(error.headers)
    if error.retry_after is not None:
        headers["Retry-After"] = str(error.retry_after)
    return Response(
        orjson.dumps(error_body(error)),
        status_code=error.status,
        media_type="application/json",
        headers=headers,
    )


def install(app: FastAPI) -> None:
    """Route every failure of the routes Starlette serves through ``error_response``."""

    async def on_service_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ServiceError)
        return error_response(exc)

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return error_response(invalid_request(exc))

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        error = ServiceError(str(exc.detail))
        error.status, error.error_type = exc.status_code, "http_error"
        return error_response(error)

    app.add_exception_handler(ServiceError, on_service_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
