"""A request's prompt as the routing policies see it: the text the model server will prefill,
in its order (system, history, documents, question), without the chat template.

The rendering only has to be stable and prefix-preserving: a conversation's next turn renders
to the text of the previous turns plus more, so both share their leading blocks, as they share
their leading KV blocks in vLLM.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def _content(content: Any) -> str:
    """A message's content: a string, or OpenAI content parts (text, and the images' URLs,
    so that two prompts with different images never look alike)."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return "" if content is None else str(content)
    parts = []
    for part in content:
        if not isinstance(part, dict):
            continue
        if "text" in part:
            parts.append(str(part["text"]))
        elif isinstance(part.get("image_url"), dict):
            parts.append(str(part["image_url"].get("url", "")))
    return "".join(parts)


def _pieces(body: dict[str, Any]) -> Iterator[str]:
    messages = body.get("messages")
    if isinstance(messages, list):
        for message in messages:
            if isinstance(message, dict):
                yield f"{message.get('role')}:{_content(message.get('content'))}\n"
        return
    for field in ("prompt", "input"):  # completions, embeddings
        value = body.get(field)
        if isinstance(value, str):
            yield value
            return
        if isinstance(value, list) and value:  # a batch: its first prompt leads the request
            first = value[0]
            if isinstance(first, str):
                yield first
            else:  # token ids, or a batch of token-id lists
                yield " ".join(map(str, first if isinstance(first, list) else value))
            return


def prompt_text(body: dict[str, Any], limit: int | None = None) -> str:
    """The prompt's text; with ``limit``, at least its first ``limit`` characters (rendering
    stops once that many are known)."""
    if limit is None:
        return "".join(_pieces(body))
    pieces, size = [], 0
    for piece in _pieces(body):
        pieces.append(piece)
        size += len(piece)
        if size >= limit:
            break
    return "".join(pieces)
