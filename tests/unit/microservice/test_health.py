"""Readiness and the model's context length, in process, in front of a STAND-IN model server."""

from __future__ import annotations

import asyncio

import httpx

from microservice.routing.pool import CHECK_NOW_SPACING_S
from tests.unit.microservice.standin_model_server import (
    StandinModelServer,
    completion,
    microservice,
)


async def test_unreachable_then_ready_failure_never_cached() -> None:
    standin = StandinModelServer(refuse=True)
    async with microservice(standin, llm_health_cache_s=60) as client:
        down = await client.get("/v1/health_check")
        assert down.status_code == 503
        assert "unreachable" in down.json()["model_server"]["reason"]
        standin.refuse = False
        up = await client.get("/v1/health_check")
        assert up.status_code == 200, up.text
        assert up.json()["status"] == "ok" and up.json()["max_model_len"] == 512


async def test_loading_and_wrong_model_say_why() -> None:
    standin = StandinModelServer(health_status=503)
    async with microservice(standin) as client:
        loading = (await client.get("/v1/health_check")).json()
        assert loading["model_server"]["reason"] == "model server is not ready (health 503)"
        standin.health_status = 200
        standin.models = [{"id": "other-model", "max_model_len": 64}]
        wrong = await client.get("/v1/health_check")
    assert wrong.status_code == 503
    assert "'standin-model' is not served (served: ['other-model'])" in wrong.text


async def test_context_length_is_learned_on_first_contact_without_a_health_check() -> None:
    """vLLM was away when the service started (its first probe failed) and nobody asked the
    health check since: the first request checks the replicas itself, so it is served at once
    and the OPEA default of 1024 new tokens is not sent to a 512-token model."""
    standin = StandinModelServer(
        refuse=True, chat=lambda body: httpx.Response(200, json=completion("hi", 1))
    )
    async with microservice(standin) as client:
        away = await client.post("/v1/chat/completions", json={"messages": {"user": "x"}})
        assert away.status_code == 503 and away.headers["retry-after"]
        assert "unreachable" in away.json()["error"]["message"]
        standin.refuse = False
        await asyncio.sleep(CHECK_NOW_SPACING_S)  # on-demand checks are spaced out
        back = await client.post(
            "/v1/chat/completions", json={"messages": {"user": "x"}, "streaming": False}
        )
        assert back.status_code == 200, back.text
        assert back.json()["text"] == "hi"
        assert "max_tokens" not in standin.received[0]
        models = (await client.get("/v1/models")).json()
    assert models["data"][0]["max_model_len"] == 512
