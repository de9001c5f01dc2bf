"""The tokens a request reserves, from vLLM's body: an upper bound of what it can use, cheap to
compute (no call to vLLM). Compared with vLLM's /tokenize on the test model in
docs/production-api.md."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from microservice import paths
from microservice.forms import parse
from microservice.forms.reservation import (
    MESSAGE_TOKENS,
    PROMPT_TOKENS,
    TEMPLATE_TOKENS,
    UNKNOWN_CONTEXT_TOKENS,
    reserved_tokens,
)
from microservice.upstream.model_call import ModelCall, RequestIds

CONTEXT = 4096
IDS = RequestIds("r")


def chat(body: dict[str, Any]) -> ModelCall:
    return ModelCall(body, "r", path=paths.CHAT)


def user(text: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}]}


def test_chat_prompt_bytes_plus_template_plus_max_tokens() -> None:
    text = "héllo wörld"  # 13 UTF-8 bytes
    expected_prompt = TEMPLATE_TOKENS + MESSAGE_TOKENS + 13
    assert reserved_tokens(chat({**user(text), "max_tokens": 100}), CONTEXT) == (
        expected_prompt + 100
    )
    both = {**user(text), "max_tokens": 100, "max_completion_tokens": 40}
    assert reserved_tokens(chat(both), CONTEXT) == expected_prompt + 40  # vLLM takes this one
    assert reserved_tokens(chat({**user(text), "max_tokens": 100, "n": 3}), CONTEXT) == (
        expected_prompt + 3 * 100
    )


def test_without_max_tokens_one_choice_reserves_the_context() -> None:
    assert reserved_tokens(chat(user("hi")), CONTEXT) == CONTEXT
    assert reserved_tokens(chat({**user("hi"), "n": 2}), CONTEXT) == 2 * CONTEXT
    unknown = reserved_tokens(chat(user("hi")), None)
    assert unknown == TEMPLATE_TOKENS + MESSAGE_TOKENS + 2 + UNKNOWN_CONTEXT_TOKENS


def test_the_context_bounds_prompt_and_first_choice_together() -> None:
    long = chat({**user("x" * 10_000), "max_tokens": 50})
    assert reserved_tokens(long, CONTEXT) == CONTEXT


def test_content_that_cannot_be_measured_reserves_the_context_for_its_prompt() -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    body = {"messages": [{"role": "user", "content": [image]}], "max_tokens": 10}
    assert reserved_tokens(chat(body), CONTEXT) == CONTEXT
    assert reserved_tokens(chat(body), 100_000) == 100_000  # an image may fill the context


def test_text_parts_tools_and_tool_calls_count_by_their_bytes() -> None:
    parts = [{"type": "text", "text": "abc"}, {"type": "text", "text": "de"}]
    tools = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    body = {
        "messages": [
            {"role": "user", "content": parts},
            {"role": "assistant", "content": None, "tool_calls": [call]},
        ],
        "tools": tools,
        "max_tokens": 1,
    }
    prompt = TEMPLATE_TOKENS + 2 * MESSAGE_TOKENS + 5
    prompt += len(orjson.dumps([call])) + len(orjson.dumps(tools))
    assert reserved_tokens(chat(body), CONTEXT) == prompt + 1


def test_completions_per_prompt_and_token_ids_exactly() -> None:
    one = ModelCall({"prompt": "abcd", "max_tokens": 10}, "r", path=paths.COMPLETIONS)
    assert reserved_tokens(one, CONTEXT) == 4 + PROMPT_TOKENS + 10
    batch = ModelCall(
        {"prompt": ["ab", [1, 2, 3]], "max_tokens": 10, "n": 2}, "r", path=paths.COMPLETIONS
    )
    assert reserved_tokens(batch, CONTEXT) == (2 + PROMPT_TOKENS + 20) + (3 + PROMPT_TOKENS + 20)
    ids = ModelCall({"prompt": [5] * 7, "max_tokens": 1}, "r", path=paths.COMPLETIONS)
    assert reserved_tokens(ids, CONTEXT) == 7 + PROMPT_TOKENS + 1


def test_embeddings_reserve_their_input_only() -> None:
    call = ModelCall({"input": ["ab", "cde"]}, "r", path=paths.EMBEDDINGS)
    assert reserved_tokens(call, CONTEXT) == 5 + 2 * PROMPT_TOKENS
    assert reserved_tokens(
        ModelCall({"input": "x" * 9000}, "r", path=paths.EMBEDDINGS), CONTEXT
    ) == (CONTEXT)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"messages": {"user": "hi"}, "max_new_tokens": 30}', 30),
        (b'{"messages": {"user": "hi"}}', 1024),  # the OPEA default, as sent
        (b'{"messages": [{"role": "user", "content": "hi"}], "max_new_tokens": 30}', 30),
    ],
)
def test_reckoned_on_vllms_body_whatever_the_form(body: bytes, expected: int) -> None:
    """OPEA's ``max_new_tokens`` (and its default) are what vLLM receives as ``max_tokens``."""
    form = parse.chat(body)
    call = form.to_model_server("m", IDS, max_model_len=CONTEXT, may_stream=True)
    assert reserved_tokens(call, CONTEXT) == TEMPLATE_TOKENS + MESSAGE_TOKENS + 2 + expected
