"""The tokens an answer used, read where vLLM reports them: the ``usage`` object of a whole
answer, or the final usage chunk of a stream (``choices: []`` plus ``usage``), which every
stream asks vLLM for; in a Responses API stream, the response its last event carries."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

# Every chunk that carries usage has this key; most chunks do not, so most skip the parse.
USAGE_KEY = b'"usage"'
RESPONSE_END_TYPES = frozenset({"response.completed", "response.incomplete", "response.failed"})


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


def usage_from(answer: dict[str, Any]) -> Usage | None:
    """The ``usage`` object of a parsed completion or chunk, if it has one (a Responses API
    answer names its counts ``input_tokens`` and ``output_tokens``)."""
    usage = answer.get("usage")
    if not isinstance(usage, dict):
        return None
    return Usage(
        int(usage.get("prompt_tokens") or usage.get("input_tokens") or 0),
        int(usage.get("completion_tokens") or usage.get("output_tokens") or 0),
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
    if parsed.get("type") in RESPONSE_END_TYPES:  # the Responses API's last event
        response = parsed.get("response")
        return usage_from(response) if isinstance(response, dict) else None
    return usage_from(parsed)
