"""What the forms need from a connector: one answer, or a stream of chunks, in OpenAI format.

Both connectors take the same ``ModelCall`` and the replica to send it to, and return the same
types (``microservice.calls``), so neither the forms nor the dispatcher know which one they use.
Failures are raised as ``ModelServerError``.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Protocol

from microservice.calls import Completion, ModelCall
from microservice.push import BatchConsumer


class Connector(Protocol):
    async def complete(self, call: ModelCall, base_url: str) -> Completion:
        """Send a non-streaming chat request to the replica at ``base_url``; raise
        ModelServerError on failure."""
        ...

    def stream(
        self, call: ModelCall, base_url: str
    ) -> AsyncGenerator[list[bytes], BatchConsumer | None]:
        """Yield lists of ``chat.completion.chunk`` JSON bytes, the last one the usage chunk.

        A list holds the chunks that arrived together, so they leave in one write. Failures
        before the first chunk surface on the first ``__anext__``; later ones end the
        iteration with a ModelServerError. Closing the iterator closes the request to vLLM,
        which makes vLLM abort the generation.

        What is sent in at a yield may be a consumer offering to take the rest of the stream
        from the socket's callbacks (``microservice.push``); a connector that cannot push
        ignores it and yields on.
        """
        ...

    async def aclose(self) -> None: ...
