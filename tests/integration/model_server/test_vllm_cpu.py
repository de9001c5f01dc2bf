"""The real vLLM CPU server, started through `python -m model_server`, serves the tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from harness.processes import Server
from tests.sse import line_data, openai_stream_text, sse_data

pytestmark = pytest.mark.integration


def test_health(vllm_server: Server) -> None:
    assert httpx.get(vllm_server.base_url + "/health", timeout=10).status_code == 200


def test_models_lists_the_configured_model(vllm_server: Server, tiny_model: Path) -> None:
    body = httpx.get(vllm_server.base_url + "/v1/models", timeout=10).json()
    assert [m["id"] for m in body["data"]] == [str(tiny_model)]
    assert body["data"][0]["max_model_len"] == 512  # VLLM_MAX_MODEL_LEN reached vLLM


def test_launcher_logged_the_command(vllm_server: Server) -> None:
    """The launcher's first line; the whole log is read: the session's traffic has pushed it
    out of any tail by the time this runs."""
    log = vllm_server.log_path.read_text(errors="replace")
    events = [json.loads(line) for line in log.splitlines() if line.startswith('{"ts"')]
    start = next(e for e in events if e["msg"] == "starting vLLM")
    assert "--max-model-len 512" in start["command"]
    assert "VLLM_CPU_KVCACHE_SPACE=1" in start["command"]


def test_completion(vllm_server: Server, tiny_model: Path) -> None:
    response = httpx.post(
        vllm_server.base_url + "/v1/completions",
        json={
            "model": str(tiny_model),
            "prompt": "hello world",
            "max_tokens": 8,
            "temperature": 0,
            "ignore_eos": True,
        },
        timeout=60,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["usage"]["completion_tokens"] == 8
    assert body["choices"][0]["text"]


def _chat(server: Server, model: Path, stream: bool) -> httpx.Response:
    return httpx.post(
        server.base_url + "/v1/chat/completions",
        json={
            "model": str(model),
            "messages": [{"role": "user", "content": "what is a cat"}],
            "max_tokens": 12,
            "temperature": 0,
            "ignore_eos": True,
            "stream": stream,
        },
        timeout=60,
    )


def test_chat_completion(vllm_server: Server, tiny_model: Path) -> None:
    response = _chat(vllm_server, tiny_model, stream=False)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["usage"]["completion_tokens"] == 12
    assert body["choices"][0]["message"]["content"]


def test_chat_streaming_joins_to_the_non_streamed_answer(
    vllm_server: Server, tiny_model: Path
) -> None:
    whole = _chat(vllm_server, tiny_model, stream=False).json()["choices"][0]["message"]["content"]
    response = _chat(vllm_server, tiny_model, stream=True)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert openai_stream_text(sse_data(response.text)) == whole


def test_completion_streaming(vllm_server: Server, tiny_model: Path) -> None:
    with httpx.stream(
        "POST",
        vllm_server.base_url + "/v1/completions",
        json={
            "model": str(tiny_model),
            "prompt": "one two",
            "max_tokens": 6,
            "temperature": 0,
            "ignore_eos": True,
            "stream": True,
        },
        timeout=60,
    ) as response:
        events = [data for line in response.iter_lines() if (data := line_data(line)) is not None]
    assert events[-1] == "[DONE]"
    assert len(events) >= 2
