"""What a cut stream had said, read from the chunks relayed before the cut, and the request
that continues it on another replica.

The chunks are kept as they passed (one list extend per batch) and parsed only here, once a stream
needs resuming. A chat answer continues as the partial assistant message
(``continue_final_message``), a completion as its prompt followed by the partial text; either
asks only for the tokens still owed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

BUDGETS = ("max_tokens", "max_completion_tokens")


@dataclass(frozen=True, slots=True)
class PartialAnswer:
    """The first choice's text so far, and the ids the client already saw."""

    id: str | None
    created: int | None
    text: str
    finished: bool  # its finish_reason came: only the usage chunk was missing
    tokens: int  # tokens sent: vLLM streams one chunk per token generated (the role chunk aside)
    unresumable: str | None  # why it cannot be continued faithfully, or None


def _request_unresumable(body: dict[str, Any], chat: bool) -> str | None:
    n = body.get("n")
    if isinstance(n, int) and n > 1:
        return "several choices (n > 1)"
    if chat:
        return None
    if body.get("echo"):
        return "a completion that echoes its prompt"
    if not isinstance(body.get("prompt"), str):
        return "a prompt of token ids or several prompts"
    return None


def _delta_unresumable(delta: dict[str, Any]) -> str | None:
    if delta.get("tool_calls"):
        return "a tool call"
    if delta.get("reasoning_content") or delta.get("reasoning"):
        return "reasoning text"
    return None


def read_partial(body: dict[str, Any], chunks: list[bytes], *, chat: bool) -> PartialAnswer:
    """The answer so far, from the relayed chunks of the request ``body``."""
    ids: tuple[str | None, int | None] = (None, None)
    parts: list[str] = []
    finished = False
    counted = 0
    unresumable = _request_unresumable(body, chat)
    for chunk in chunks:
        try:
            parsed = orjson.loads(chunk)
        except orjson.JSONDecodeError:
            continue
        if not isinstance(parsed, dict):
            continue
        if ids[0] is None and isinstance(parsed.get("id"), str):
            ids = (parsed["id"], parsed.get("created"))
        for choice in parsed.get("choices") or ():
            if not isinstance(choice, dict):
                continue
            if choice.get("index", 0) != 0:
                unresumable = unresumable or "several choices (n > 1)"
                continue
            if chat:
                delta = choice.get("delta") or {}
                if not isinstance(delta, dict) or "role" in delta:
                    continue
                text = delta.get("content")
                unresumable = unresumable or _delta_unresumable(delta)
            else:
                text = choice.get("text")
            counted += 1
            if isinstance(text, str):
                parts.append(text)
            if choice.get("finish_reason"):
                finished = True
    return PartialAnswer(ids[0], ids[1], "".join(parts), finished, counted, unresumable)


def continuation_body(
    body: dict[str, Any], partial: PartialAnswer, *, chat: bool
) -> dict[str, Any]:
    """The request for the rest of the answer (token budgets not yet lowered: ``owing``).
    Nothing said yet: the request itself."""
    if not partial.text:
        return body
    continued = dict(body)
    if not chat:
        continued["prompt"] = body["prompt"] + partial.text
        return continued
    messages = list(body["messages"])
    last = messages[-1] if messages else None
    extends_last = (
        body.get("continue_final_message")
        and isinstance(last, dict)
        and last.get("role") == "assistant"
        and isinstance(last.get("content"), str)
    )
    if extends_last:
        assert isinstance(last, dict)
        messages[-1] = {**last, "content": last["content"] + partial.text}
    else:
        messages.append({"role": "assistant", "content": partial.text})
    continued["messages"] = messages
    continued["continue_final_message"] = True
    continued["add_generation_prompt"] = False
    return continued


def owing(body: dict[str, Any], sent_tokens: int) -> dict[str, Any]:
    """``body`` asking only for the tokens not yet sent (at least one)."""
    if sent_tokens <= 0:
        return body
    owed = dict(body)
    for budget in BUDGETS:
        if isinstance(body.get(budget), int):
            owed[budget] = max(1, body[budget] - sent_tokens)
    if isinstance(body.get("min_tokens"), int):
        owed["min_tokens"] = max(0, body["min_tokens"] - sent_tokens)
    return owed
