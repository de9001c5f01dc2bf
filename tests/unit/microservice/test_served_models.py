"""Models by name in process, each on its own STAND-IN replica (not vLLM): the models list,
routing by ``model``, the default for OPEA-form requests, 404 / 400 for an unknown model or the
wrong kind. Real vLLM versions: tests/integration/microservice/test_production_api.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.unit.microservice.standin_model_server import StandinModelServer, microservice

CHAT_A, CHAT_B, EMBED = "http://chat-a:8000", "http://chat-b:8000", "http://embed:8000"
MESSAGES = [{"role": "user", "content": "hi"}]


def replying(served: str, kind: str = "chat") -> StandinModelServer:
    def answer(body: dict[str, Any]) -> httpx.Response:
        if kind == "embedding":
            data = [{"object": "embedding", "index": 0, "embedding": [0.5, 0.25]}]
            usage = {"prompt_tokens": 1, "total_tokens": 1}
            return httpx.Response(200, json={"object": "list", "data": data, "usage": usage})
        message = {"role": "assistant", "content": f"from {served}"}
        return httpx.Response(
            200,
            json={
                "object": "chat.completion",
                "model": body["model"],
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            },
        )

    return StandinModelServer(chat=answer, models=[{"id": served, "max_model_len": 256}])


def models_file(tmp_path: Path) -> Path:
    path = tmp_path / "models.yaml"
    path.write_text(
        f"""default: small
models:
  - name: big
    endpoints: {CHAT_A}
    served_model_name: org/big
  - name: small
    endpoints: [{CHAT_B}]
  - name: embed
    kind: embedding
    endpoints: {EMBED}
"""
    )
    return path


def standins() -> dict[str, StandinModelServer]:
    return {
        CHAT_A: replying("org/big"),
        CHAT_B: replying("small"),
        EMBED: replying("embed", "embedding"),
    }


async def test_models_are_listed_and_requests_route_by_model(tmp_path: Path) -> None:
    replicas = standins()
    async with microservice(replicas, llm_models_file=models_file(tmp_path)) as client:
        listed = (await client.get("/v1/models")).json()
        assert [(m["id"], m["kind"]) for m in listed["data"]] == [
            ("big", "chat"),
            ("small", "chat"),
            ("embed", "embedding"),
        ]
        big = await client.post("/v1/chat/completions", json={"model": "big", "messages": MESSAGES})
        assert big.json()["choices"][0]["message"]["content"] == "from org/big"
        assert replicas[CHAT_A].received[-1]["model"] == "org/big"  # the served name
        opea = await client.post(
            "/v1/chat/completions", json={"messages": {"user": "hi"}, "streaming": False}
        )
        assert opea.json()["text"] == "from small"  # the default model
        unnamed = await client.post("/v1/chat/completions", json={"messages": MESSAGES})
        assert unnamed.json()["choices"][0]["message"]["content"] == "from small"
        vectors = await client.post("/v1/embeddings", json={"model": "embed", "input": ["a"]})
        assert vectors.json()["data"][0]["embedding"] == [0.5, 0.25]
        assert replicas[EMBED].received[-1] == {"model": "embed", "input": ["a"]}
        text = await client.post("/v1/completions", json={"model": "big", "prompt": "x", "n": 2})
        assert text.status_code == 200
        assert replicas[CHAT_A].received[-1] == {"model": "org/big", "prompt": "x", "n": 2}


async def test_unknown_model_is_404_and_the_wrong_kind_400(tmp_path: Path) -> None:
    replicas = standins()
    async with microservice(replicas, llm_models_file=models_file(tmp_path)) as client:
        unknown = await client.post(
            "/v1/chat/completions", json={"model": "nope", "messages": MESSAGES}
        )
        assert unknown.status_code == 404
        error = unknown.json()["error"]
        assert (error["code"], error["param"]) == ("model_not_found", "model")
        assert "big, small, embed" in error["message"]
        wrong = await client.post("/v1/embeddings", json={"model": "big", "input": "x"})
        assert wrong.status_code == 400
        assert wrong.json()["error"]["code"] == "model_not_supported"
        wrong = await client.post(
            "/v1/chat/completions", json={"model": "embed", "messages": MESSAGES}
        )
        assert wrong.status_code == 400 and "/v1/embeddings" in wrong.json()["error"]["message"]
        assert all(not r.received for r in replicas.values())


async def test_health_lists_every_model(tmp_path: Path) -> None:
    replicas = standins()
    replicas[EMBED].health_status = 503
    async with microservice(replicas, llm_models_file=models_file(tmp_path)) as client:
        answer = await client.get("/v1/health_check")
        body = answer.json()
        assert answer.status_code == 200  # the default model is ready
        assert body["model"] == "small"
        assert body["models"]["small"]["ready"] is True
        assert body["models"]["embed"]["ready"] is False


async def test_openai_form_accepts_opea_enterprise_max_new_tokens(tmp_path: Path) -> None:
    replicas = standins()
    async with microservice(replicas, llm_models_file=models_file(tmp_path)) as client:
        body = {"model": "small", "messages": MESSAGES, "max_new_tokens": 7, "stream": False}
        assert (await client.post("/v1/chat/completions", json=body)).status_code == 200
        sent = replicas[CHAT_B].received[-1]
        assert sent["max_tokens"] == 7 and "max_new_tokens" not in sent
        body["max_new_tokens"] = 9999  # over the model's 256
        refused = await client.post("/v1/chat/completions", json=body)
        assert refused.status_code == 422 and refused.json()["error"]["param"] == "max_new_tokens"


async def test_langchain_connector_refuses_messages_it_cannot_read_as_422(tmp_path: Path) -> None:
    """Found by the fuzz test: LangChain's own message conversion failed and was answered 502
    as if the model server had failed (and the replica counted as failing)."""
    replicas = standins()
    async with microservice(
        replicas, llm_models_file=models_file(tmp_path), llm_connector="langchain"
    ) as client:
        for stream in (False, True):
            body = {"messages": [{"role": "tool", "content": []}], "stream": stream}
            answer = await client.post("/v1/chat/completions", json=body)
            assert answer.status_code == 422, answer.text
            assert answer.json()["error"]["param"] == "messages"
    assert not replicas[CHAT_B].received


async def test_openai_chat_options_reach_vllm_untouched(tmp_path: Path) -> None:
    replicas = standins()
    options: dict[str, Any] = {
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
        "tool_choice": {"type": "function", "function": {"name": "f"}},
        "response_format": {"type": "json_schema", "json_schema": {"name": "p", "schema": {}}},
        "logprobs": True,
        "top_logprobs": 2,
        "n": 2,
        "seed": 3,
        "stream_options": {"include_usage": True, "continuous_usage_stats": True},
    }
    async with microservice(replicas, llm_models_file=models_file(tmp_path)) as client:
        body = {"model": "small", "messages": MESSAGES, **options}
        assert (await client.post("/v1/chat/completions", json=body)).status_code == 200
    assert replicas[CHAT_B].received[-1] == {**body, "model": "small"}
