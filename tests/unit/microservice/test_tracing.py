"""Tracing: the client's trace is continued, exported over real OTLP/HTTP, and sent on to vLLM.

Exports go through the SDK's own exporter to ``tests.otlp_receiver``, an in-process OTLP/HTTP
collector stand-in on a free port; ``shutdown()`` flushes them.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcSpanExporter,
)

from microservice.observability.tracing import Tracing, otlp_exporter
from microservice.settings import MicroserviceSettings
from tests.otlp_receiver import OtlpReceiver, ReceivedSpan

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{CLIENT_SPAN_ID}-01"
REQUEST = "POST /v1/chat/completions"
SERVER, CLIENT = 2, 3  # OTLP span kinds


@pytest.fixture(autouse=True)
def no_otel_env(clean_env: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """The developer's OTEL_* variables (sampler, headers, SDK off) would change the results."""
    for name in list(os.environ):
        if name.upper().startswith("OTEL_"):
            clean_env.delenv(name, raising=False)
    return clean_env


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as running:
        yield running


def settings(endpoint: str | None = None, **extra: str) -> MicroserviceSettings:
    return MicroserviceSettings(otel_exporter_otlp_endpoint=endpoint, **extra)  # type: ignore[arg-type]


def headers(traceparent: str | None = TRACEPARENT, tracestate: str | None = None):
    pairs = [(b"host", b"usvc"), (b"content-type", b"application/json")]
    if traceparent is not None:
        pairs.append((b"traceparent", traceparent.encode()))
    if tracestate is not None:
        pairs.append((b"tracestate", tracestate.encode()))
    return pairs


def one_request(tracing: Tracing, incoming) -> dict[str, str]:
    """What the app does for one request; returns the headers sent to vLLM."""
    with tracing.request_span(REQUEST, incoming):
        with tracing.span("queue wait"):
            pass
        with tracing.span(
            "model server call", span_kind="client", replica_url="http://vllm-0:8008", model="tiny"
        ):
            sent = tracing.outgoing_headers()
            tracing.event("first token", tokens=1)
    return sent


def of_trace(trace_id: str):
    return lambda spans: (
        {s.name for s in spans if s.trace_id == trace_id}
        >= {
            REQUEST,
            "queue wait",
            "model server call",
        }
    )


def by_name(spans: list[ReceivedSpan], trace_id: str) -> dict[str, ReceivedSpan]:
    return {span.name: span for span in spans if span.trace_id == trace_id}


@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_exported_spans_continue_the_clients_trace(
    receiver: OtlpReceiver, no_otel_env: pytest.MonkeyPatch, compression: str
) -> None:
    no_otel_env.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", compression)
    trace_id = TRACE_ID[:-4] + ("0001" if compression == "none" else "0002")
    tracing = Tracing.build(settings(receiver.endpoint, otel_service_name="usvc-test"))
    assert tracing.exporting
    sent = one_request(tracing, headers(f"00-{trace_id}-{CLIENT_SPAN_ID}-01", "vendor=abc"))
    tracing.shutdown()

    spans = by_name(receiver.wait_for(of_trace(trace_id)), trace_id)
    request, queue, call = spans[REQUEST], spans["queue wait"], spans["model server call"]
    assert (request.parent_span_id, request.kind) == (CLIENT_SPAN_ID, SERVER)
    assert queue.parent_span_id == request.span_id
    assert call.parent_span_id == request.span_id and call.kind == CLIENT
    assert call.attributes == {"replica_url": "http://vllm-0:8008", "model": "tiny"}
    assert call.events == [("first token", {"tokens": 1})]
    assert {span.service_name for span in spans.values()} == {"usvc-test"}
    # vLLM's spans will hang under our model-server call, in the client's trace.
    assert sent == {"traceparent": f"00-{trace_id}-{call.span_id}-01", "tracestate": "vendor=abc"}


