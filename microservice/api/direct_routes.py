"""The model routes (POST chat, completions, embeddings) served past Starlette's router and
middleware stack, inside our own ``RequestContext`` (request id, trace span, metrics, access
log); everything else goes through Starlette as usual.

Why: each of Starlette's wrappers (router, exception and error middleware) is an await and a
send wrapper per request, a tenth of a request's CPU on the hot path (docs/benchmarks.md), and
a pushed stream must find the server's own ``send`` (``relay.client_socket``), which the
wrappers hide. This is the one place that says so.

What the stack did for these routes is done here: a ``ServiceError`` becomes its answer
(``error_answers``); a client gone before the answer is not an error (nothing is sent, the
access log says 499); any other exception propagates to uvicorn, which logs it and answers 500.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from microservice.api.error_answers import error_response
from microservice.api.routes import MODEL_ROUTES
from microservice.errors import ServiceError
from microservice.relay.client_socket import SERVER_SEND
from microservice.relay.disconnect import CLIENT_GONE, ClientGone

Endpoint = Callable[[Request], Awaitable[Response]]


class DirectRoutes:
    def __init__(self, endpoints: dict[str, Endpoint]) -> None:
        self._endpoints = endpoints

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            response = await self._endpoints[scope["path"]](request)
        except ServiceError as error:
            response = error_response(error)
        except ClientGone:
            scope["state"][CLIENT_GONE] = True
            return
        await response(scope, receive, send)


class ServiceApp(FastAPI):
    """FastAPI with POSTs to the model routes (``MODEL_ROUTES``) handed to ``direct`` (set by
    the app factory), and the server's own ``send`` kept in the scope for pushed streams."""

    direct: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope[SERVER_SEND] = send
        direct = self.direct
        if (
            direct is not None
            and scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"] in MODEL_ROUTES
        ):
            scope["app"] = self
            await direct(scope, receive, send)
            return
        await super().__call__(scope, receive, send)
