"""Request tracing: continue the client's W3C trace, export our spans over OTLP, pass it on.

One ``Tracing`` per app, built by ``Tracing.build`` in the factory and shut down in the
lifespan; the global tracer provider is never set, so tests and workers stay independent.
Without ``OTEL_EXPORTER_OTLP_ENDPOINT`` no span is recorded, but the client's ``traceparent``
is still made current, so ``outgoing_headers`` forwards it and vLLM joins the client's trace.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Literal

from opentelemetry import context as context_api
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import Span, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

from common.constants import OTLP_GRPC
from microservice.settings import MicroserviceSettings

AsgiHeaders = Sequence[tuple[bytes, bytes]]
SpanKindName = Literal["internal", "client"]

TRACEPARENT = b"traceparent"
TRACESTATE = b"tracestate"
TRACE_HEADERS = frozenset({TRACEPARENT, TRACESTATE})
TRACES_PATH = "/v1/traces"
TRACER_NAME = "microservice"
SPAN_KINDS = {"internal": SpanKind.INTERNAL, "client": SpanKind.CLIENT}
# Stateless and thread-safe; one is enough for every app.
PROPAGATOR = TraceContextTextMapPropagator()


def client_context(headers: AsgiHeaders) -> Context:
    """The client's trace context; an empty one (a new trace) when absent or malformed."""
    carrier: dict[str, list[str]] = {}
    for name, value in headers:  # one pass over ASGI's lower-case (name, value) pairs
        if name in TRACE_HEADERS:
            carrier.setdefault(name.decode("latin-1"), []).append(value.decode("latin-1"))
    if "traceparent" not in carrier:
        return Context()  # the common case skips the propagator's parsing
    return PROPAGATOR.extract(carrier, context=Context())


def otlp_exporter(settings: MicroserviceSettings) -> SpanExporter:
    """The OTLP exporter for the configured protocol; only the chosen one is imported."""
    endpoint = (settings.otel_exporter_otlp_endpoint or "").strip()
    if settings.otel_exporter_otlp_protocol == OTLP_GRPC:
        # The scheme decides TLS (http:// plain, https:// TLS); without one the exporter
        # follows OTEL_EXPORTER_OTLP_INSECURE, as the OpenTelemetry spec says.
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcSpanExporter,
        )

        return GrpcSpanExporter(endpoint=endpoint)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HttpSpanExporter,
    )

    # The setting is the base URL (as OTEL_EXPORTER_OTLP_ENDPOINT); the signal path is ours.
    base = endpoint.rstrip("/")
    return HttpSpanExporter(endpoint=base if base.endswith(TRACES_PATH) else base + TRACES_PATH)


class Tracing:
    """The app's tracer: SDK spans exported over OTLP, or only the client's context carried."""

    def __init__(self, provider: TracerProvider | None = None) -> None:
        self._provider = provider
        self._tracer = provider.get_tracer(TRACER_NAME) if provider is not None else None

    @classmethod
    def build(cls, settings: MicroserviceSettings) -> Tracing:
        """An exporting tracer when an OTLP endpoint is set, else one that records nothing."""
        if not (settings.otel_exporter_otlp_endpoint or "").strip():
            return cls()
        resource = Resource.create({SERVICE_NAME: settings.otel_service_name})
        # No atexit hook: the app's lifespan calls shutdown(), and the provider stays private.
        provider = TracerProvider(resource=resource, shutdown_on_exit=False)
        provider.add_span_processor(BatchSpanProcessor(otlp_exporter(settings)))
        return cls(provider)

    @property
    def exporting(self) -> bool:
        return self._tracer is not None

    @contextmanager
    def request_span(self, name: str, headers: AsgiHeaders) -> Iterator[Span]:
        """A SERVER span continuing the client's ``traceparent``, current for the request.

        Without an exporter the client's (non-recording) span is made current instead, so
        the model-server call still carries the client's trace id."""
        parent = client_context(headers)
        if self._tracer is None:
            token = context_api.attach(parent)
            try:
                yield trace.get_current_span(parent)
            finally:
                context_api.detach(token)
            return
        with self._tracer.start_as_current_span(name, context=parent, kind=SpanKind.SERVER) as span:
            yield span

    @contextmanager
    def span(
        self, name: str, span_kind: SpanKindName = "internal", **attributes: AttributeValue
    ) -> Iterator[Span]:
        """A child of the current span (``queue wait``, ``model server call``, a client span)."""
        if self._tracer is None:
            yield trace.get_current_span()  # nothing to record: skip the context switch
            return
        with self._tracer.start_as_current_span(
            name, kind=SPAN_KINDS[span_kind], attributes=attributes
        ) as span:
            yield span

    def client_span(self, name: str, **attributes: AttributeValue) -> tuple[Span, dict[str, str]]:
        """A CLIENT child of the current span that is NOT made current, and the headers that
        carry it to vLLM; the caller ends it. For a call that outlives the task switches of a
        streamed answer, where a current span could not be detached in the right context."""
        if self._tracer is None:
            return trace.get_current_span(), self.outgoing_headers()
        span = self._tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attributes)
        return span, _headers(span)

    def event(self, name: str, **attributes: AttributeValue) -> None:
        """An event (``first token``) on the current span; a no-op when nothing records."""
        span = trace.get_current_span()
        if span.is_recording():
            span.add_event(name, attributes)

    def outgoing_headers(self) -> dict[str, str]:
        """``traceparent`` (and ``tracestate``) of the current span, for the call to vLLM;
        empty when there is no trace at all."""
        return _headers(trace.get_current_span())

    def shutdown(self) -> None:
        """Export what is still queued and stop the exporter (blocks; bounded by the SDK)."""
        if self._provider is not None:
            self._provider.shutdown()


def _headers(span: Span) -> dict[str, str]:
    """What TraceContextTextMapPropagator.inject writes for ``span``, without its setter
    indirection; empty for no trace at all."""
    span_context = span.get_span_context()
    if not span_context.is_valid:
        return {}
    headers = {
        "traceparent": f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}"
        f"-{span_context.trace_flags:02x}"
    }
    if span_context.trace_state:
        headers["tracestate"] = span_context.trace_state.to_header()
    return headers
