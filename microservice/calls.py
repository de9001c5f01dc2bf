"""What travels between the routes and the connectors: one request type, one answer type,
and the one reader of token usage.

Every route (chat in either form, completions, embeddings) builds a ``ModelCall`` for one of
vLLM's OpenAI paths; the connectors take it and return a ``Completion`` (one JSON body) or a
stream of chunk JSON bytes. Streams always ask vLLM for a final usage chunk (``choices: []``
plus ``usage``); ``final_usage`` recognises it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

# Every chunk that carries usage has this key; most chunks do not, so most skip the parse.
USAGE_KEY = b'"usage"'


@dataclass(frozen=True, slots=True)
class RequestIds:
    """The request's own id (X-Request-Id) and the client's session (X-Session-Id)."""

    request_id: str
    session_id: str | None = None


CHAT_PATH = "/v1/chat/completions"
COMPLETIONS_PATH = "/v1/completions"
EMBEDDINGS_PATH = "/v1/embeddings"


@dataclass(frozen=True, slots=True)
class ModelCall:
    """A request for one of vLLM's OpenAI paths: its JSON body (``model`` set to the served
    one, and for streams ``stream_options.include_usage``), our request id, the client's
    session id, and the trace context to send on (``traceparent``, set per try on a replica
    by the dispatcher)."""

    body: dict[str, Any]
    request_id: str
    session_id: str | None = None  # X-Session-Id, for `session` routing
    path: str = CHAT_PATH
    trace_headers: dict[str, str] | None = None

    @property
    def stream(self) -> bool:
        return bool(self.body.get("stream"))


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


def usage_from(answer: dict[str, Any]) -> Usage | None:
    """The ``usage`` object of a parsed completion or chunk, if it has one."""
    usage = answer.get("usage")
    if not isinstance(usage, dict):
        return None
    return Usage(
        int(usage.get("prompt_tokens") or 0),
        int(usage.get("completion_tokens") or 0),
        int(usage.get("total_tokens") or 0),
    )


def final_usage(chunk: bytes) -> Usage | None:
    """The usage of the stream's final usage chunk, or None for any other chunk.

    With ``continuous_usage_stats`` every chunk carries the running usage too; only the final
    one (no choices) counts, so the totals are never added up twice."""
    if USAGE_KEY not in chunk:
        return None
    parsed = orjson.loads(chunk)
    if not isinstance(parsed, dict) or parsed.get("choices"):
        return None
    return usage_from(parsed)


@dataclass(frozen=True, slots=True)
class Completion:
    """A ``chat.completion``: the bytes to pass through and the parsed object."""

    raw: bytes
    body: dict[str, Any]

    @property
    def text(self) -> str:
        choices = self.body.get("choices") or [{}]
        return str((choices[0].get("message") or {}).get("content") or "")

    @property
    def usage(self) -> Usage:
        return usage_from(self.body) or Usage()
