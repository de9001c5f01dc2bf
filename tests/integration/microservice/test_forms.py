"""Both request forms, both connectors, against the real vLLM: same text as vLLM gives directly."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import httpx
import pytest

from harness.processes import Server
from tests.integration.microservice.helpers import post, vllm_chat
from tests.otlp_receiver import OtlpReceiver, ReceivedSpan
from tests.sse import opea_stream_text, openai_stream_text, sse_data

pytestmark = pytest.mark.integration

SYSTEM, USER = "You answer briefly.", "What is deep learning?"
MESSAGES = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": USER}]


def opea_body(**params: object) -> dict[str, object]:
    return {"messages": {"system": SYSTEM, "user": USER}, **params}


def test_opea_non_streaming_is_upstreams_body_with_vllms_text(
    usvc: Server, vllm_server: Server, tiny_model: Path
) -> None:
    expected = vllm_chat(vllm_server, str(tiny_model), MESSAGES, max_tokens=16, temperature=0)
    response = post(usvc, opea_body(max_new_tokens=16, temperature=0, streaming=False))
    assert response.status_code == 200, response.text
    body = response.json()
    assert list(body) == ["id", "text", "prompt", "streaming", "output_guardrail_params"]
    assert body["text"] == expected
    assert body["prompt"] == USER
    assert body["streaming"] is False
    assert body["output_guardrail_params"] is None
    int(body["id"], 16)  # hex, as upstream


def test_opea_streaming_is_repr_events_then_done(
    usvc: Server, vllm_server: Server, tiny_model: Path
) -> None:
    expected = vllm_chat(vllm_server, str(tiny_model), MESSAGES, max_tokens=16, temperature=0)
    response = post(usvc, opea_body(max_new_tokens=16, temperature=0))  # streaming by default
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse_data(response.text)
    assert len(events) > 2
    assert all(e[0] in "'\"" for e in events[:-1]), events  # Python repr of str chunks
    assert opea_stream_text(events) == expected


def test_opea_upstream_defaults_apply(usvc: Server, otlp_receiver: OtlpReceiver) -> None:
    """Only messages: upstream's defaults reach vLLM (temperature 0.01, top_p 0.95, 1024 new
    tokens, capped by the model's context of 512), and the answer streams. vLLM's own request
    span says what it ran with: the client's trace reaches it through the microservice."""
    trace_id = secrets.token_hex(16)
    traceparent = f"00-{trace_id}-{secrets.token_hex(8)}-01"
    response = post(usvc, {"messages": {"user": USER}}, headers={"traceparent": traceparent})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    opea_stream_text(sse_data(response.text))

    def vllm_span(spans: list[ReceivedSpan]) -> bool:
        return any(s.trace_id == trace_id and s.service_name != "llm-microservice" for s in spans)

    [span] = [s for s in otlp_receiver.wait_for(vllm_span, timeout=60) if s.trace_id == trace_id]
    ran_with = span.attributes
    assert ran_with["gen_ai.request.temperature"] == pytest.approx(0.01)
    assert ran_with["gen_ai.request.top_p"] == pytest.approx(0.95)
    prompt_tokens = ran_with["gen_ai.usage.prompt_tokens"]
    assert ran_with["gen_ai.request.max_tokens"] == 512 - prompt_tokens  # all that fits


def test_opea_with_every_upstream_field(usvc: Server) -> None:
    body = {
        "messages": {"system": SYSTEM, "user": USER},
        "max_new_tokens": 8,
        "top_p": 0.95,
        "temperature": 0.01,
        "streaming": False,
        "top_k": 10,
        "typical_p": 0.95,
        "repetition_penalty": 1.03,
        "output_guardrail_params": {"anything": [1, 2]},
    }
    response = post(usvc, body)
    assert response.status_code == 200, response.text
    assert response.json()["output_guardrail_params"] == {"anything": [1, 2]}


