"""What the microservice needs from an HTTP client to vLLM (the model server), and how vLLM's
refusals read as ours.

The app holds one ``ModelServerClient`` for its life (``upstream.http1.client.Http1Client`` in
production). Every failure of a call comes out as a ``ModelServerError``, whatever the library
underneath, so connectors, probes and routing never see a library's exceptions. In-process tests
pass a stand-in that speaks the same protocol.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol

import orjson

from microservice.errors import ModelServerError, ModelServerFailed, ModelServerRejected
from microservice.relay.push import Consumer


@dataclass(frozen=True, slots=True)
class Reply:
    """A whole answer: its status and body."""

    status: int
    body: bytes


class ReplyStream(Protocol):
    """An answer whose body is read as it arrives, or pushed."""

    status: int

    def reads(self) -> AsyncGenerator[bytes, None]:
        """The body in the pieces it arrived in (one per read from the socket)."""
        ...

    async def body(self) -> bytes:
        """The rest of the body, whole (for error answers)."""
        ...

    async def push(self, consumer: Consumer) -> str:
        """The rest of the body to ``consumer`` from the socket's callbacks, until it raises
        ``StopPush`` (its reason is returned) or the body ends (``ENDED``); a body that cannot
        push returns ``PAUSED`` at once, and the stream goes on with ``reads``."""
        ...


class ModelServerClient(Protocol):
    """One pooled client to every replica; ``base_url`` names the replica of each call."""

    async def get(self, base_url: str, path: str, timeout_s: float) -> Reply: ...

    async def post(
        self, base_url: str, path: str, body: bytes, headers: Mapping[str, str]
    ) -> Reply: ...

    def stream(
        self, base_url: str, path: str, body: bytes, headers: Mapping[str, str]
    ) -> AbstractAsyncContextManager[ReplyStream]:
        """POST, answer read as it arrives; leaving the block releases or drops the connection."""
        ...

    async def aclose(self) -> None: ...


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
