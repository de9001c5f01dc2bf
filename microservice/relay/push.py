"""Pushing a stream: after its first event, the rest of a stream can be relayed inside the
sockets' callbacks, model server to client, with no task, future or generator step per event
(that machinery costs more CPU per event than the relay itself; docs/benchmarks.md).

Each layer of the stream (the connector's event splitter, the SSE writer, the client's socket)
offers the layer below a *consumer*: a plain function the layer below calls with what it has.
A layer that cannot push ignores the offer (a body that cannot push answers ``PAUSED`` at
once) and the stream goes on as async iteration; a consumer that cannot take more now (the
client reads slowly) raises ``StopPush(PAUSED)`` and the stream goes on the same way, where
``await send`` waits for the client.
"""

from __future__ import annotations

from collections.abc import Callable

from microservice.errors import ServiceError

Consumer = Callable[[bytes], None]
BatchConsumer = Callable[[list[bytes]], None]

DONE = "done"  # the model server's [DONE]: the stream is whole
PAUSED = "paused"  # the client cannot take more now: go on with async writes
ENDED = "ended"  # the model server's body ended (without [DONE]: a lost stream)


class StopPush(Exception):
    """Raised by a consumer to end pushing; ``reason`` is DONE or PAUSED."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RenderFailed(Exception):
    """A failure of the SSE writer inside a callback (an OPEA chunk that carries vLLM's error),
    carried past the layers between to the writer, which raises ``error`` as it would have."""

    def __init__(self, error: ServiceError) -> None:
        super().__init__(error.message)
        self.error = error
