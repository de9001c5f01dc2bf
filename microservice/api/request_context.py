"""Per-request bookkeeping as plain ASGI (no BaseHTTPMiddleware, which buffers streams).

Accepts or makes the X-Request-Id, returns it, keeps it in the log context; opens the request's
trace span (continuing the client's ``traceparent``); adds the headers a route left in
``request.state.response_headers`` (an API key's rate limits); counts requests by
route and status, times them to the last body byte, tracks requests in flight; one access log
line per request (never per chunk); for an API route, one audit line (``observability.audit``)
once the answer is finished, a stream's last byte included.
"""

from __future__ import annotations

import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from microservice.observability import audit
from microservice.observability.audit_log import AuditLog
from microservice.observability.logs import get_logger, request_id_var
from microservice.observability.metrics import Metrics
from microservice.observability.tracing import Tracing
from microservice.relay.disconnect import CLIENT_GONE

HEADER = b"x-request-id"
# Printable, no spaces, bounded: it is logged and forwarded, so it must not carry injections.
VALID_ID = re.compile(rb"^[A-Za-z0-9._:\-]{1,128}$")


def request_id_from(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == HEADER and VALID_ID.match(value):
            return bytes(value).decode("ascii")
    return uuid.uuid4().hex


class RequestContext:
    def __init__(
        self, app: ASGIApp, metrics: Metrics, tracing: Tracing, audit_log: AuditLog
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.tracing = tracing
        self.audit_log = audit_log
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
        record = self._audit_record(scope, request_id, start)
        close_record = audit.open_record(record) if record is not None else None

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
            if status == 0 or state.get(CLIENT_GONE):  # 499: the client left first (nginx's
                status = 499 if state.get(CLIENT_GONE) else 500  # code), before or mid-stream
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
            if record is not None and close_record is not None:
                self._write_audit(record, status, elapsed)
                close_record()
            request_id_var.reset(token)

    def _audit_record(
        self, scope: Scope, request_id: str, start: float
    ) -> audit.AuditRecord | None:
        """A new record for an API request while the audit log is on; else None."""
        if not self.audit_log.enabled or scope["path"] not in audit.AUDITED_PATHS:
            return None
        client = scope.get("client")
        host = client[0] if client else None
        return audit.AuditRecord(request_id, scope["path"], host, start, time.time())

    def _write_audit(self, record: audit.AuditRecord, status: int, elapsed: float) -> None:
        """The line of a finished request: a client gone mid-stream is a 499 after its 200; a
        failure no handler answered is the 500 uvicorn sends."""
        record.status = status
        if record.status == 500 and record.error_type is None:
            record.error_type = "internal_error"
        record.latency_ms = round(elapsed * 1000, 2)
        self.audit_log.write(record)
