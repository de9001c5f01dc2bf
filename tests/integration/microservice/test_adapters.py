"""LoRA adapters through the microservice, on real vLLM: the session's LoRA server (the tiny
model with LoRA on, one adapter listed at start) beside the session's chat server (the same
model, LoRA off) as replicas of one base model. A request for an adapter goes only where it is
held; one that no replica holds is loaded once, by the first request, on the replica picked;
keys cover adapters; and without a models file the adapters vLLM lists are served too."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.processes import Server
from harness.tiny_lora import LISTED_ADAPTER
from tests.integration.microservice.helpers import metric, microservice

pytestmark = pytest.mark.integration

LOADED = "tiny-lora-team-b"  # vLLM's name for the adapter the microservice loads
KEY, TEAM_A_KEY = "sk-adapters-all", "sk-adapters-team-a"


@pytest.fixture(scope="module")
def usvc(
    vllm_server: Server,
    vllm_lora_server: Server,
    tiny_model: Path,
    tiny_adapters: tuple[Path, Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Server]:
    """`tiny`: both servers; `solo`: the LoRA server alone (the one that can load adapters)."""
    folder = tmp_path_factory.mktemp("adapters")
    models, keys = folder / "models.yaml", folder / "keys.yaml"
    both = f"[{vllm_lora_server.base_url}, {vllm_server.base_url}]"
    models.write_text(
        "models:\n"
        f"  - {{name: tiny, endpoints: {both}, served_model_name: '{tiny_model}'}}\n"
        f"  - {{name: solo, endpoints: {vllm_lora_server.base_url}, "
        f"served_model_name: '{tiny_model}'}}\n"
        f"  - {{name: team-a, kind: adapter, base: tiny, served_model_name: {LISTED_ADAPTER}}}\n"
        f"  - {{name: team-b, kind: adapter, base: solo, served_model_name: {LOADED}, "
        f"path: '{tiny_adapters[1]}'}}\n"
        f"  - {{name: team-c, kind: adapter, base: solo, path: '{folder / 'missing'}'}}\n"
    )
    keys.write_text(
        f"keys:\n  - {{name: all, key: {KEY}}}\n"
        f"  - {{name: team-a, key: {TEAM_A_KEY}, models: [team-a]}}\n"
    )
    with microservice(
        "adapters", vllm_server.base_url, str(tiny_model),
        LLM_MODELS_FILE=str(models), LLM_API_KEYS_FILE=str(keys),
    ) as server:  # fmt: skip
        yield server
    httpx.post(  # the LoRA server is the session's: leave it as it was
        vllm_lora_server.base_url + "/v1/unload_lora_adapter", json={"lora_name": LOADED}
    )


def complete(usvc: Server, model: str, key: str = KEY) -> httpx.Response:
    body = {"model": model, "prompt": "the model server answers", "max_tokens": 8,
            "temperature": 0, "return_token_ids": True}  # fmt: skip
    return httpx.post(
        usvc.base_url + "/v1/completions", json=body,
        headers={"Authorization": f"Bearer {key}"}, timeout=60,
    )  # fmt: skip


def token_ids(reply: httpx.Response) -> list[int]:
    assert reply.status_code == 200, reply.text
    return list(reply.json()["choices"][0]["token_ids"])


def sent_to(usvc: Server, replica: Server) -> float:
    text = httpx.get(usvc.base_url + "/metrics").text
    return metric(text, "llm_usvc_replica_requests_total", f'replica="{replica.base_url}"')


def test_an_adapter_goes_only_to_the_replicas_that_hold_it(
    usvc: Server, vllm_server: Server, vllm_lora_server: Server
) -> None:
    base = token_ids(complete(usvc, "tiny"))
    before = sent_to(usvc, vllm_server), sent_to(usvc, vllm_lora_server)
    adapted = [token_ids(complete(usvc, "team-a")) for _ in range(6)]
    after = sent_to(usvc, vllm_server), sent_to(usvc, vllm_lora_server)
    assert after[0] == before[0] and after[1] == before[1] + 6
    assert all(ids == adapted[0] for ids in adapted) and adapted[0] != base


def test_an_adapter_no_replica_holds_is_loaded_once_by_the_first_requests(
    usvc: Server, vllm_lora_server: Server
) -> None:
    async def four() -> list[httpx.Response]:
        return await asyncio.gather(
            *(asyncio.to_thread(complete, usvc, "team-b") for _ in range(4))
        )

    replies = asyncio.run(four())
    answers = {tuple(token_ids(reply)) for reply in replies}
    assert len(answers) == 1 and answers != {tuple(token_ids(complete(usvc, "solo")))}
    text = httpx.get(usvc.base_url + "/metrics").text
    assert metric(text, "llm_usvc_adapter_loads_total", f'adapter="{LOADED}",outcome="loaded"') == 1
    listed = httpx.get(vllm_lora_server.base_url + "/v1/models").json()["data"]
    assert LOADED in {card["id"] for card in listed}


def test_an_adapter_that_cannot_be_loaded_is_a_502_naming_it(usvc: Server) -> None:
    reply = complete(usvc, "team-c")
    assert reply.status_code == 502, reply.text
    assert "could not load the adapter `team-c`" in reply.json()["error"]["message"]
    token_ids(complete(usvc, "team-a"))  # the others are unaffected


def test_keys_cover_adapters_and_models_lists_them(usvc: Server) -> None:
    assert complete(usvc, "team-a", TEAM_A_KEY).status_code == 200
    refused = complete(usvc, "tiny", TEAM_A_KEY)
    assert refused.status_code == 403, refused.text
    headers = {"Authorization": f"Bearer {TEAM_A_KEY}"}
    cards = httpx.get(usvc.base_url + "/v1/models", headers=headers).json()["data"]
    assert [(c["id"], c["kind"], c.get("parent")) for c in cards] == [("team-a", "adapter", "tiny")]


def test_without_a_models_file_the_adapters_vllm_lists_are_served(
    vllm_lora_server: Server, tiny_model: Path
) -> None:
    with microservice("adapters-listed", vllm_lora_server.base_url, str(tiny_model)) as server:
        cards: dict[str, Any] = {}
        for _ in range(50):  # the first check of the replica lists them
            cards = {c["id"]: c for c in httpx.get(server.base_url + "/v1/models").json()["data"]}
            if LISTED_ADAPTER in cards:
                break
            asyncio.run(asyncio.sleep(0.2))
        assert cards[LISTED_ADAPTER]["kind"] == "adapter"
        assert cards[LISTED_ADAPTER]["parent"] == str(tiny_model)
        assert token_ids(complete(server, LISTED_ADAPTER)) != token_ids(complete(server, ""))
