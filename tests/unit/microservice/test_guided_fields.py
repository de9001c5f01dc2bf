"""vLLM's old guided-decoding fields reach a STAND-IN model server (not vLLM) as the
``structured_outputs`` that replaced them, in every form; the real-vLLM answers are checked in
tests/integration/microservice/test_guided_fields.py."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.unit.microservice.standin_model_server import (
    StandinModelServer,
    completion,
    microservice,
)

CHAT = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
OPEA = {"messages": {"user": "hi"}, "max_new_tokens": 4, "streaming": False}
COMPLETION = {"prompt": "hi", "max_tokens": 4}
SCHEMA = {"type": "object", "properties": {"a": {"type": "integer"}}}


def standin() -> StandinModelServer:
    return StandinModelServer(chat=lambda body: httpx.Response(200, json=completion("ok", 1)))


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/chat/completions", CHAT),
        ("/v1/chat/completions", OPEA),
        ("/v1/completions", COMPLETION),
    ],
    ids=["openai", "opea", "completions"],
)
@pytest.mark.parametrize(
    ("old", "value", "new"),
    [
        ("guided_json", SCHEMA, "json"),
        ("guided_regex", "[a-z]{3}", "regex"),
        ("guided_choice", ["yes", "no"], "choice"),
        ("guided_grammar", 'root ::= "a"', "grammar"),
    ],
)
async def test_each_old_field_becomes_structured_outputs(
    path: str, body: dict[str, Any], old: str, value: Any, new: str
) -> None:
    server = standin()
    async with microservice(server) as client:
        reply = await client.post(path, json={**body, old: value})
    assert reply.status_code == 200, reply.text
    sent = server.received[-1]
    assert sent["structured_outputs"] == {new: value} and old not in sent


async def test_in_extra_body_too_with_the_whitespace_pattern() -> None:
    server = standin()
    extra = {"guided_choice": ["a", "b"], "guided_whitespace_pattern": " ", "top_k": 3}
    async with microservice(server) as client:
        reply = await client.post("/v1/chat/completions", json={**CHAT, "extra_body": extra})
        alone = await client.post(
            "/v1/completions", json={**COMPLETION, "guided_whitespace_pattern": " "}
        )
    assert reply.status_code == 200 and alone.status_code == 200
    sent, sent_alone = server.received
    assert sent["structured_outputs"] == {"choice": ["a", "b"], "whitespace_pattern": " "}
    assert sent["extra_body"] == {"top_k": 3}  # what is not a guided field stays
    assert "structured_outputs" not in sent_alone  # a pattern alone constrains nothing


@pytest.mark.parametrize(
    ("fields", "param", "says"),
    [
        ({"guided_json": SCHEMA, "structured_outputs": {"regex": "a"}}, "guided_json", "send one"),
        (
            {"extra_body": {"guided_regex": "a"}, "structured_outputs": {"regex": "a"}},
            "guided_regex",
            "structured_outputs",
        ),
        ({"guided_regex": "a", "guided_choice": ["a"]}, "guided_regex", "one kind"),
    ],
)
async def test_old_and_new_together_are_refused_naming_them(
    fields: dict[str, Any], param: str, says: str
) -> None:
    server = standin()
    async with microservice(server) as client:
        reply = await client.post("/v1/chat/completions", json={**CHAT, **fields})
    error = reply.json()["error"]
    assert reply.status_code == 400 and error["param"] == param and says in error["message"]
    assert server.received == []
