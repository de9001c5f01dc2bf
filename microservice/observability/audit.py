"""The audit record of one API request: who called (the key's name), which model and replicas
served it, how it ended, what it used; written as one JSON line when the answer is finished
(``audit_log``).

The request context opens the record and holds it in a context variable; the code that learns
a fact sets it through the functions below, which do nothing outside an audited request. Tasks
copy context variables, and the record is one mutable object shared by reference, so what a
task sets reaches the line. Socket callbacks (a pushed stream) run in another context: nothing
here is called from them. Never the prompt or answer text, the key, or a header: only what the
record's fields name.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Protocol, TypeVar

import orjson

from microservice import paths

# The API routes: each request to one of them writes one line (health and /metrics do not).
AUDITED_PATHS = frozenset({*paths.MODEL_PATHS, paths.MODELS})


class TokenCount(Protocol):
    @property
    def prompt_tokens(self) -> int: ...

    @property
    def completion_tokens(self) -> int: ...


UsageT = TypeVar("UsageT", bound=TokenCount)


@dataclass(slots=True)
class AuditRecord:
    """What one request's line says; ``start`` (``time.perf_counter``) and ``arrived``
    (``time.time``) are when it arrived."""

    request_id: str
    path: str
    client: str | None
    start: float
    arrived: float
    key: str | None = None
    model: str | None = None  # the catalog name of the model that answered
    requested_model: str | None = None  # what the client named, when it is another
    fallback_from: str | None = None  # the model this request fell back from
    replicas: list[str] = field(default_factory=list)  # those that answered, in order
    form: str | None = None
    stream: bool = False
    status: int = 0
    error_type: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    ttft_ms: float | None = None
    latency_ms: float | None = None
    resumes: int = 0

    def line(self) -> bytes:
        """The JSON line, without its newline."""
        millis = int(self.arrived * 1000) % 1000
        requested = self.requested_model if self.requested_model != self.model else None
        event: dict[str, Any] = {
            "log": "audit",
            "ts": f"{_second(int(self.arrived))}.{millis:03d}Z",
            "request_id": self.request_id,
            "path": self.path,
            "key": self.key,
            "model": self.model,
            "requested_model": requested,
            "fallback_from": self.fallback_from,
            "replicas": self.replicas,
            "form": self.form,
            "stream": self.stream,
            "status": self.status,
            "error_type": self.error_type,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "ttft_ms": self.ttft_ms,
            "latency_ms": self.latency_ms,
            "resumes": self.resumes,
            "client": self.client,
        }
        return orjson.dumps(event)

    def resumed(self, replica_url: str | None) -> None:
        """The stream went on from ``replica_url`` (None: nothing was left to ask for)."""
        self.resumes += 1
        if replica_url is not None:
            self.replicas.append(replica_url)


@lru_cache(maxsize=4)
def _second(second: int) -> str:
    """The UTC time of ``second``, formatted once a second rather than once a line."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))


_record: ContextVar[AuditRecord | None] = ContextVar("audit_record", default=None)


def open_record(record: AuditRecord) -> Callable[[], None]:
    """Make ``record`` the current request's; returns what closes it."""
    token = _record.set(record)
    return lambda: _record.reset(token)


def current() -> AuditRecord | None:
    return _record.get()


def caller(key_name: str | None) -> None:
    """The name of the API key the request came with (None: keys are off)."""
    record = _record.get()
    if record is not None:
        record.key = key_name


def asked(requested_model: str | None, form: str) -> None:
    """What the request asked for: the model it named, and its form (``AnswerShape.form``)."""
    record = _record.get()
    if record is not None:
        record.requested_model, record.form = requested_model, form


def answering(model: str, form: str, *, stream: bool) -> None:
    """The model (catalog name) that answers, and how."""
    record = _record.get()
    if record is not None:
        record.model, record.form, record.stream = model, form, stream


def fallback(from_model: str) -> None:
    """The request fell back from ``from_model`` to the model ``answering`` names; for the
    fallback between models."""
    record = _record.get()
    if record is not None:
        record.fallback_from = from_model


def served_by(replica_url: str) -> None:
    """A replica's answer (or its stream) reached the client."""
    record = _record.get()
    if record is not None:
        record.replicas.append(replica_url)


def first_byte() -> None:
    """The answer's first event (a stream) or the whole answer is ready: the TTFT."""
    record = _record.get()
    if record is not None:
        record.ttft_ms = round((time.perf_counter() - record.start) * 1000, 2)


def failed(error_type: str) -> None:
    """The error ``type`` of the answer, or of the event a stream ended with."""
    record = _record.get()
    if record is not None:
        record.error_type = error_type


def counting(hook: Callable[[UsageT], None]) -> Callable[[UsageT], None]:
    """``hook`` that also keeps the usage in the current request's record (taken now: the
    hook may run after the request's context is gone)."""
    record = _record.get()
    if record is None:
        return hook

    def count(usage: UsageT) -> None:
        hook(usage)
        record.prompt_tokens = usage.prompt_tokens
        record.completion_tokens = usage.completion_tokens

    return count
