"""Writing a stream's events straight to the client's socket, under uvicorn's httptools server.

ASGI's ``await send`` is a coroutine step per event, through Starlette's and our middleware's
send wrappers; a pushed stream (``relay.push``) writes its events from a socket callback instead,
in the chunked framing uvicorn itself writes. The head of the answer, its first event and its
last write still go through ``send``, so uvicorn and the middleware see the response as always.
Under any other server, or with a send wrapped by anything else, ``ClientSocket.of`` is None
and the stream is written with ``send``.
"""

from __future__ import annotations

from typing import Any

from starlette.types import Scope

from microservice.relay.push import PAUSED, StopPush

# Where ``ServiceApp`` leaves the server's own ``send`` for this module.
SERVER_SEND = "llm.server_send"
UVICORN_MODULE, UVICORN_CYCLE = "uvicorn.protocols.http.httptools_impl", "RequestResponseCycle"


class ClientSocket:
    def __init__(self, cycle: Any) -> None:
        self._cycle = cycle
        self._transport = cycle.transport
        self._flow = cycle.flow

    @classmethod
    def of(cls, scope: Scope) -> ClientSocket | None:
        """The client's socket once the answer's head went out chunked, if uvicorn's."""
        cycle: Any = getattr(scope.get(SERVER_SEND), "__self__", None)
        cycle_type = type(cycle)
        if cycle_type.__qualname__ != UVICORN_CYCLE or cycle_type.__module__ != UVICORN_MODULE:
            return None
        if not (cycle.response_started and cycle.chunked_encoding is True):
            return None
        if cycle.response_complete or cycle.disconnected:
            return None
        return cls(cycle)

    def write(self, data: bytes) -> None:
        """One chunk of the body; ``StopPush(PAUSED)`` once the client is not keeping up (or
        gone: the disconnect watch ends the request)."""
        if self._cycle.disconnected:
            raise StopPush(PAUSED)
        self._transport.write(b"%x\r\n%b\r\n" % (len(data), data))
        if self._flow.write_paused:
            raise StopPush(PAUSED)
