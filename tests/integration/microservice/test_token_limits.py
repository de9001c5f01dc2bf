"""A key's tpm holds against a burst: the real tiny vLLM, two microservice processes sharing one
real redis-server, and waves of concurrent requests with ``max_tokens`` set. The tokens vLLM
reports for the answered requests exceed tpm by at most one reservation; the others are 429
with Retry-After."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.processes import Server
from harness.redis import redis_server
from microservice import paths
from microservice.forms.reservation import reserved_tokens
from microservice.upstream.model_call import ModelCall
from tests.integration.microservice.helpers import microservice

pytestmark = pytest.mark.integration

KEY = "sk-" + secrets.token_hex(16)
TPM = 400
WAVES, PER_WAVE, WAVE_GAP_S = 5, 8, 0.6


async def burst(servers: list[Server], body: dict[str, Any]) -> list[httpx.Response]:
    """Waves of concurrent requests, alternating between the processes."""
    headers = {"Authorization": f"Bearer {KEY}"}
    answers: list[httpx.Response] = []
    async with httpx.AsyncClient(timeout=120) as client:
        for _ in range(WAVES):
            wave = [
                client.post(servers[i % 2].base_url + paths.CHAT, json=body, headers=headers)
                for i in range(PER_WAVE)
            ]
            answers += await asyncio.gather(*wave)
            await asyncio.sleep(WAVE_GAP_S)
    return answers


def test_tpm_holds_within_one_reservation_across_two_processes(
    tmp_path: Path, vllm_server: Server, tiny_model: Path
) -> None:
    keys = tmp_path / "keys.yaml"
    keys.write_text(f"keys:\n  - name: burst\n    key: {KEY}\n    tpm: {TPM}\n")
    body = {
        "model": str(tiny_model),
        "messages": [{"role": "user", "content": "Tell me about the cat."}],
        "max_tokens": 24,
        "ignore_eos": True,  # vLLM's: every answer uses its max_tokens
        "temperature": 0,
    }
    context = httpx.get(vllm_server.base_url + "/v1/models", timeout=30).json()["data"][0][
        "max_model_len"
    ]
    reservation = reserved_tokens(ModelCall(dict(body), "r", path=paths.CHAT), context)
    with redis_server(Path("test-logs") / "redis-token-limits.log") as redis:
        env = {"LLM_API_KEYS_FILE": str(keys), "LLM_RATE_LIMIT_REDIS_URL": redis.url}
        with (
            microservice("tpm-a", vllm_server.base_url, str(tiny_model), **env) as a,
            microservice("tpm-b", vllm_server.base_url, str(tiny_model), **env) as b,
        ):
            answers = asyncio.run(burst([a, b], body))
            health = [httpx.get(s.base_url + "/v1/health_check", timeout=30).json() for s in (a, b)]
    answered = [r for r in answers if r.status_code == 200]
    refused = [r for r in answers if r.status_code == 429]
    assert len(answered) + len(refused) == len(answers), [r.status_code for r in answers]
    assert all(h["rate_limits"]["backend"] == "redis" for h in health)  # shared all along
    used = sum(r.json()["usage"]["total_tokens"] for r in answered)
    per_answer = {r.json()["usage"]["completion_tokens"] for r in answered}
    assert per_answer == {24}
    assert used + reservation >= TPM  # the limit was reached...
    assert used - TPM <= reservation, (used, reservation, len(answered))  # ...and held
    assert refused and len(answered) >= 2
    for answer in refused:
        assert answer.json()["error"]["code"] == "rate_limit_exceeded"
        assert 1 <= int(answer.headers["retry-after"]) <= 60
        assert answer.headers["x-ratelimit-limit-tokens"] == str(TPM)