def test_openai_non_streaming_passes_vllms_answer(
    usvc: Server, vllm_server: Server, tiny_model: Path
) -> None:
    expected = vllm_chat(vllm_server, str(tiny_model), MESSAGES, max_tokens=12, temperature=0)
    body = {"model": str(tiny_model), "messages": MESSAGES, "max_tokens": 12, "temperature": 0}
    response = post(usvc, body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["object"] == "chat.completion"
    assert answer["model"] == str(tiny_model)
    assert answer["choices"][0]["message"]["content"] == expected
    assert answer["usage"]["completion_tokens"] > 0


def test_openai_streaming_chunks(usvc: Server, vllm_server: Server, tiny_model: Path) -> None:
    expected = vllm_chat(vllm_server, str(tiny_model), MESSAGES, max_tokens=12, temperature=0)
    body = {"messages": MESSAGES, "max_tokens": 12, "temperature": 0, "stream": True}
    events = sse_data(post(usvc, body).text)
    assert openai_stream_text(events) == expected
    # usage was asked for internally (metrics) but the client did not ask: not shown
    assert all(json.loads(e)["choices"] for e in events[:-1])


def test_openai_streaming_usage_when_asked(usvc: Server) -> None:
    body = {
        "messages": MESSAGES,
        "max_tokens": 5,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    events = sse_data(post(usvc, body).text)
    last = json.loads(events[-2])
    assert last["choices"] == [] and last["usage"]["completion_tokens"] == 5


@pytest.mark.parametrize(
    "params",
    [
        {"temperature": 1.0, "seed": 7},
        {"temperature": 1.0, "seed": 7, "top_k": 1},
        {"temperature": 1.0, "seed": 7, "top_p": 0.05},
        {"temperature": 0, "repetition_penalty": 2.0},
    ],
    ids=["seed", "top_k", "top_p", "repetition_penalty"],
)
def test_sampling_parameters_reach_vllm(
    usvc: Server, vllm_server: Server, tiny_model: Path, params: dict[str, float]
) -> None:
    """Each variant changes vLLM's answer, and ours follows it: the parameter got there."""
    model, base = str(tiny_model), {"temperature": 1.0, "seed": 8, "max_tokens": 24}
    if params.get("temperature") == 0:
        base = {"temperature": 0, "max_tokens": 24}
    direct = vllm_chat(vllm_server, model, MESSAGES, **{**base, **params})
    assert direct != vllm_chat(vllm_server, model, MESSAGES, **base)  # the variant matters
    ours = post(usvc, {"messages": MESSAGES, **base, **params}).json()
    assert ours["choices"][0]["message"]["content"] == direct
    sampling = {k: v for k, v in {**base, **params}.items() if k != "max_tokens"}
    opea = post(usvc, opea_body(streaming=False, max_new_tokens=24, **sampling))
    assert opea.json()["text"] == direct


def test_stop_and_max_tokens_reach_vllm(
    usvc: Server, vllm_server: Server, tiny_model: Path
) -> None:
    model = str(tiny_model)
    whole = vllm_chat(vllm_server, model, MESSAGES, max_tokens=24, temperature=0)
    stop = whole[len(whole) // 2 : len(whole) // 2 + 3]
    expected = vllm_chat(vllm_server, model, MESSAGES, max_tokens=24, temperature=0, stop=[stop])
    assert len(expected) < len(whole)
    body = opea_body(streaming=False, max_new_tokens=24, temperature=0, stop=[stop])
    assert post(usvc, body).json()["text"] == expected
    short = post(usvc, {"messages": MESSAGES, "max_tokens": 3, "temperature": 0}).json()
    assert short["usage"]["completion_tokens"] == 3


def test_models_lists_the_served_model(usvc: Server, tiny_model: Path) -> None:
    body = httpx.get(usvc.base_url + "/v1/models", timeout=10).json()
    assert [m["id"] for m in body["data"]] == [str(tiny_model)]
