"""Every failure answers with a JSON error envelope and the right status; streams end cleanly.

Real vLLM for what it can show (bad requests, a prompt over the context, unreachable); the
STAND-IN model server only for slowness, 5xx and a connection dropped mid-stream.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from harness.processes import Server, free_port
from tests.integration.microservice.helpers import microservice, post
from tests.sse import sse_data

pytestmark = pytest.mark.integration


def assert_error(response: httpx.Response, status: int, fragment: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert fragment in error["message"], error
    assert error["code"] == status
    return dict(error)


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"max_new_tokens": 5}, 422, "messages"),
        ({"messages": {"system": "s"}}, 422, "messages.user"),
        ({"messages": {"user": "   "}}, 422, "messages.user"),
        ({"messages": {"user": "hi"}, "max_new_tokens": 0}, 422, "max_new_tokens"),
        ({"messages": {"user": "hi"}, "max_new_tokens": 100000}, 422, "max_new_tokens"),
        ({"messages": {"user": "hi"}, "max_new_tokens": "many"}, 422, "max_new_tokens"),
        ({"messages": {"user": "hi"}, "temperature": -1}, 422, "temperature"),
        ({"messages": {"user": "hi"}, "streaming": "sometimes"}, 422, "streaming"),
        ({"messages": "hi"}, 422, "messages"),
        ({"messages": []}, 422, "messages"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, 422, "messages.0.role"),
        ({"messages": [{"role": "user", "content": "x"}], "max_tokens": -3}, 422, "max_tokens"),
    ],
)
def test_invalid_body_names_the_field(
    usvc: Server, body: dict[str, object], status: int, field: str
) -> None:
    error = assert_error(post(usvc, body), status, field)
    assert error["param"] == field


def test_non_json_and_oversized_bodies(usvc: Server) -> None:
    url = usvc.base_url + "/v1/chat/completions"
    assert_error(httpx.post(url, content=b"{not json", timeout=10), 400, "not valid JSON")
    assert_error(httpx.post(url, content=b"[1, 2]", timeout=10), 422, "JSON object")
    huge = {"messages": {"user": "x" * 8_500_000}}  # over the 8 MiB LLM_MAX_BODY_BYTES
    assert_error(httpx.post(url, json=huge, timeout=10), 413, "limit")


def test_vllm_rejection_is_400_with_vllms_message(usvc: Server) -> None:
    """A prompt longer than the 512-token context: vLLM refuses; we keep its words."""
    long_prompt = " ".join(f"word{i}" for i in range(2000))
    for body in (
        {"messages": {"user": long_prompt}, "max_new_tokens": 8, "streaming": False},
        {"messages": {"user": long_prompt}, "max_new_tokens": 8, "streaming": True},
        {"messages": [{"role": "user", "content": long_prompt}], "max_tokens": 8},
    ):
        error = assert_error(post(usvc, body), 400, "context length")
        assert error["type"] == "invalid_request_error"


@pytest.mark.parametrize("connector", ["generic", "langchain"])
def test_vllm_unreachable_is_503(connector: str) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    with microservice(f"unreachable-{connector}", closed, "m", LLM_CONNECTOR=connector) as usvc:
        for streaming in (False, True):
            body = {"messages": {"user": "hi"}, "streaming": streaming}
            assert_error(post(usvc, body), 503, "unreachable")
        body = {"messages": [{"role": "user", "content": "hi"}], "stream": True}
        assert_error(post(usvc, body), 503, "unreachable")
        health = httpx.get(usvc.base_url + "/v1/health_check", timeout=10)
        assert health.status_code == 503
        assert "unreachable" in health.json()["model_server"]["reason"]


def standin(fault: str, **params: object) -> dict[str, object]:
    return {"messages": [{"role": "user", "content": f"STANDIN:{fault}"}], **params}


def test_too_slow_is_504(usvc_on_standin: Server) -> None:
    """The stand-in takes 5 s; the microservice was started with a 1 s model-server timeout."""
    assert_error(post(usvc_on_standin, standin("slow")), 504, "in time")
    opea = {"messages": {"user": "STANDIN:slow"}, "streaming": True}
    assert_error(post(usvc_on_standin, opea), 504, "in time")


def test_vllm_5xx_is_502(usvc_on_standin: Server) -> None:
    assert_error(post(usvc_on_standin, standin("500")), 502, "engine dead")
    opea = {"messages": {"user": "STANDIN:500"}, "streaming": False}
    assert_error(post(usvc_on_standin, opea), 502, "500")


def test_mid_stream_failure_ends_with_error_event_then_done(usvc_on_standin: Server) -> None:
    for body in (standin("midstream", stream=True), {"messages": {"user": "STANDIN:midstream"}}):
        response = post(usvc_on_standin, body)
        assert response.status_code == 200
        events = sse_data(response.text)
        assert events[-1] == "[DONE]", events
        error = json.loads(events[-2])["error"]
        assert error["code"] == 502 and error["message"], error
        assert len(events) == 4  # two chunks, the error, [DONE]


def test_healthy_stream_on_standin_is_complete(usvc_on_standin: Server) -> None:
    events = sse_data(post(usvc_on_standin, {"messages": {"user": "hello"}}).text)
    assert events == ["'first '", "'second '", "[DONE]"]


def test_fast_answer_while_model_not_listed(vllm_server: Server, tiny_model: Path) -> None:
    with microservice("wrong-model", vllm_server.base_url, "no/such-model") as usvc:
        health = httpx.get(usvc.base_url + "/v1/health_check", timeout=10)
        assert health.status_code == 503
        assert "not served" in health.json()["model_server"]["reason"]
        assert_error(post(usvc, {"messages": {"user": "hi"}}), 404, "does not exist")
