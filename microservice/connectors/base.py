"""What the routes need from a connector: one answer, or a stream of chunks, in OpenAI format.

Both connectors speak vLLM's OpenAI chat API and return the same shapes, so the routes do not
know which one they use. Failures are raised as ``microservice.errors.UpstreamError``.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Completion:
    """A ``chat.completion``: the bytes to pass through and the parsed object."""

    raw: bytes
    body: dict[str, Any]

    @property
    def text(self) -> str:
        choices = self.body.get("choices") or [{}]
        return str((choices[0].get("message") or {}).get("content") or "")

    @property
    def completion_tokens(self) -> int:
        return int((self.body.get("usage") or {}).get("completion_tokens") or 0)


class Connector(Protocol):
    async def complete(self, payload: dict[str, Any], request_id: str) -> Completion:
        """Send a non-streaming chat request; raise UpstreamError on failure."""
        ...

    def stream(self, payload: dict[str, Any], request_id: str) -> AsyncGenerator[list[bytes], None]:
        """Yield lists of ``chat.completion.chunk`` JSON bytes, the last one carrying usage.

        A list holds the chunks that arrived together, so they leave in one write. Failures
        before the first chunk surface on the first ``__anext__``; later ones end the
        iteration with an UpstreamError. Closing the iterator closes the upstream request,
        which makes vLLM abort the generation.
        """
        ...

    async def aclose(self) -> None: ...
