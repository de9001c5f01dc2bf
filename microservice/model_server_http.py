"""The failures of a call to vLLM as ours: the messages every ``ModelServerError`` of the
client (``http_client``) is built with, and the keep-alive bound of its pool.
"""

from __future__ import annotations

from microservice.errors import (
    ModelServerConnectionLost,
    ModelServerTimeout,
    ModelServerUnreachable,
)

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
