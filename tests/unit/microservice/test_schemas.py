"""Form detection, validation naming the field, and the payload sent to vLLM."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from microservice.errors import BodyNotJson, RequestInvalid
from microservice.forms import parse
from microservice.forms.opea import OpeaRequest
from microservice.forms.openai import OpenAIRequest
from microservice.upstream.model_call import RequestIds


def parse_request(data: dict[str, Any]) -> OpeaRequest | OpenAIRequest:
    return parse.chat(orjson.dumps(data))


def test_opea_form_payload_forwards_every_sampling_parameter() -> None:
    body = parse_request(
        {
            "messages": {"system": "sys", "user": "hi"},
            "max_new_tokens": 7,
            "top_k": 10,
            "repetition_penalty": 1.03,
            "stop": ["x"],
            "seed": 3,
            "typical_p": 0.95,
        }
    )
    assert isinstance(body, OpeaRequest)
    call = body.to_model_server("m", RequestIds("r"), max_model_len=512, may_stream=False)
    assert call.request_id == "r"
    assert call.body == {
        "model": "m",
        "messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": "hi"}],
        "max_tokens": 7,
        "top_p": 0.95,
        "temperature": 0.01,
        "top_k": 10,
        "repetition_penalty": 1.03,
        "stop": ["x"],
        "seed": 3,
        "stream": False,
    }


def test_opea_defaults_are_upstreams() -> None:
    body = parse_request({"messages": {"user": "hi"}})
    assert isinstance(body, OpeaRequest)
    assert (body.max_new_tokens, body.top_p, body.temperature, body.streaming) == (
        1024,
        0.95,
        0.01,
        True,
    )
    payload = body.to_model_server("m", RequestIds("r"), max_model_len=None, may_stream=True).body
    assert payload["messages"] == [{"role": "user", "content": "hi"}]  # no empty system
    assert payload["max_tokens"] == 1024
    assert payload["stream"] is True and payload["stream_options"] == {"include_usage": True}
    # The default does not fit the model's context: vLLM decides.
    fitted = body.to_model_server("m", RequestIds("r"), max_model_len=512, may_stream=False)
    assert "max_tokens" not in fitted.body


def test_openai_form_keeps_unknown_fields_for_vllm() -> None:
    body = parse_request({"messages": [{"role": "user", "content": "hi"}], "ignore_eos": True})
    assert isinstance(body, OpenAIRequest)
    assert body.stream is False and not body.answer_shape().keep_usage_chunk
    assert body.to_model_server(
        "served", RequestIds("r"), max_model_len=None, may_stream=True
    ).body == {
        "messages": [{"role": "user", "content": "hi"}],
        "ignore_eos": True,
        "model": "served",
    }


def test_openai_form_goes_to_vllm_as_sent() -> None:
    sent = {
        "model": "whatever",
        "messages": [
            {"role": "system", "content": "s"},
            {"role": "assistant", "tool_calls": [{"id": "t", "type": "function"}]},
            {"role": "user", "content": [{"type": "text", "text": "hi"}], "name": "u"},
        ],
        "stream": True,
        "stream_options": {"continuous_usage_stats": True},
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}},
        "temperature": 0.5,
        "stop": "x",
        "n": 2,
    }
    body = parse_request(sent)
    assert isinstance(body, OpenAIRequest)
    forwarded = body.to_model_server(
        "served", RequestIds("r"), max_model_len=None, may_stream=True
    ).body
    usage_options = {"continuous_usage_stats": True, "include_usage": True}
    assert forwarded == {**sent, "model": "served", "stream_options": usage_options}


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({}, "messages"),
        ({"messages": 3}, "messages"),
        ({"messages": {"user": ""}}, "messages.user"),
        ({"messages": {"user": "x"}, "top_p": 0}, "top_p"),
        ({"messages": {"user": "x"}, "max_new_tokens": -1}, "max_new_tokens"),
        ({"messages": [{"role": "user"}], "stream": "perhaps"}, "stream"),
    ],
)
def test_invalid_names_the_field(data: dict[str, object], field: str) -> None:
    with pytest.raises(RequestInvalid) as caught:
        parse_request(data)
    assert caught.value.param == field and caught.value.status == 422


def test_json_checks() -> None:
    with pytest.raises(BodyNotJson):
        parse.chat(b"{")
    with pytest.raises(RequestInvalid):
        parse.chat(b"[]")


def test_max_tokens_over_the_context_is_refused_only_when_asked() -> None:
    parse_request({"messages": {"user": "x"}}).check_tokens(512)  # default: fine
    parse_request({"messages": {"user": "x"}, "max_new_tokens": 9999}).check_tokens(None)
    with pytest.raises(RequestInvalid) as caught:
        parse_request({"messages": {"user": "x"}, "max_new_tokens": 600}).check_tokens(512)
    assert caught.value.param == "max_new_tokens"
    openai_body = parse_request({"messages": [{"role": "user"}], "max_completion_tokens": 600})
    with pytest.raises(RequestInvalid, match="max_completion_tokens"):
        openai_body.check_tokens(512)
