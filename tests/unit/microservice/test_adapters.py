"""LoRA adapters on their base model's replicas, in process against a STAND-IN client (not
vLLM; it answers as vLLM 0.32 does, tests/integration/model_server/test_lora_serving.py pins
that): which replicas a request may go to, one run-time load for concurrent requests, the
adapters a replica lists, and adapters the models file names or the replicas hold."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from prometheus_client import CollectorRegistry

from microservice.config.catalog import Catalog
from microservice.errors import AdapterLoadFailed, AdapterUnavailable
from microservice.routing.adapters import AdapterLoads, serving
from microservice.routing.metrics import RoutingMetrics
from microservice.routing.model_info import ModelInfo
from microservice.routing.probe import probe
from microservice.routing.replica import Replica
from microservice.upstream.client import Reply
from microservice.upstream.model_call import Adapter
from tests.unit.microservice.standin_model_server import MODEL, StandinModelServer, completion
from tests.unit.microservice.standin_model_server import microservice as standin_microservice

BASE = "org/base"


class StandinClient:
    """Answers ``/v1/load_lora_adapter`` slowly, as scripted; ``/health``, ``/v1/models`` and
    ``/metrics`` as a replica holding ``listed``."""

    def __init__(self, load: Reply, listed: tuple[str, ...] = ()) -> None:
        self.load = load
        self.listed = listed
        self.loads: list[dict[str, Any]] = []

    async def get(self, base_url: str, path: str, timeout_s: float) -> Reply:
        if path == "/v1/models":
            data = [{"id": BASE, "parent": None, "max_model_len": 512}]
            data += [{"id": name, "parent": BASE, "max_model_len": None} for name in self.listed]
            return Reply(200, orjson.dumps({"object": "list", "data": data}))
        return Reply(200, b"")

    async def post(
        self, base_url: str, path: str, body: bytes, headers: Mapping[str, str]
    ) -> Reply:
        assert path == "/v1/load_lora_adapter"
        self.loads.append(orjson.loads(body))
        await asyncio.sleep(0.05)
        return self.load


def replicas(*adapters: frozenset[str]) -> list[Replica]:
    return [Replica(f"http://r{i}:8000", healthy=True, adapters=a) for i, a in enumerate(adapters)]


def test_an_adapter_goes_where_it_is_held_or_where_it_can_be_loaded() -> None:
    pool = replicas(frozenset(), frozenset({"sql"}), frozenset({"sql", "hr"}))
    assert serving(pool, None, 1) == pool
    assert [r.url for r in serving(pool, Adapter("sql"), 1)] == [pool[1].url, pool[2].url]
    assert serving(pool, Adapter("legal", "/adapters/legal"), 1) == pool  # loaded where picked
    with pytest.raises(AdapterUnavailable) as caught:
        serving(pool, Adapter("legal"), 7)
    assert caught.value.status == 503 and caught.value.retry_after == 7
    assert "`legal`" in caught.value.message and "`path`" in caught.value.message


async def test_concurrent_requests_wait_for_one_load() -> None:
    client = StandinClient(Reply(200, b"Success: LoRA adapter 'legal' added successfully."))
    metrics = RoutingMetrics(CollectorRegistry())
    loads = AdapterLoads(client, metrics)  # type: ignore[arg-type]
    replica = replicas(frozenset())[0]
    adapter = Adapter("legal", "/adapters/legal")
    await asyncio.gather(*(loads.ensure(replica, adapter) for _ in range(5)))
    assert client.loads == [{"lora_name": "legal", "lora_path": "/adapters/legal"}]
    assert replica.adapters == {"legal"}
    await loads.ensure(replica, adapter)  # held: no load
    assert len(client.loads) == 1
    assert metrics.adapter_loads.labels("legal", "loaded")._value.get() == 1


async def test_a_load_another_router_won_counts_and_a_failed_one_says_why() -> None:
    metrics = RoutingMetrics(CollectorRegistry())
    raced = {"error": {"message": "The lora adapter 'a' has already been loaded. If ..."}}
    replica = replicas(frozenset())[0]
    loads = AdapterLoads(StandinClient(Reply(400, orjson.dumps(raced))), metrics)  # type: ignore[arg-type]
    await loads.ensure(replica, Adapter("a", "/p"))
    assert replica.adapters == {"a"}
    off = AdapterLoads(StandinClient(Reply(404, b'{"detail":"Not Found"}')), metrics)  # type: ignore[arg-type]
    with pytest.raises(AdapterLoadFailed) as caught:
        await off.ensure(replicas(frozenset())[0], Adapter("b", "/q"))
    assert caught.value.status == 502 and "VLLM_ALLOW_RUNTIME_LORA=true" in caught.value.message
    wrong = {"error": {"message": "Loading lora c failed: No adapter found for /r"}}
    bad = AdapterLoads(StandinClient(Reply(404, orjson.dumps(wrong))), metrics)  # type: ignore[arg-type]
    with pytest.raises(AdapterLoadFailed, match="No adapter found for /r"):
        await bad.ensure(replicas(frozenset())[0], Adapter("c", "/r"))
    assert metrics.adapter_loads.labels("c", "failed")._value.get() == 1


async def test_a_probe_learns_the_adapters_a_replica_lists_and_follows_them() -> None:
    info = ModelInfo(BASE)
    client = StandinClient(Reply(200, b""), listed=("sql",))
    replica = Replica("http://r0:8000")
    await probe(client, replica, info, 1.0)  # type: ignore[arg-type]
    assert replica.healthy and replica.adapters == {"sql"}
    client.listed = ("sql", "hr")  # loaded there since: seen at the next check
    await probe(client, replica, info, 1.0)  # type: ignore[arg-type]
    assert replica.adapters == {"sql", "hr"}


def test_the_models_file_names_adapters_of_a_chat_model() -> None:
    catalog = Catalog.model_validate(
        {
            "models": [
                {"name": "chat", "endpoints": "http://a:8000"},
                {"name": "sql", "kind": "adapter", "base": "chat", "path": "/adapters/sql"},
            ]
        }
    )
    sql = catalog.models[1]
    assert catalog.default == "chat" and sql.serves == "chat" and sql.served_model_name == "sql"


async def test_a_replica_unreachable_for_the_load_passes_it_to_another(tmp_path: Path) -> None:
    """Replica A (preferred: B's engine has a queue) stops answering after its first check; the
    adapter's load moves to B, which serves the request; A leaves the rotation."""
    a, b = "http://replica-a:8000", "http://replica-b:8000"
    models = [{"id": MODEL, "max_model_len": 512}]

    def answer(body: dict[str, Any]) -> httpx.Response:
        if "lora_name" in body:
            return httpx.Response(200, text=f"Success: LoRA adapter '{body['lora_name']}' added")
        return httpx.Response(200, json=completion("adapted", 2))

    standins = {
        a: StandinModelServer(chat=answer, models=models),
        b: StandinModelServer(chat=answer, models=models, waiting=3),
    }
    path = tmp_path / "models.yaml"
    path.write_text(
        f"models:\n  - {{name: base, endpoints: [{a}, {b}], served_model_name: {MODEL}}}\n"
        "  - {name: team, kind: adapter, base: base, path: /adapters/team}\n"
    )
    async with standin_microservice(standins, llm_models_file=str(path)) as client:
        before = (await client.get("/v1/health_check")).json()["models"]["team"]["replicas"]
        assert [r["healthy"] for r in before] == [True, True]  # both checked once
        standins[a].refuse = True
        body = {"model": "team", "messages": [{"role": "user", "content": "hi"}]}
        reply = await client.post("/v1/chat/completions", json=body)
        health = (await client.get("/v1/health_check")).json()
    assert reply.status_code == 200, reply.text
    assert [r.get("lora_name") for r in standins[b].received] == ["team", None]
    assert standins[b].received[1]["model"] == "team"
    replicas = {r["address"]: r["healthy"] for r in health["models"]["team"]["replicas"]}
    assert replicas == {a: False, b: True}
