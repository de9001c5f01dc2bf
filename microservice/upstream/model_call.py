"""What travels between the routes and the model server: one request type, ``ModelCall``, for
any of vLLM's OpenAI paths, and one whole answer, ``Completion``; streams travel as batches of
chunk JSON bytes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from microservice import paths
from microservice.config.keys_file import PriorityClass
from microservice.relay.usage import Usage, usage_from


@dataclass(frozen=True, slots=True)
class RequestIds:
    """The request's own id (X-Request-Id) and the client's session (X-Session-Id)."""

    request_id: str
    session_id: str | None = None


@dataclass(frozen=True, slots=True)
class Tenant:
    """Whose request it is, for the waiting room: the API key's name (``""``: no keys, one
    tenant), its share of the replicas' slots, and the request's priority class."""

    name: str = ""
    weight: float = 1.0
    priority: PriorityClass = "interactive"


ANYONE = Tenant()


@dataclass(frozen=True, slots=True)
class Adapter:
    """The LoRA adapter a call asks for: its name in vLLM, and where a replica may load it from
    at run time (``""``: only replicas started with it serve it)."""

    name: str
    path: str = ""


@dataclass(frozen=True, slots=True)
class ModelCall:
    """A request for one of vLLM's OpenAI paths: its JSON body (``model`` set to the served
    one, and for streams ``stream_options.include_usage``), our request id, the client's
    session id, the trace context to send on (``traceparent``, set per try on a replica
    by the dispatcher), and whose request it is (the waiting room's order)."""

    body: dict[str, Any]
    request_id: str
    session_id: str | None = None  # X-Session-Id, for `session` routing
    path: str = paths.CHAT
    trace_headers: dict[str, str] | None = None
    tenant: Tenant = ANYONE
    adapter: Adapter | None = None  # routed to a replica that holds it, loaded there if need be

    @property
    def stream(self) -> bool:
        return bool(self.body.get("stream"))


@dataclass(frozen=True, slots=True)
class Completion:
    """A whole answer: the bytes to pass through and the parsed object."""

    raw: bytes
    body: dict[str, Any]

    @property
    def text(self) -> str:
        choices = self.body.get("choices") or [{}]
        return str((choices[0].get("message") or {}).get("content") or "")

    @property
    def usage(self) -> Usage:
        return usage_from(self.body) or Usage()
