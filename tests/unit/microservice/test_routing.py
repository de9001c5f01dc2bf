"""Routing, failover and admission control in process, in front of two STAND-IN replicas (not
vLLM): the real-vLLM versions of these are in tests/integration/microservice/test_replicas.py."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest

from microservice.routing.model_info import ModelInfo
from microservice.routing.probe import probe
from microservice.routing.replica import Replica
from microservice.settings import MicroserviceSettings
from tests.sse import sse_data
from tests.unit.microservice.standin_model_server import (
    MODEL,
    StandinClient,
    StandinModelServer,
    chunk,
    completion,
    microservice,
    sse,
    streamed,
    usage_chunk,
)

A, B = "http://replica-a:8000", "http://replica-b:8000"
CONNECTORS = ("generic", "langchain")
CHAT = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
STREAM = {**CHAT, "stream": True}


def answering(text: str) -> StandinModelServer:
    def answer(body: dict[str, Any]) -> httpx.Response:
        if body.get("stream"):
            return streamed([sse(chunk(), chunk(text), usage_chunk(1))])
        return httpx.Response(200, json=completion(text, 1))

    return StandinModelServer(chat=answer)


def text_of(reply: httpx.Response) -> str:
    if reply.headers["content-type"].startswith("text/event-stream"):
        events = [json.loads(e) for e in sse_data(reply.text)[:-1]]
        return "".join(e["choices"][0]["delta"].get("content", "") for e in events)
    return str(reply.json()["choices"][0]["message"]["content"])


async def test_both_replicas_take_load_and_health_lists_them() -> None:
    replicas = {A: answering("a"), B: answering("b")}
    async with microservice(replicas) as client:
        texts = [text_of(await client.post("/v1/chat/completions", json=CHAT)) for _ in range(6)]
        health = (await client.get("/v1/health_check")).json()
    assert texts.count("a") == texts.count("b") == 3
    assert [r["address"] for r in health["replicas"]] == [A, B]
    assert health["status"] == "ok" and all(r["healthy"] for r in health["replicas"])


@pytest.mark.parametrize("routing", ["session", "prefix"])
async def test_a_session_or_a_prefix_stays_on_one_replica(routing: str) -> None:
    replicas = {A: answering("a"), B: answering("b")}
    async with microservice(replicas, llm_routing=routing) as client:
        seen: dict[str, set[str]] = {}
        for i in range(12):
            user = f"user-{i % 4}"
            body = {**CHAT, "messages": [{"role": "user", "content": f"{user} asks"}]}
            headers = {"X-Session-Id": user} if routing == "session" else {}
            reply = await client.post("/v1/chat/completions", json=body, headers=headers)
            seen.setdefault(user, set()).add(text_of(reply))
    assert all(len(texts) == 1 for texts in seen.values()), seen
    assert {t for texts in seen.values() for t in texts} == {"a", "b"}  # 4 keys use both


async def test_session_falls_back_to_the_openai_user_field() -> None:
    replicas = {A: answering("a"), B: answering("b")}
    async with microservice(replicas, llm_routing="session") as client:
        texts = {
            text_of(await client.post("/v1/chat/completions", json={**CHAT, "user": "u1"}))
            for _ in range(6)
        }
    assert len(texts) == 1


@pytest.mark.parametrize("connector", CONNECTORS)
@pytest.mark.parametrize("body", [CHAT, STREAM], ids=["json", "stream"])
async def test_a_dead_replica_fails_no_request(connector: str, body: dict[str, Any]) -> None:
    dead, alive = answering("a"), answering("b")
    async with microservice({A: dead, B: alive}, llm_connector=connector) as client:
        assert (await client.get("/v1/health_check")).json()["model_server"]["ready"]
        dead.refuse = True  # SIGKILLed after its last good probe
        replies = [await client.post("/v1/chat/completions", json=body) for _ in range(4)]
        health = (await client.get("/v1/health_check")).json()
        metrics = (await client.get("/metrics")).text
    assert [r.status_code for r in replies] == [200] * 4
    assert {text_of(r) for r in replies} == {"b"}
    assert health["status"] == "ok" and not health["replicas"][0]["healthy"]
    assert "llm_usvc_retries_total 1.0" in metrics  # one try on the dead one, then it is out


async def test_a_replica_5xx_is_tried_on_the_other_but_a_4xx_is_not() -> None:
    failing = StandinModelServer(chat=lambda body: httpx.Response(500, json={"message": "boom"}))
    refusing = StandinModelServer(chat=lambda body: httpx.Response(400, json={"message": "no"}))
    async with microservice({A: failing, B: answering("b")}) as client:
        ok = [await client.post("/v1/chat/completions", json=CHAT) for _ in range(4)]
    assert [r.status_code for r in ok] == [200] * 4
    async with microservice({A: refusing, B: answering("b")}, llm_routing="round_robin") as client:
        codes = [
            (await client.post("/v1/chat/completions", json=CHAT)).status_code for _ in range(4)
        ]
    assert sorted(codes) == [200, 200, 400, 400]


async def test_no_healthy_replica_is_503_with_retry_after() -> None:
    replicas = {A: StandinModelServer(refuse=True), B: StandinModelServer(health_status=503)}
    async with microservice(replicas) as client:
        reply = await client.post("/v1/chat/completions", json=CHAT)
        health = await client.get("/v1/health_check")
    assert reply.status_code == 503 and int(reply.headers["retry-after"]) >= 1
    assert reply.json()["error"]["type"] == "upstream_unavailable"
    assert "not ready (health 503)" in reply.json()["error"]["message"]
    assert health.status_code == 503


class Held:
    """A replica that holds every chat request until released."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.standin = StandinModelServer(chat=self.answer)

    async def answer(self, body: dict[str, Any]) -> httpx.Response:
        await self.release.wait()
        return httpx.Response(200, json=completion("held", 1))


