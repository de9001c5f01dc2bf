"""The failures of a call to vLLM as ours, once for every client, and the httpx client of the
one caller that needs a library's client: the openai SDK under the LangChain connector.

The service's own calls go through ``http_client.Http1Client``; both it and the httpx
translation build their ``ModelServerError`` with the message builders here.
"""

from __future__ import annotations

import httpx

from microservice.errors import (
    ModelServerConnectionLost,
    ModelServerError,
    ModelServerTimeout,
    ModelServerUnreachable,
)
from microservice.settings import MicroserviceSettings

# vLLM (uvicorn) closes a keep-alive connection after 5 s idle. Dropping ours sooner means a
# pooled connection is never reused just as the server closes it (answered 502), and idle
# connections do not linger half-closed (CLOSE-WAIT) on our side.
MODEL_SERVER_KEEPALIVE_S = 2.0


def timed_out(endpoint: str) -> ModelServerTimeout:
    return ModelServerTimeout(f"model server at {endpoint} did not answer in time")


def unreachable(endpoint: str, error: Exception) -> ModelServerUnreachable:
    return ModelServerUnreachable(f"model server at {endpoint} is unreachable: {error}")


def lost(endpoint: str, error: Exception) -> ModelServerConnectionLost:
    return ModelServerConnectionLost(
        f"model server at {endpoint} failed: {type(error).__name__}: {error}"
    )


def httpx_error(error: httpx.HTTPError, endpoint: str) -> ModelServerError:
    if isinstance(error, httpx.TimeoutException) and not isinstance(error, httpx.ConnectTimeout):
        return timed_out(endpoint)
    if isinstance(error, httpx.ConnectError | httpx.ConnectTimeout):
        return unreachable(endpoint, error)
    return lost(endpoint, error)


def make_sdk_client(
    settings: MicroserviceSettings, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    """The same pool limits and timeouts as ours, for the openai SDK; ``transport`` replaces
    the network in in-process tests (a stand-in model server)."""
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
