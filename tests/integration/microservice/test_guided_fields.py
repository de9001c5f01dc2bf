"""The guided-decoding fields vLLM 0.32 dropped, sent to the microservice in front of the real
tiny vLLM: each answer keeps to its constraint (vLLM itself would ignore the fields and answer
free text). The session server runs with compact JSON, so the random-weight model cannot pad a
JSON answer with blanks until max_tokens."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import openai
import pytest

from harness.processes import Server
from tests.integration.microservice.helpers import microservice

pytestmark = pytest.mark.integration

SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string", "maxLength": 8}, "age": {"type": "integer"}},
    "required": ["name", "age"],
    "additionalProperties": False,
}
CHOICES = ["red", "green", "blue"]
REGEX = "[a-z]{3}-[0-9]{2}"


@pytest.fixture(scope="module")
def usvc(vllm_server: Server, tiny_model: Path) -> Iterator[Server]:
    with microservice("guided", vllm_server.base_url, str(tiny_model)) as server:
        yield server


def post(usvc: Server, path: str, body: dict[str, Any]) -> dict[str, Any]:
    reply = httpx.post(usvc.base_url + path, json={"temperature": 0, **body}, timeout=60)
    assert reply.status_code == 200, reply.text
    answer: dict[str, Any] = reply.json()
    return answer


def test_a_json_answer_validates_against_its_schema(usvc: Server, tiny_model: Path) -> None:
    """Through the openai SDK, whose extra_body puts the field at the top level."""
    with openai.OpenAI(base_url=usvc.base_url + "/v1", api_key="unused", max_retries=0) as sdk:
        answer = sdk.chat.completions.create(
            model=str(tiny_model),
            messages=[{"role": "user", "content": "A person as JSON."}],
            max_tokens=120,
            temperature=0,
            extra_body={"guided_json": SCHEMA},
        )
    jsonschema.validate(json.loads(answer.choices[0].message.content or ""), SCHEMA)


def test_a_choice_answer_is_one_of_the_choices_in_every_form(usvc: Server) -> None:
    openai_form = post(
        usvc,
        "/v1/chat/completions",
        {"messages": [{"role": "user", "content": "A colour?"}], "guided_choice": CHOICES},
    )
    opea = post(
        usvc,
        "/v1/chat/completions",
        {"messages": {"user": "A colour?"}, "streaming": False, "guided_choice": CHOICES},
    )
    completions = post(
        usvc, "/v1/completions", {"prompt": "A colour:", "extra_body": {"guided_choice": CHOICES}}
    )
    assert openai_form["choices"][0]["message"]["content"] in CHOICES
    assert opea["text"] in CHOICES
    assert completions["choices"][0]["text"] in CHOICES


def test_a_regex_answer_matches(usvc: Server) -> None:
    answer = post(
        usvc, "/v1/completions", {"prompt": "A code:", "guided_regex": REGEX, "max_tokens": 20}
    )
    assert re.fullmatch(REGEX, answer["choices"][0]["text"]), answer["choices"][0]["text"]


def test_both_names_are_refused(usvc: Server) -> None:
    body = {
        "messages": [{"role": "user", "content": "hi"}],
        "guided_regex": REGEX,
        "structured_outputs": {"regex": REGEX},
    }
    reply = httpx.post(usvc.base_url + "/v1/chat/completions", json=body, timeout=60)
    assert reply.status_code == 400 and reply.json()["error"]["param"] == "guided_regex"
