"""The one pooled HTTP client to vLLM (the model server), and how its failures read as ours."""

from __future__ import annotations

import httpx
import orjson

from microservice.errors import (
    ModelServerConnectionLost,
    ModelServerError,
    ModelServerFailed,
    ModelServerRejected,
    ModelServerTimeout,
    ModelServerUnreachable,
)
from microservice.settings import MicroserviceSettings

# vLLM (uvicorn) closes a keep-alive connection after 5 s idle. Dropping ours sooner means a
# pooled connection is never reused just as the server closes it (a ReadError, answered 502),
# and idle connections do not linger half-closed (CLOSE-WAIT) on our side.
MODEL_SERVER_KEEPALIVE_S = 2.0


def make_client(
    settings: MicroserviceSettings, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    """Keep-alive pool sized for the service's concurrency, shared by every replica (requests
    name the replica's URL); the read timeout is the 504 limit.

    ``transport`` replaces the network in in-process tests (a stand-in model server)."""
    return httpx.AsyncClient(
        transport=transport,
        timeout=httpx.Timeout(
            settings.llm_request_timeout_s,
            connect=settings.llm_connect_timeout_s,
            pool=settings.llm_request_timeout_s,
        ),
        limits=httpx.Limits(
            max_connections=settings.llm_max_connections,
            max_keepalive_connections=settings.llm_max_connections,
            keepalive_expiry=MODEL_SERVER_KEEPALIVE_S,
        ),
    )


def transport_error(error: httpx.HTTPError, endpoint: str) -> ModelServerError:
    if isinstance(error, httpx.TimeoutException) and not isinstance(error, httpx.ConnectTimeout):
        return ModelServerTimeout(f"model server at {endpoint} did not answer in time")
    if isinstance(error, httpx.ConnectError | httpx.ConnectTimeout):
        return ModelServerUnreachable(f"model server at {endpoint} is unreachable: {error}")
    return ModelServerConnectionLost(
        f"model server at {endpoint} failed: {type(error).__name__}: {error}"
    )


def model_server_message(body: bytes) -> str:
    """vLLM's own words: ``{"error": {"message"}}``, ``{"message"}`` or ``{"detail"}``."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body.decode(errors="replace")[:500]
    if isinstance(data, dict):
        inner = data.get("error")
        if isinstance(inner, dict) and "message" in inner:
            return str(inner["message"])
        for key in ("message", "detail", "error"):
            if key in data:
                return str(data[key])
    return str(data)[:500]


def status_error(status: int, body: bytes, endpoint: str) -> ModelServerError:
    """4xx: the client's request was refused (kept, vLLM's message); 5xx and others: 502."""
    message = model_server_message(body)
    if 400 <= status < 500:
        return ModelServerRejected(message, status=400 if status in (400, 422) else status)
    return ModelServerFailed(f"model server at {endpoint} answered {status}: {message}")
