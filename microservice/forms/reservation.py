"""The tokens a request reserves against its key's limits: at most what it can use, prompt and
completion, reckoned from vLLM's request body before it is sent, without asking vLLM.

- The prompt is bounded by its UTF-8 bytes: a byte-level BPE (and a SentencePiece model with
  byte fallback) never makes a token of less than one byte of the text, so a text's tokens are
  at most its bytes. The chat template adds tokens the body does not hold: ``MESSAGE_TOKENS``
  per message (role markers, separators) and ``TEMPLATE_TOKENS`` once (BOS, the generation
  prompt, a default system text); tools, documents and template arguments are counted by their
  JSON bytes. A prompt is never over the context length (vLLM refuses it), so that is a bound
  too, and the only one for content this cannot read (images, audio).
- The completion is bounded by ``max_tokens`` (or ``max_completion_tokens``), per choice
  (``n``). Without either, vLLM generates up to the context, so one choice reserves the whole
  context length (prompt and completion together never exceed it).
- With the context length unknown (no replica has answered yet; the request will most likely
  fail and be refunded) and no ``max_tokens``, ``UNKNOWN_CONTEXT_TOKENS`` stands for it: then,
  alone, the reservation is not a bound.

docs/production-api.md compares this with vLLM's ``/tokenize`` on the test model.
"""

from __future__ import annotations

from typing import Any

import orjson

from microservice import paths
from microservice.forms.scoring import scored_pairs
from microservice.upstream.model_call import ModelCall

MESSAGE_TOKENS = 8  # a chat template's tokens around one message
TEMPLATE_TOKENS = 64  # a chat template's tokens once per prompt
PROMPT_TOKENS = 4  # the special tokens around a prompt or a scored pair (BOS, EOS, SEP)
UNKNOWN_CONTEXT_TOKENS = 8192
# Chat fields the template renders into the prompt, counted by their JSON bytes.
RENDERED = ("tools", "documents", "chat_template_kwargs", "chat_template")
MESSAGE_TEXT = ("content", "reasoning_content")


def _json_bytes(value: Any) -> int:
    return len(orjson.dumps(value))


def _message_bytes(message: Any) -> int | None:
    """The bytes a message adds to the prompt; None when it has parts that are not text."""
    if not isinstance(message, dict):
        return _json_bytes(message)
    size = 0
    for field, value in message.items():
        if field == "role" or value is None:
            continue
        if field in MESSAGE_TEXT and isinstance(value, str):
            size += len(value.encode("utf-8"))
        elif field == "content" and isinstance(value, list):
            for part in value:
                if not isinstance(part, dict) or part.get("type", "text") != "text":
                    return None
                size += len(str(part.get("text", "")).encode("utf-8"))
        else:  # tool_calls, name, tool_call_id...: as JSON, which templates render about so
            size += _json_bytes(value)
    return size


def chat_prompt_bound(body: dict[str, Any]) -> int | None:
    """At most the chat prompt's tokens; None when it holds content this cannot measure."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        return None
    total = TEMPLATE_TOKENS
    for message in messages:
        size = _message_bytes(message)
        if size is None:
            return None
        total += size + MESSAGE_TOKENS
    return total + sum(_json_bytes(body[field]) for field in RENDERED if field in body)


def _prompt_bound(prompt: Any) -> int | None:
    """At most the tokens of one completion or embedding prompt (text or token ids)."""
    if isinstance(prompt, str):
        return len(prompt.encode("utf-8")) + PROMPT_TOKENS
    if isinstance(prompt, list) and all(isinstance(t, int) for t in prompt):
        return len(prompt) + PROMPT_TOKENS
    return None


def _pair_bound(first: Any, second: Any) -> int | None:
    """At most the tokens of a scored pair: both texts, with the tokens around and between."""
    if not isinstance(first, str) or not isinstance(second, str):
        return None
    return len(first.encode("utf-8")) + len(second.encode("utf-8")) + PROMPT_TOKENS


def prompt_bounds(call: ModelCall) -> list[int | None]:
    """One bound per prompt the request holds (a completions or embeddings batch holds several,
    a rerank or score request one per pair; None: not measurable)."""
    body = call.body
    if call.path == paths.CHAT:
        return [chat_prompt_bound(body)]
    if call.path == paths.RESPONSES:  # one conversation: its text, or its items as JSON
        value, instructions = body.get("input"), body.get("instructions")
        size = _json_bytes(value) if isinstance(value, list) else _prompt_bound(value)
        extra = _json_bytes(instructions) if instructions else 0
        return [None if size is None else size + extra + TEMPLATE_TOKENS]
    if call.path in (paths.RERANK, paths.SCORE):  # a cross-encoder reads each pair as one prompt
        return [_pair_bound(first, second) for first, second in scored_pairs(body)]
    value = body.get("prompt" if call.path == paths.COMPLETIONS else "input")
    if isinstance(value, list) and value and not all(isinstance(t, int) for t in value):
        return [_prompt_bound(item) for item in value]
    return [_prompt_bound(value)]


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def reserved_tokens(call: ModelCall, max_model_len: int | None) -> int:
    """The tokens ``call`` reserves (see the module's rules)."""
    body = call.body
    generates = call.path not in (paths.EMBEDDINGS, paths.RERANK, paths.SCORE)
    # vLLM takes max_completion_tokens over max_tokens when both are sent.
    asked = (
        _int(body.get("max_completion_tokens"))
        or _int(body.get("max_tokens"))
        or _int(body.get("max_output_tokens"))
    )
    choices = (_int(body.get("n")) or 1) if generates else 1
    total = 0
    for bound in prompt_bounds(call):
        if max_model_len is None:
            prompt = UNKNOWN_CONTEXT_TOKENS if bound is None else bound
            completion = (asked or UNKNOWN_CONTEXT_TOKENS) if generates else 0
            total += prompt + choices * completion
            continue
        prompt = max_model_len if bound is None else min(bound, max_model_len)
        completion = min(asked or max_model_len, max_model_len) if generates else 0
        # A prompt and its first choice fit the context together; the other choices add theirs.
        total += min(prompt + completion, max_model_len) + (choices - 1) * completion
    return total
