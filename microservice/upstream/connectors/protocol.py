"""What the dispatcher needs from a connector: the call as the connector sends it, then one
answer or a stream of chunks, in OpenAI format, from the replica it is given.

Both connectors take the same ``ModelCall`` and return the same types
(``upstream.model_call``), so neither the routes nor the dispatcher know which one they use.
Failures are raised as ``ModelServerError``.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Protocol

from microservice.relay.push import BatchConsumer
from microservice.upstream.model_call import Completion, ModelCall


class Connector(Protocol):
    def prepare(self, call: ModelCall) -> ModelCall:
        """The call as this connector sends it, built once per request (before any replica
        is chosen); ``RequestInvalid`` when it cannot be built."""
        ...

    async def complete(self, call: ModelCall, base_url: str) -> Completion:
        """Send a non-streaming request to the replica at ``base_url``; raise
        ModelServerError on failure."""
        ...

    def stream(
        self, call: ModelCall, base_url: str
    ) -> AsyncGenerator[list[bytes], BatchConsumer | None]:
        """Yield lists of chunk JSON bytes, the last one the usage chunk.

        A list holds the chunks that arrived together, so they leave in one write. Failures
        before the first chunk surface on the first ``__anext__``; later ones end the
        iteration with a ModelServerError. Closing the iterator closes the request to vLLM,
        which makes vLLM abort the generation.

        What is sent in at a yield may be a consumer offering to take the rest of the stream
        from the socket's callbacks (``relay.push``); a connector that cannot push ignores it
        and yields on.
        """
        ...

    async def aclose(self) -> None: ...