def test_full_traces_url_is_accepted_and_no_traceparent_starts_a_trace(
    receiver: OtlpReceiver,
) -> None:
    tracing = Tracing.build(settings(receiver.endpoint + "/v1/traces/"))
    sent = one_request(tracing, headers(traceparent=None))
    tracing.shutdown()

    trace_id = sent["traceparent"].split("-")[1]
    assert trace_id != TRACE_ID
    request = by_name(receiver.wait_for(of_trace(trace_id)), trace_id)[REQUEST]
    assert request.parent_span_id == ""


def test_without_exporter_the_clients_trace_still_reaches_vllm() -> None:
    tracing = Tracing.build(settings())
    assert not tracing.exporting
    sent = one_request(tracing, headers(tracestate="vendor=abc"))
    # Nothing of ours is recorded, so vLLM's parent is the client's own span.
    assert sent == {"traceparent": TRACEPARENT, "tracestate": "vendor=abc"}
    assert not trace.get_current_span().get_span_context().is_valid  # the context was reset
    tracing.shutdown()


def test_without_exporter_or_traceparent_nothing_is_sent() -> None:
    tracing = Tracing.build(settings())
    assert one_request(tracing, headers(traceparent=None)) == {}
    assert tracing.outgoing_headers() == {}


MALFORMED = [
    "garbage",
    "",
    f"00-{'0' * 32}-{CLIENT_SPAN_ID}-01",  # all-zero trace id
    f"00-{TRACE_ID}-{'0' * 16}-01",  # all-zero span id
    f"ff-{TRACE_ID}-{CLIENT_SPAN_ID}-01",  # version ff is forbidden
    f"00-{TRACE_ID[:-1]}x-{CLIENT_SPAN_ID}-01",
    f"00-{TRACE_ID}-{CLIENT_SPAN_ID}-01-extra",  # extra fields only from version 01 on
    TRACEPARENT + "0" * 600,  # over the length limit
]


@pytest.mark.parametrize("traceparent", MALFORMED)
def test_malformed_traceparent_is_ignored(traceparent: str) -> None:
    assert one_request(Tracing.build(settings()), headers(traceparent)) == {}


@pytest.mark.parametrize("traceparent", MALFORMED)
def test_malformed_traceparent_starts_a_new_trace(receiver: OtlpReceiver, traceparent: str) -> None:
    tracing = Tracing.build(settings(receiver.endpoint))
    with tracing.request_span(REQUEST, headers(traceparent, "vendor=abc")) as span:
        context = span.get_span_context()
        assert context.is_valid and f"{context.trace_id:032x}" != TRACE_ID
        assert span.parent is None  # type: ignore[attr-defined]  # an SDK span
    tracing.shutdown()


def test_unsampled_client_trace_is_forwarded_not_recorded(receiver: OtlpReceiver) -> None:
    tracing = Tracing.build(settings(receiver.endpoint))
    trace_id = TRACE_ID[:-4] + "0003"
    sent = one_request(tracing, headers(f"00-{trace_id}-{CLIENT_SPAN_ID}-00"))
    tracing.shutdown()
    assert sent["traceparent"].startswith(f"00-{trace_id}-") and sent["traceparent"].endswith("-00")
    assert all(span.trace_id != trace_id for span in receiver.received())


def test_grpc_protocol_builds_the_grpc_exporter() -> None:
    exporter = otlp_exporter(settings("http://127.0.0.1:4317", otel_exporter_otlp_protocol="grpc"))
    assert isinstance(exporter, GrpcSpanExporter)
    exporter.shutdown()


async def test_concurrent_requests_keep_their_own_trace() -> None:
    """Each asyncio task has its own context: one request's trace never leaks into another's."""
    tracing = Tracing.build(settings())

    async def request(trace_id: str) -> dict[str, str]:
        with tracing.request_span(REQUEST, headers(f"00-{trace_id}-{CLIENT_SPAN_ID}-01")):
            await asyncio.sleep(0.01)
            with tracing.span("model server call", span_kind="client"):
                await asyncio.sleep(0)
                return tracing.outgoing_headers()

    ids = [TRACE_ID[:-4] + f"{n:04x}" for n in range(10, 20)]
    sent = await asyncio.gather(*(request(trace_id) for trace_id in ids))
    assert [headers["traceparent"].split("-")[1] for headers in sent] == ids