async def test_admission_queues_within_bounds_then_refuses_with_429() -> None:
    held = Held()
    limits = {"llm_max_inflight_per_replica": 1, "llm_queue_size": 1, "llm_queue_timeout_s": 30}
    async with microservice({A: held.standin}, **limits) as client:
        first = asyncio.create_task(client.post("/v1/chat/completions", json=CHAT))
        await asyncio.sleep(0.05)
        queued = asyncio.create_task(client.post("/v1/chat/completions", json=CHAT))
        await asyncio.sleep(0.05)
        refused = await client.post("/v1/chat/completions", json=CHAT)
        held.release.set()
        replies = [await first, await queued]
        metrics = (await client.get("/metrics")).text
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
    assert refused.json()["error"]["type"] == "rate_limit_error"
    assert [r.status_code for r in replies] == [200, 200]
    assert 'llm_usvc_rejected_total{reason="queue_full"} 1.0' in metrics


async def test_a_request_waits_at_most_the_queue_timeout() -> None:
    held = Held()
    limits = {"llm_max_inflight_per_replica": 1, "llm_queue_size": 4, "llm_queue_timeout_s": 0.2}
    async with microservice({A: held.standin}, **limits) as client:
        first = asyncio.create_task(client.post("/v1/chat/completions", json=CHAT))
        await asyncio.sleep(0.05)
        late = await client.post("/v1/chat/completions", json=CHAT)
        held.release.set()
        assert (await first).status_code == 200
    assert late.status_code == 429 and "within 0.2 s" in late.json()["error"]["message"]


async def test_a_returning_replica_is_used_as_soon_as_it_answers() -> None:
    away, other = answering("a"), answering("b")
    async with microservice({A: away, B: other}) as client:
        away.refuse = True
        for _ in range(2):
            await client.post("/v1/chat/completions", json=CHAT)
        away.refuse = False
        assert (await client.get("/v1/health_check")).json()["replicas"][0]["healthy"] is False
        other.refuse = True  # now only the returned one can answer: it must be checked again
        await asyncio.sleep(0.3)
        reply = await client.post("/v1/chat/completions", json=CHAT)
    assert reply.status_code == 200 and text_of(reply) == "a"


