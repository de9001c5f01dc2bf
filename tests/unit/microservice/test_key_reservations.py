"""Reservations and budgets through the app, in front of a STAND-IN model server (not vLLM): a
request reserves at admission and is settled exactly once, whichever way it ends (answered,
refused by the model server, a stream cut, the client gone); a spent budget is a 429
``budget_exceeded`` naming its reset. The real-vLLM, two-process version is in
tests/integration/microservice/test_token_limits.py."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from microservice import paths
from microservice.forms.reservation import reserved_tokens
from microservice.upstream.model_call import ModelCall
from tests.unit.microservice.scripted_model_server import END, SSE_HEAD, chunked, json_answer
from tests.unit.microservice.standin_model_server import (
    MODEL,
    StandinModelServer,
    chunk,
    completion,
    microservice,
    sse,
    streamed,
    usage_chunk,
)
from tests.unit.microservice.uvicorn_app import served, until, vllm

KEY = "sk-r-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {KEY}"}
TPM = 100_000
CHAT: dict[str, Any] = {
    "model": MODEL,
    "messages": [{"role": "user", "content": "hi"}],
    "max_tokens": 4,
}
STREAM = {**CHAT, "stream": True}


def keys_file(tmp_path: Path, extra: str = f"tpm: {TPM}") -> Path:
    path = tmp_path / "keys.yaml"
    path.write_text(f"keys:\n  - name: r\n    key: {KEY}\n    {extra}\n")
    return path


def reservation(body: dict[str, Any], context: int) -> int:
    return reserved_tokens(ModelCall(dict(body), "r", path=paths.CHAT), context)


async def window_tokens(client: httpx.AsyncClient, context: int) -> int:
    """The tokens in the key's window, read from a probe request's headers (less the probe's
    own reservation); settling runs in the background, so it is given a moment first."""
    await asyncio.sleep(0.05)
    probe = await client.post("/v1/chat/completions", json=CHAT, headers=AUTH)
    remaining = int(probe.headers["x-ratelimit-remaining-tokens"])
    return TPM - remaining - reservation(CHAT, context)


def answering(tokens: int) -> StandinModelServer:
    return StandinModelServer(chat=lambda body: httpx.Response(200, json=completion("ok", tokens)))


@pytest.mark.parametrize(
    ("chat", "body", "counted"),
    [
        (lambda body: httpx.Response(200, json=completion("ok", 2)), CHAT, 3 + 2),
        (lambda body: streamed([sse(chunk(), chunk("ok"), usage_chunk(2))]), STREAM, 3 + 2),
        (lambda body: httpx.Response(400, json={"message": "no"}), CHAT, 0),
        (lambda body: httpx.Response(500, text="boom"), CHAT, 0),
        (lambda body: httpx.Response(500, text="boom"), STREAM, 0),
        (  # cut after it began, before vLLM's usage: the whole reservation stays counted
            lambda body: streamed([sse(chunk(), chunk("o"), done=False)], httpx.ReadError("cut")),
            STREAM,
            reservation(STREAM, 512),
        ),
    ],
    ids=["answer", "stream", "vllm_400", "vllm_500", "stream_500", "stream_cut"],
)
async def test_every_end_settles_once_to_the_usage_reported(
    tmp_path: Path, chat: Any, body: dict[str, Any], counted: int
) -> None:
    probing = False

    def answer(sent: dict[str, Any]) -> Any:
        return httpx.Response(200, json=completion("ok", 2)) if probing else chat(sent)

    path = keys_file(tmp_path)
    async with microservice(StandinModelServer(chat=answer), llm_api_keys_file=path) as client:
        first = await client.post("/v1/chat/completions", json=body, headers=AUTH)
        assert first.status_code != 429
        probing = True
        assert await window_tokens(client, 512) == counted
        metrics = (await client.get("/metrics")).text
    reported = counted == 3 + 2
    prompt = (3 if reported else 0) + 3  # the usage reported: its own, if any, and the probe's
    assert f'llm_usvc_key_prompt_tokens_total{{key="r"}} {float(prompt)}' in metrics


@pytest.mark.parametrize("stream", [False, True], ids=["answer", "stream"])
async def test_a_client_gone_before_its_answer_gets_its_reservation_back(
    tmp_path: Path, stream: bool
) -> None:
    late = json_answer(200, orjson.dumps(completion("late", 1)))
    keys = str(keys_file(tmp_path))
    async with served(vllm([(1.0, late)]), llm_api_keys_file=keys) as (upstream, client):  # type: ignore[arg-type]
        with pytest.raises(httpx.ReadTimeout):
            body = {**CHAT, "stream": stream}
            await client.post("/v1/chat/completions", json=body, headers=AUTH, timeout=0.3)
        await until(lambda: upstream.closed > 0, 1.5)
        assert await window_tokens(client, 2048) == 0


async def test_a_client_gone_mid_stream_keeps_its_reservation_counted(tmp_path: Path) -> None:
    """vLLM generated for it: leaving before the usage chunk must not dodge the key's tpm."""
    pieces = [b"data: " + c + b"\n\n" for c in (chunk(), *[chunk(f"w{n}") for n in range(50)])]
    script = vllm([(0, SSE_HEAD), *[(0.02, chunked(p)) for p in pieces], (0.02, END)])
    keys = str(keys_file(tmp_path))
    async with served(script, llm_api_keys_file=keys) as (upstream, client):  # type: ignore[arg-type]
        async with client.stream("POST", "/v1/chat/completions", json=STREAM, headers=AUTH) as sent:
            async for _ in sent.aiter_raw():
                break  # the first event came: hang up
        remaining = int(sent.headers["x-ratelimit-remaining-tokens"])
        assert remaining == TPM - reservation(STREAM, 2048)  # counted at admission
        await until(lambda: upstream.closed > 0, 1)
        assert await window_tokens(client, 2048) == reservation(STREAM, 2048)


async def test_a_spent_day_budget_is_429_budget_exceeded_until_midnight(tmp_path: Path) -> None:
    path = keys_file(tmp_path, "tokens_per_day: 50")
    async with microservice(answering(60), llm_api_keys_file=path) as client:
        first = await client.post("/v1/chat/completions", json=CHAT, headers=AUTH)
        assert first.status_code == 200  # 0 < 50: admitted; it used 63
        for _ in range(50):  # settled in the background: wait for it
            refused = await client.post("/v1/chat/completions", json=CHAT, headers=AUTH)
            if refused.status_code == 429:
                break
        metrics = (await client.get("/metrics")).text
    now = datetime.now(UTC)
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    error = refused.json()["error"]
    assert refused.status_code == 429
    assert (error["type"], error["code"]) == ("budget_exceeded", "budget_exceeded")
    assert "`r`" in error["message"] and "per UTC day" in error["message"]
    assert midnight.strftime("%Y-%m-%dT%H:%M:%SZ") in error["message"]
    retry_after = int(refused.headers["retry-after"])
    assert abs(retry_after - (midnight.timestamp() - time.time())) <= 5
    assert 'llm_usvc_key_budget_remaining_tokens{key="r",period="day"} 0.0' in metrics
    assert 'llm_usvc_key_rate_limited_total{key="r",limit="tokens_per_day"} 1.0' in metrics
