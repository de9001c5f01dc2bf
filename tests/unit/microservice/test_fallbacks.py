"""Fallbacks between models, in process, in front of STAND-IN replicas (not vLLM): a model whose
replicas are down, whose waiting room refuses, or whose context is too short passes the request
to the next model of its list. The real-vLLM version is in
tests/integration/microservice/test_tenancy.py."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx

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

FIRST, SECOND = "http://first:8000", "http://second:8000"
CHAT = {"model": "main", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}


def answering(text: str, max_model_len: int = 512) -> StandinModelServer:
    def answer(body: dict[str, Any]) -> httpx.Response:
        if body.get("stream"):
            return streamed([sse(chunk(), chunk(text), usage_chunk(1))])
        return httpx.Response(200, json={**completion(text, 1), "model": text})

    return StandinModelServer(chat=answer, models=[{"id": MODEL, "max_model_len": max_model_len}])


def models_file(tmp_path: Path, fallbacks: str = "[spare]") -> Path:
    path = tmp_path / "models.yaml"
    path.write_text(
        "models:\n"
        f"  - {{name: main, endpoints: {FIRST}, served_model_name: {MODEL}, "
        f"fallbacks: {fallbacks}}}\n"
        f"  - {{name: spare, endpoints: {SECOND}, served_model_name: {MODEL}}}\n"
    )
    return path


def fell_back(metrics: str) -> list[str]:
    return [line for line in metrics.splitlines() if line.startswith("llm_usvc_fallbacks_total")]


async def test_a_model_with_no_replica_up_is_answered_by_its_fallback(tmp_path: Path) -> None:
    first, second = answering("first"), answering("second")
    first.refuse = True
    async with microservice(
        {FIRST: first, SECOND: second}, llm_models_file=models_file(tmp_path)
    ) as client:
        replies = [await client.post("/v1/chat/completions", json=CHAT) for _ in range(3)]
        stream_reply = await client.post("/v1/chat/completions", json={**CHAT, "stream": True})
        metrics = (await client.get("/metrics")).text
    assert [r.json()["model"] for r in replies] == ["second"] * 3
    assert stream_reply.status_code == 200 and len(second.received) == 4
    assert fell_back(metrics) == [
        'llm_usvc_fallbacks_total{from="main",reason="unavailable",to="spare"} 4.0'
    ]


async def test_a_full_waiting_room_passes_the_request_on(tmp_path: Path) -> None:
    release = asyncio.Event()

    async def held(body: dict[str, Any]) -> httpx.Response:
        await release.wait()
        return httpx.Response(200, json={**completion("first", 1), "model": "first"})

    first, second = StandinModelServer(chat=held), answering("second")
    limits = {"llm_max_inflight_per_replica": 1, "llm_queue_size": 0}
    async with microservice(
        {FIRST: first, SECOND: second}, llm_models_file=models_file(tmp_path), **limits
    ) as client:
        busy = asyncio.create_task(client.post("/v1/chat/completions", json=CHAT))
        await asyncio.sleep(0.05)
        passed_on = await client.post("/v1/chat/completions", json=CHAT)
        release.set()
        await busy
        metrics = (await client.get("/metrics")).text
    assert passed_on.json()["model"] == "second"
    assert 'reason="overloaded"' in fell_back(metrics)[0]


async def test_a_budget_over_the_context_goes_to_a_model_that_holds_it(tmp_path: Path) -> None:
    first, second = answering("first", max_model_len=64), answering("second", max_model_len=4096)
    async with microservice(
        {FIRST: first, SECOND: second}, llm_models_file=models_file(tmp_path)
    ) as client:
        fits = await client.post("/v1/chat/completions", json=CHAT)
        long = await client.post("/v1/chat/completions", json={**CHAT, "max_tokens": 1000})
        too_long = await client.post("/v1/chat/completions", json={**CHAT, "max_tokens": 5000})
    assert fits.json()["model"] == "first" and long.json()["model"] == "second"
    assert too_long.status_code == 422 and "64" in too_long.json()["error"]["message"]


async def test_vllms_context_refusal_goes_to_the_fallback_other_refusals_stand(
    tmp_path: Path,
) -> None:
    def refusing(body: dict[str, Any]) -> httpx.Response:
        if body["messages"][0]["content"] == "long":
            message = "This model's maximum context length is 512 tokens. However, ..."
        else:
            message = "temperature must be positive"
        return httpx.Response(400, json={"error": {"message": message, "type": "BadRequest"}})

    first, second = StandinModelServer(chat=refusing), answering("second")
    long = {**CHAT, "messages": [{"role": "user", "content": "long"}]}
    async with microservice(
        {FIRST: first, SECOND: second}, llm_models_file=models_file(tmp_path)
    ) as client:
        passed_on = await client.post("/v1/chat/completions", json=long)
        refused = await client.post("/v1/chat/completions", json=CHAT)
    assert passed_on.json()["model"] == "second"
    assert refused.status_code == 400 and len(second.received) == 1


async def test_a_fallback_the_key_may_not_use_is_passed_over(tmp_path: Path) -> None:
    keys = tmp_path / "keys.yaml"
    keys.write_text("keys:\n  - {name: t, key: key-of-team-t, models: [main]}\n")
    first, second = answering("first"), answering("second")
    first.refuse = True
    async with microservice(
        {FIRST: first, SECOND: second}, llm_models_file=models_file(tmp_path),
        llm_api_keys_file=keys,
    ) as client:  # fmt: skip
        reply = await client.post(
            "/v1/chat/completions", json=CHAT, headers={"Authorization": "Bearer key-of-team-t"}
        )
    assert reply.status_code == 503 and second.received == []
