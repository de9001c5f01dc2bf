"""API keys in process, in front of a STAND-IN model server (not vLLM): who may call, which
model, per-key limits with OpenAI's headers, and the key never shown. The real-vLLM and
real-Redis versions are in tests/integration/microservice/test_production_api.py."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.unit.microservice.standin_model_server import (
    MODEL,
    StandinModelServer,
    completion,
    microservice,
)

KEY_A = "sk-a-0123456789abcdef"
KEY_B = "sk-b-0123456789abcdef"
KEY_C = "sk-c-0123456789abcdef"
CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}


def answering() -> StandinModelServer:
    return StandinModelServer(chat=lambda body: httpx.Response(200, json=completion("ok", 2)))


def keys_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "keys.yaml"
    path.write_text(text)
    return path


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def two_keys(tmp_path: Path) -> Path:
    return keys_file(
        tmp_path,
        f"""keys:
  - name: team-a
    key: {KEY_A}
    rpm: 3
  - name: team-b
    key: {KEY_B}
    models: [other-model]
  - name: team-c
    key: {KEY_C}
    rpm: 3
""",
    )


async def test_api_routes_need_a_key_health_and_metrics_do_not(two_keys: Path) -> None:
    async with microservice(answering(), llm_api_keys_file=two_keys) as client:
        for method, path, body in (
            ("POST", "/v1/chat/completions", CHAT),
            ("POST", "/v1/completions", {"prompt": "x"}),
            ("POST", "/v1/embeddings", {"input": "x"}),
            ("GET", "/v1/models", None),
        ):
            for headers in ({}, bearer("sk-wrong-key-123456"), {"Authorization": KEY_A}):
                answer = await client.request(method, path, json=body, headers=headers)
                assert answer.status_code == 401, (path, headers, answer.text)
                error = answer.json()["error"]
                assert error["code"] == "invalid_api_key"
                assert answer.headers["www-authenticate"] == "Bearer"
        for path in ("/health", "/metrics"):
            assert (await client.get(path)).status_code == 200
        assert (await client.get("/v1/health_check")).status_code in (200, 503)
        answer = await client.post("/v1/chat/completions", json=CHAT, headers=bearer(KEY_A))
        assert answer.status_code == 200, answer.text


async def test_a_model_outside_the_keys_list_is_403(two_keys: Path) -> None:
    async with microservice(answering(), llm_api_keys_file=two_keys) as client:
        answer = await client.post("/v1/chat/completions", json=CHAT, headers=bearer(KEY_B))
        assert answer.status_code == 403
        assert answer.json()["error"]["code"] == "model_not_allowed"
        listed = await client.get("/v1/models", headers=bearer(KEY_B))
        assert listed.json()["data"] == []  # it sees only the models it may use
        listed = await client.get("/v1/models", headers=bearer(KEY_A))
        assert [m["id"] for m in listed.json()["data"]] == [MODEL]


async def test_rpm_lets_a_burst_through_then_429_with_openai_headers(two_keys: Path) -> None:
    async with microservice(answering(), llm_api_keys_file=two_keys) as client:
        remaining = []
        for _ in range(3):
            answer = await client.post("/v1/chat/completions", json=CHAT, headers=bearer(KEY_A))
            assert answer.status_code == 200, answer.text
            assert answer.headers["x-ratelimit-limit-requests"] == "3"
            remaining.append(answer.headers["x-ratelimit-remaining-requests"])
        assert remaining == ["2", "1", "0"]
        refused = await client.post("/v1/chat/completions", json=CHAT, headers=bearer(KEY_A))
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "rate_limit_exceeded"
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert refused.headers["x-ratelimit-remaining-requests"] == "0"
        assert refused.headers["x-ratelimit-reset-requests"].endswith("s")
        other = await client.post("/v1/chat/completions", json=CHAT, headers=bearer(KEY_C))
        assert other.status_code == 200  # another key with the same limit is not affected
        assert other.headers["x-ratelimit-remaining-requests"] == "2"


async def test_tpm_refuses_once_the_keys_tokens_are_spent(tmp_path: Path) -> None:
    path = keys_file(tmp_path, f"keys:\n  - name: t\n    key: {KEY_A}\n    tpm: 5\n")
    async with microservice(answering(), llm_api_keys_file=path) as client:
        first = await client.post("/v1/chat/completions", json=CHAT, headers=bearer(KEY_A))
        assert first.status_code == 200  # 3 prompt + 2 completion tokens: the window is full
        for _ in range(50):  # spent in the background: wait for it
            second = await client.post("/v1/chat/completions", json=CHAT, headers=bearer(KEY_A))
            if second.status_code == 429:
                break
        assert second.status_code == 429
        assert second.headers["x-ratelimit-limit-tokens"] == "5"
        assert second.headers["x-ratelimit-remaining-tokens"] == "0"


async def test_per_key_metrics_by_name_and_the_key_never_shown(
    two_keys: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        async with microservice(answering(), llm_api_keys_file=two_keys) as client:
            for _ in range(4):
                await client.post("/v1/chat/completions", json=CHAT, headers=bearer(KEY_A))
            wrong = await client.post(
                "/v1/chat/completions", json=CHAT, headers=bearer(KEY_B + "x")
            )
            metrics = (await client.get("/metrics")).text
            health = (await client.get("/v1/health_check")).text
    assert 'llm_usvc_key_requests_total{key="team-a"} 3.0' in metrics
    assert 'llm_usvc_key_prompt_tokens_total{key="team-a"} 9.0' in metrics
    assert 'llm_usvc_key_completion_tokens_total{key="team-a"} 6.0' in metrics
    assert 'llm_usvc_key_rate_limited_total{key="team-a",limit="requests"} 1.0' in metrics
    seen: list[Any] = [metrics, health, wrong.text, caplog.text]
    for key in (KEY_A, KEY_B, KEY_C):
        assert all(key not in text for text in seen)
