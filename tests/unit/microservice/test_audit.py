"""The audit trail in process, in front of STAND-IN model servers (not vLLM): one line per API
request whatever its outcome, with the key's name, the model, the replicas, the status and the
usage, and never the text, the key or a header. Client disconnects (499) need a real socket:
tests/unit/microservice/test_audit_sink.py; the real-vLLM version is
tests/integration/microservice/test_audit_trail.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from tests.unit.microservice.standin_model_server import (
    ENDPOINT,
    MODEL,
    StandinModelServer,
    chunk,
    completion,
    microservice,
    sse,
    streamed,
    usage,
    usage_chunk,
)

KEY = "sk-audit-0123456789abcdef"
MARKER = "zq-unique-prompt-marker-7731"
ANSWER_MARKER = "zq-unique-answer-marker-4410"
CHAT = {"model": MODEL, "messages": [{"role": "user", "content": f"say {MARKER}"}]}
A, B = "http://replica-a:8000", "http://replica-b:8000"


def lines_of(path: Path) -> list[dict[str, Any]]:
    text = path.read_text()
    assert MARKER not in text and ANSWER_MARKER not in text and KEY not in text
    return [json.loads(line) for line in text.splitlines()]


def answering() -> StandinModelServer:
    return StandinModelServer(
        chat=lambda body: httpx.Response(200, json=completion(ANSWER_MARKER, 2))
    )


def streaming() -> StandinModelServer:
    events = sse(chunk(), chunk(ANSWER_MARKER), chunk("", finish="stop"), usage_chunk(4))
    return StandinModelServer(chat=lambda body: streamed([events]))


def keyed(tmp_path: Path, rpm: int = 100) -> dict[str, Any]:
    keys = tmp_path / "keys.yaml"
    keys.write_text(f"keys:\n  - name: team-a\n    key: {KEY}\n    rpm: {rpm}\n")
    return {"llm_api_keys_file": keys, "llm_audit_log": str(tmp_path / "audit.log")}


BEARER = {"Authorization": f"Bearer {KEY}"}


async def test_an_answer_is_one_line_with_key_model_replica_usage_and_times(
    tmp_path: Path,
) -> None:
    async with microservice(answering(), **keyed(tmp_path)) as client:
        headers = {**BEARER, "X-Request-Id": "audit-1"}
        answer = await client.post("/v1/chat/completions", json=CHAT, headers=headers)
        assert answer.status_code == 200 and ANSWER_MARKER in answer.text
        for path in ("/health", "/v1/health_check", "/metrics"):
            await client.get(path)  # never audited
    [line] = lines_of(tmp_path / "audit.log")
    assert line["log"] == "audit" and line["ts"].endswith("Z") and line["ts"][10] == "T"
    assert line["request_id"] == "audit-1" and line["path"] == "/v1/chat/completions"
    assert line["key"] == "team-a" and line["model"] == MODEL
    assert line["requested_model"] is None and line["fallback_from"] is None
    assert line["replicas"] == [ENDPOINT] and line["form"] == "openai"
    assert line["stream"] is False and line["status"] == 200 and line["error_type"] is None
    assert (line["prompt_tokens"], line["completion_tokens"]) == (3, 2)
    assert 0 < line["ttft_ms"] <= line["latency_ms"]
    assert line["resumes"] == 0 and line["client"] == "127.0.0.1"


async def test_every_refusal_is_one_line_with_its_status_and_error_type(tmp_path: Path) -> None:
    async with microservice(answering(), **keyed(tmp_path, rpm=1)) as client:
        post = client.post
        assert (await post("/v1/chat/completions", json=CHAT)).status_code == 401
        nope = {**CHAT, "model": "nope"}
        assert (await post("/v1/chat/completions", json=nope, headers=BEARER)).status_code == 404
        empty = {"model": MODEL, "messages": []}
        assert (await post("/v1/chat/completions", json=empty, headers=BEARER)).status_code == 422
        assert (await client.get("/v1/models", headers=BEARER)).status_code == 200
        no_model = await post("/v1/embeddings", json={"input": "x"}, headers=BEARER)
        assert no_model.status_code == 400  # the chat model is no embedding model
        assert (await post("/v1/chat/completions", json=CHAT, headers=BEARER)).status_code == 200
        assert (await post("/v1/chat/completions", json=CHAT, headers=BEARER)).status_code == 429
    lines = lines_of(tmp_path / "audit.log")
    got = [(x["path"], x["status"], x["error_type"], x["key"]) for x in lines]
    assert got == [
        ("/v1/chat/completions", 401, "invalid_request_error", None),
        ("/v1/chat/completions", 404, "invalid_request_error", "team-a"),
        ("/v1/chat/completions", 422, "invalid_request_error", "team-a"),
        ("/v1/models", 200, None, "team-a"),
        ("/v1/embeddings", 400, "invalid_request_error", "team-a"),
        ("/v1/chat/completions", 200, None, "team-a"),
        ("/v1/chat/completions", 429, "rate_limit_error", "team-a"),
    ]
    assert lines[1]["requested_model"] == "nope" and lines[1]["model"] is None
    assert lines[1]["form"] == "openai" and lines[1]["replicas"] == []
    assert lines[4]["form"] == "embeddings"
    assert lines[6]["model"] is None and lines[6]["requested_model"] == MODEL
    refused = [x for x in lines if x["status"] != 200]
    assert all(x["prompt_tokens"] is None and x["ttft_ms"] is None for x in refused)


async def test_a_failing_model_server_is_one_line_with_the_upstream_error(tmp_path: Path) -> None:
    failing = StandinModelServer(chat=lambda body: httpx.Response(500, text="boom"))
    async with microservice(failing, llm_audit_log=str(tmp_path / "audit.log")) as client:
        assert (await client.post("/v1/chat/completions", json=CHAT)).status_code == 502
        failing.refuse = True
        assert (await client.post("/v1/chat/completions", json=CHAT)).status_code == 503
    lines = lines_of(tmp_path / "audit.log")
    assert [(x["status"], x["error_type"]) for x in lines] == [
        (502, "upstream_error"),
        (503, "upstream_unavailable"),
    ]
    assert all(x["key"] is None and x["replicas"] == [] for x in lines)


async def test_a_stream_is_one_line_written_once_it_ended(tmp_path: Path) -> None:
    opea = {"messages": {"user": f"say {MARKER}"}, "streaming": True}
    async with microservice(streaming(), llm_audit_log=str(tmp_path / "audit.log")) as client:
        answer = await client.post("/v1/chat/completions", json={**CHAT, "stream": True})
        assert ANSWER_MARKER in answer.text
        assert ANSWER_MARKER in (await client.post("/v1/chat/completions", json=opea)).text
    lines = lines_of(tmp_path / "audit.log")
    assert [(x["form"], x["stream"], x["status"]) for x in lines] == [
        ("openai", True, 200),
        ("opea", True, 200),
    ]
    for line in lines:
        assert (line["prompt_tokens"], line["completion_tokens"]) == (3, 4)
        assert line["replicas"] == [ENDPOINT] and line["error_type"] is None
        assert 0 < line["ttft_ms"] <= line["latency_ms"]


async def test_a_stream_ended_by_a_failure_says_why(tmp_path: Path) -> None:
    cut = httpx.ReadError("replica killed (stand-in)")
    standin = StandinModelServer(chat=lambda body: streamed([sse(chunk(), done=False)], cut))
    async with microservice(
        standin, llm_audit_log=str(tmp_path / "audit.log"), llm_stream_resume=False
    ) as client:
        answer = await client.post("/v1/chat/completions", json={**CHAT, "stream": True})
        assert '"error"' in answer.text
    [line] = lines_of(tmp_path / "audit.log")
    assert (line["status"], line["error_type"], line["stream"]) == (200, "upstream_error", True)


async def test_a_resumed_stream_names_every_replica_in_order(tmp_path: Path) -> None:
    tokens = lambda body: httpx.Response(200, json={"tokens": [1, 2, 3]})  # noqa: E731
    first = sse(chunk(), chunk("one"), done=False)
    a = StandinModelServer(
        chat=lambda body: streamed([first], httpx.ReadError("cut")), tokenize=tokens
    )
    own: dict[str, Any] = {"id": "chatcmpl-b"}
    rest = sse(
        chunk(**own),
        chunk(" two", finish="stop", **own),
        chunk(choices=[], usage=usage(5, prompt_tokens=9), **own),
    )
    b = StandinModelServer(chat=lambda body: streamed([rest]), tokenize=tokens)
    settings = {"llm_routing": "round_robin", "llm_audit_log": str(tmp_path / "audit.log")}
    ask = {**CHAT, "stream": True, "max_tokens": 10}
    async with microservice({A: a, B: b}, **settings) as client:
        answer = await client.post("/v1/chat/completions", json=ask)
        assert "two" in answer.text and '"error"' not in answer.text
    [line] = lines_of(tmp_path / "audit.log")
    assert line["replicas"] == [A, B] and line["resumes"] == 1
    assert line["status"] == 200 and line["error_type"] is None
    assert line["completion_tokens"] == 6 and line["prompt_tokens"] == 3


async def test_off_writes_nothing(capsys: Any) -> None:
    async with microservice(answering(), llm_audit_log="OFF") as client:
        assert (await client.post("/v1/chat/completions", json=CHAT)).status_code == 200
    assert '"audit"' not in capsys.readouterr().out
