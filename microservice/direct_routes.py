"""The model routes (POST chat, completions, embeddings) served past Starlette's router and
middleware stack: five wrappers per request, each an await and a send wrapper, were a tenth
of a request's CPU in the profile. ``ServiceApp`` sends these requests here, inside our own
``RequestContext`` (request id, trace span, metrics, access log) as before; everything else
goes through Starlette as usual.

What the stack did for these routes is done here: a ``ServiceError`` becomes its answer
through ``errors``, the one table; a client gone before the answer is not an error (nothing is
sent, the access log says 499); any other exception propagates to uvicorn, which logs it and
answers 500.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from microservice.errors import ServiceError, service_error_response
from microservice.streaming import ClientGone

Endpoint = Callable[[Request], Awaitable[Response]]

CLIENT_GONE = "client_gone"  # in the request's state: the client left before the answer


class DirectRoutes:
    def __init__(self, endpoints: dict[str, Endpoint]) -> None:
        self._endpoints = endpoints

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            response = await self._endpoints[scope["path"]](request)
        except ServiceError as error:
            response = service_error_response(error)
        except ClientGone:
            scope["state"][CLIENT_GONE] = True
            return
        await response(scope, receive, send)
