"""Per-request bookkeeping as plain ASGI (no BaseHTTPMiddleware, which buffers streams).

Accepts or makes the X-Request-Id, returns it, keeps it in the log context; opens the request's
trace span (continuing the client's ``traceparent``); adds the headers a route left in
``request.state.response_headers`` (an API key's rate limits); counts requests by
route and status, times them to the last body byte, tracks requests in flight; one access log
line per request (never per chunk).
"""

from __future__ import annotations

import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from microservice.observability.logs import get_logger, request_id_var
from microservice.observability.metrics import Metrics
from microservice.observability.tracing import Tracing

CLIENT_GONE = "client_gone"  # in the request's state: the client left before the answer

HEADER = b"x-request-id"
# Printable, no spaces, bounded: it is logged and forwarded, so it must not carry injections.
VALID_ID = re.compile(rb"^[A-Za-z0-9._:\-]{1,128}$")


def request_id_from(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == HEADER and VALID_ID.match(value):
            return bytes(value).decode("ascii")
    return uuid.uuid4().hex


class RequestContext:
    def __init__(self, app: ASGIApp, metrics: Metrics, tracing: Tracing) -> None:
        self.app = app
        self.metrics = metrics
        self.tracing = tracing
        self.log = get_logger()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_from(scope)
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        token = request_id_var.set(request_id)
        route = self.metrics.route_label(scope["path"])
        start = time.perf_counter()
        status = 0  # no answer started
        header = (HEADER, request_id.encode("ascii"))

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), header]
                # set by the route once the API key was admitted: its rate-limit headers
                for name, value in state.get("response_headers", ()):
                    message["headers"].append((name.encode("latin-1"), value.encode("latin-1")))
            await send(message)

        self.metrics.in_flight.inc()
        try:
            with self.tracing.request_span(f"{scope['method']} {route}", scope["headers"]) as span:
                span.set_attribute("request_id", request_id)
                await self.app(scope, receive, send_with_id)
                span.set_attribute("http.response.status_code", status)
        finally:
            if status == 0:  # 499: the client left first (nginx's code); else an error
                status = 499 if state.get(CLIENT_GONE) else 500
            elapsed = time.perf_counter() - start
            self.metrics.in_flight.dec()
            self.metrics.answered(route, str(status)).inc()
            self.metrics.timed(route).observe(elapsed)
            self.log.info(
                "request",
                extra={
                    "fields": {
                        "method": scope["method"],
                        "path": scope["path"],
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 2),
                    }
                },
            )
            request_id_var.reset(token)