async def test_replicas_that_serve_other_models_answer_404_as_vllm_does() -> None:
    wrong = StandinModelServer(models=[{"id": "other", "max_model_len": 64}])
    async with microservice({A: wrong}) as client:
        reply = await client.post("/v1/chat/completions", json=CHAT)
        health = await client.get("/v1/health_check")
    assert reply.status_code == 404 and "does not exist" in reply.json()["error"]["message"]
    assert health.status_code == 503 and "not served" in health.text


async def test_one_slow_check_keeps_a_busy_replica_two_take_it_out() -> None:
    standin = answering("a")
    slow = {"on": False}

    answer = standin.handle

    def handle(request: httpx.Request) -> Any:
        if slow["on"] and request.url.path == "/health":
            raise httpx.ReadTimeout("busy engine (stand-in)", request=request)
        return answer(request)

    standin.handle = handle  # type: ignore[method-assign]
    replica, info = Replica(A), ModelInfo(MODEL)
    settings = MicroserviceSettings(llm_model_name=MODEL, llm_model_server_endpoint=A)
    client = StandinClient({A: standin}, settings)
    await probe(client, replica, info, 1.0)
    assert replica.healthy and info.max_model_len == 512
    slow["on"] = True
    await probe(client, replica, info, 1.0)
    assert replica.healthy  # one slow answer: still in
    await probe(client, replica, info, 1.0)
    assert not replica.healthy and "did not answer within 1 s" in replica.reason
    slow["on"] = False
    await probe(client, replica, info, 1.0)
    assert replica.healthy and replica.slow_checks == 0


async def test_slow_checks_never_take_out_a_replica_that_answers_requests() -> None:
    """Passive health: a request answered while the check waited says the replica is alive."""
    replica, info = Replica(A), ModelInfo(MODEL)
    standin = answering("a")
    answer = standin.handle

    def handle(request: httpx.Request) -> Any:
        if replica.healthy and request.url.path == "/health":
            replica.heard(time.monotonic())  # a request on it was answered meanwhile
            raise httpx.ReadTimeout("busy engine (stand-in)", request=request)
        return answer(request)

    standin.handle = handle  # type: ignore[method-assign]
    settings = MicroserviceSettings(llm_model_name=MODEL, llm_model_server_endpoint=A)
    client = StandinClient({A: standin}, settings)
    for _ in range(4):
        await probe(client, replica, info, 1.0)
    assert replica.healthy and replica.slow_checks == 0


async def test_a_replica_whose_check_hangs_gets_no_new_request_after_two_intervals() -> None:
    """Frozen: its sockets open, nothing answers. Before its check times out (5 s), it is
    taken out of the picks once that check has waited one probe interval."""
    frozen = asyncio.Event()
    a = answering("a")
    answer = a.handle

    def handle(request: httpx.Request) -> Any:
        if frozen.is_set():
            return asyncio.Event().wait()  # never answers
        return answer(request)

    a.handle = handle  # type: ignore[method-assign]
    settings = {"llm_routing": "round_robin", "llm_probe_interval_s": 0.2}
    async with microservice({A: a, B: answering("b")}, **settings) as client:
        for _ in range(100):  # until both replicas passed their first check
            health = (await client.get("/v1/health_check")).json()
            if all(r["healthy"] for r in health["replicas"]):
                break
            await asyncio.sleep(0.05)
        frozen.set()
        await asyncio.sleep(0.5)  # two intervals, and a little
        replies = [
            await asyncio.wait_for(client.post("/v1/chat/completions", json=CHAT), 2)
            for _ in range(4)
        ]
        health = (await client.get("/v1/health_check")).json()
    assert [text_of(r) for r in replies] == ["b"] * 4
    assert health["replicas"][0]["healthy"], health["replicas"]  # its check has not timed out
