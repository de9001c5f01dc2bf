"""A resumed stream's chunks, rewritten as if the first replica had gone on: the stream's own
``id`` and ``created``, no second role chunk, and usage that counts the whole answer (the tokens
sent before the cut are the answer's completion, and the prompt is the request's own).

Only a resumed stream pays for this parse; every other stream passes vLLM's bytes as they are.
"""

from __future__ import annotations

from typing import Any

import orjson

from microservice.relay.partial_answer import PartialAnswer
from microservice.relay.push import BatchConsumer


def _role_only(choices: Any) -> bool:
    """vLLM's first chat chunk: the role and no text; the client has seen one already."""
    if not isinstance(choices, list) or len(choices) != 1 or not isinstance(choices[0], dict):
        return False
    choice = choices[0]
    delta = choice.get("delta")
    if not isinstance(delta, dict) or "role" not in delta or choice.get("finish_reason"):
        return False
    return not any(value for key, value in delta.items() if key != "role")


class ContinuedChunks:
    def __init__(
        self, partial: PartialAnswer, sent_tokens: int, prompt_tokens: int | None, *, chat: bool
    ) -> None:
        self._partial = partial
        self._sent = sent_tokens
        self._prompt = prompt_tokens  # the request's own, where a replica counted it
        self._chat = chat

    def chunk(self, chunk: bytes) -> bytes | None:
        """The chunk as the client's stream goes on, or None to drop it."""
        try:
            parsed = orjson.loads(chunk)
        except orjson.JSONDecodeError:
            return chunk
        if not isinstance(parsed, dict):
            return chunk
        if self._chat and _role_only(parsed.get("choices")):
            return None
        if self._partial.id is not None:
            parsed["id"] = self._partial.id
        if self._partial.created is not None:
            parsed["created"] = self._partial.created
        usage = parsed.get("usage")
        if isinstance(usage, dict) and self._sent:
            prompt = self._prompt
            if prompt is None:  # the continued prompt holds the text sent, about as many tokens
                prompt = int(usage.get("prompt_tokens") or 0) - self._sent
            completion = int(usage.get("completion_tokens") or 0) + self._sent
            usage.update(
                prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
            )
        return orjson.dumps(parsed)

    def batch(self, batch: list[bytes]) -> list[bytes]:
        rewritten = (self.chunk(chunk) for chunk in batch)
        return [chunk for chunk in rewritten if chunk is not None]

    def consumer(self, then: BatchConsumer) -> BatchConsumer:
        """For a pushed continuation: each batch rewritten before ``then`` takes it."""
        rewrite = self.batch

        def consume(batch: list[bytes]) -> None:
            rewritten = rewrite(batch)
            if rewritten:
                then(rewritten)

        return consume


def closing_usage_chunk(
    partial: PartialAnswer, prompt_tokens: int, sent_tokens: int, *, chat: bool, model: str
) -> bytes:
    """The final usage chunk of an answer that was whole when its stream was cut (only the
    usage chunk was missing)."""
    chunk: dict[str, object] = {
        "id": partial.id,
        "object": "chat.completion.chunk" if chat else "text_completion",
        "created": partial.created,
        "model": model,
        "choices": [],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": sent_tokens,
            "total_tokens": prompt_tokens + sent_tokens,
        },
    }
    return orjson.dumps(chunk)
