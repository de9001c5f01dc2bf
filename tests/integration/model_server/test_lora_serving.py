"""LoRA adapters on a real vLLM CPU, turned on by the model server's settings: one adapter
listed at start (VLLM_LORA_MODULES), another loaded and unloaded at run time
(VLLM_ALLOW_RUNTIME_LORA), each answering greedily otherwise than the base model.

The session's LoRA server (tests/conftest.py), whose adapters (harness/tiny_lora.py) stay in
place while it runs: vLLM reads an adapter again whenever it swaps it back in, and its engine
dies if the folder is gone. What is loaded here is unloaded again.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.processes import Server
from harness.tiny_lora import LISTED_ADAPTER

pytestmark = pytest.mark.integration

STATIC = LISTED_ADAPTER
LOAD = "/v1/load_lora_adapter"
UNLOAD = "/v1/unload_lora_adapter"


@pytest.fixture
def lora_server(vllm_lora_server: Server) -> Server:
    return vllm_lora_server


@pytest.fixture
def adapters(tiny_adapters: tuple[Path, Path]) -> tuple[Path, Path]:
    return tiny_adapters


def post(server: Server, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(server.base_url + path, json=body, timeout=60)


def greedy(server: Server, model: str, endpoint: str) -> list[int]:
    """The token ids of a greedy answer: the random adapters' tokens often decode to ''."""
    ask: dict[str, Any] = (
        {"messages": [{"role": "user", "content": "tell me a story about a cat"}]}
        if endpoint == "chat"
        else {"prompt": "the model server answers"}
    )
    path = "/v1/chat/completions" if endpoint == "chat" else "/v1/completions"
    body = {"model": model, "max_tokens": 8, "temperature": 0, "return_token_ids": True, **ask}
    response = post(server, path, body)
    assert response.status_code == 200, response.text
    assert response.json()["model"] == model
    return list(response.json()["choices"][0]["token_ids"])


def served(server: Server) -> dict[str, dict[str, Any]]:
    response = httpx.get(server.base_url + "/v1/models", timeout=10)
    assert response.status_code == 200, response.text
    return {card["id"]: card for card in response.json()["data"]}


@pytest.mark.parametrize("endpoint", ["chat", "completions"])
def test_the_listed_adapter_answers_otherwise_than_the_base(
    lora_server: Server, tiny_model: Path, endpoint: str
) -> None:
    base = greedy(lora_server, str(tiny_model), endpoint)
    adapted = greedy(lora_server, STATIC, endpoint)
    assert adapted != base
    assert greedy(lora_server, STATIC, endpoint) == adapted  # greedy: the same every time
    assert greedy(lora_server, str(tiny_model), endpoint) == base  # the base is unchanged


def test_models_list_the_adapter_under_the_base(
    lora_server: Server, tiny_model: Path, adapters: tuple[Path, Path]
) -> None:
    cards = served(lora_server)
    assert cards[str(tiny_model)]["parent"] is None
    assert cards[STATIC]["parent"] == str(tiny_model)
    assert cards[STATIC]["root"] == str(adapters[0])


def test_an_adapter_loaded_at_run_time_serves_until_unloaded(
    lora_server: Server, tiny_model: Path, adapters: tuple[Path, Path]
) -> None:
    name = "tiny-lora-runtime"
    loaded = post(lora_server, LOAD, {"lora_name": name, "lora_path": str(adapters[1])})
    assert loaded.status_code == 200, loaded.text
    assert loaded.text == f"Success: LoRA adapter '{name}' added successfully."
    try:
        assert served(lora_server)[name]["parent"] == str(tiny_model)
        answer = greedy(lora_server, name, "completions")
        others = {
            tuple(greedy(lora_server, model, "completions")) for model in (str(tiny_model), STATIC)
        }
        assert tuple(answer) not in others  # its own weights: neither the base's nor seed 1's

        again = post(lora_server, LOAD, {"lora_name": name, "lora_path": str(adapters[1])})
        assert again.status_code == 400, again.text
        assert again.json()["error"]["type"] == "InvalidUserInput"
        assert "has already been loaded" in again.json()["error"]["message"]
    finally:
        unloaded = post(lora_server, UNLOAD, {"lora_name": name})
    assert unloaded.status_code == 200, unloaded.text
    assert unloaded.text == f"Success: LoRA adapter '{name}' removed successfully."
    assert name not in served(lora_server)
    gone = post(lora_server, "/v1/completions", {"model": name, "prompt": "hi", "max_tokens": 2})
    assert gone.status_code == 404, gone.text
    assert gone.json()["error"]["type"] == "NotFoundError"
    assert gone.json()["error"]["param"] == "model"
    twice = post(lora_server, UNLOAD, {"lora_name": name})
    assert twice.status_code == 404, twice.text
    assert "cannot be found" in twice.json()["error"]["message"]


def test_a_wrong_path_is_not_found_and_the_server_carries_on(
    lora_server: Server, tmp_path: Path
) -> None:
    for path in (tmp_path / "missing", tmp_path):  # nothing there; a folder with no adapter
        response = post(lora_server, LOAD, {"lora_name": "tiny-lora-wrong", "lora_path": str(path)})
        assert response.status_code == 404, response.text
        assert response.json()["error"]["type"] == "NotFoundError"
        assert "No adapter found" in response.json()["error"]["message"]
    assert "tiny-lora-wrong" not in served(lora_server)
    assert greedy(lora_server, STATIC, "completions")


@pytest.mark.parametrize(
    ("path", "ask"),
    [
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}]}),
        ("/v1/completions", {"prompt": "hi"}),
    ],
)
def test_an_adapter_that_is_not_loaded_is_not_found(
    lora_server: Server, path: str, ask: dict[str, Any]
) -> None:
    response = post(lora_server, path, {"model": "tiny-lora-never-loaded", "max_tokens": 2, **ask})
    assert response.status_code == 404, response.text
    error = response.json()["error"]
    assert (error["type"], error["param"], error["code"]) == ("NotFoundError", "model", 404)
    assert "`tiny-lora-never-loaded` does not exist" in error["message"]


def test_concurrent_loads_of_one_name_load_it_once(
    lora_server: Server, adapters: tuple[Path, Path]
) -> None:
    """vLLM holds a lock per adapter name: one load wins, the others are told it is loaded."""
    name = "tiny-lora-raced"
    body = {"lora_name": name, "lora_path": str(adapters[1])}

    async def load_four() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=lora_server.base_url, timeout=60) as http:
            return await asyncio.gather(*(http.post(LOAD, json=body) for _ in range(4)))

    try:
        statuses = sorted(response.status_code for response in asyncio.run(load_four()))
        assert statuses == [200, 400, 400, 400]
        assert name in served(lora_server)
    finally:
        post(lora_server, UNLOAD, {"lora_name": name})
