"""The production API against real vLLM CPU servers, with the openai SDK and an API key: models
by name (a chat model and an embedding model, each its own vLLM), completions and embeddings as
vLLM gives them, chat options passed through, and per-key limits shared through a real Redis by
two microservice processes."""

from __future__ import annotations

import base64
import json
import secrets
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import openai
import pytest

from harness.processes import Server
from harness.redis import redis_server
from tests.integration.microservice.helpers import microservice
from tests.otlp_receiver import OtlpReceiver, ReceivedSpan

pytestmark = pytest.mark.integration

KEY = "sk-" + secrets.token_hex(16)


@pytest.fixture(scope="module")
def config(
    tmp_path_factory: pytest.TempPathFactory,
    vllm_server: Server,
    vllm_embedding_server: Server,
    tiny_model: Path,
) -> Path:
    folder = tmp_path_factory.mktemp("usvc-config")
    (folder / "models.yaml").write_text(
        f"""models:
  - name: chat
    endpoints: {vllm_server.base_url}
    served_model_name: {tiny_model}
  - name: embed
    kind: embedding
    endpoints: [{vllm_embedding_server.base_url}]
    served_model_name: {tiny_model}
"""
    )
    (folder / "keys.yaml").write_text(f"keys:\n  - name: prod\n    key: {KEY}\n")
    return folder


@pytest.fixture(scope="module")
def usvc(config: Path, vllm_server: Server, tiny_model: Path) -> Iterator[Server]:
    files = {
        "LLM_MODELS_FILE": str(config / "models.yaml"),
        "LLM_API_KEYS_FILE": str(config / "keys.yaml"),
    }
    with microservice("production", vllm_server.base_url, str(tiny_model), **files) as server:
        yield server


@pytest.fixture
def client(usvc: Server) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=usvc.base_url + "/v1", api_key=KEY, max_retries=0) as sdk:
        yield sdk


def direct(server: Server, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """vLLM's own answer to the same request: the reference."""
    answer = httpx.post(server.base_url + path, json=body, timeout=120)
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def test_models_by_name_with_the_sdk(client: openai.OpenAI) -> None:
    assert [m.id for m in client.models.list()] == ["chat", "embed"]
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(
            model="nope", messages=[{"role": "user", "content": "hi"}], max_tokens=4
        )
    assert caught.value.code == "model_not_found"
    wrong_key = openai.OpenAI(base_url=str(client.base_url), api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong_key.models.list()


def test_completions_pass_echo_logprobs_n_stop_through(
    client: openai.OpenAI, vllm_server: Server, tiny_model: Path
) -> None:
    params: dict[str, Any] = {
        "prompt": "The cat",
        "max_tokens": 8,
        "temperature": 1.0,  # n > 1 needs sampling; the seed makes it repeatable
        "seed": 11,
        "echo": True,
        "logprobs": 2,
        "n": 2,
        "stop": ["zzz"],
    }
    expected = direct(vllm_server, "/v1/completions", {"model": str(tiny_model), **params})
    answer = client.completions.create(model="chat", **params)
    assert [c.text for c in answer.choices] == [c["text"] for c in expected["choices"]]
    assert answer.choices[0].text.startswith("The cat")  # echo
    assert answer.choices[0].logprobs is not None
    assert answer.choices[0].logprobs.tokens == expected["choices"][0]["logprobs"]["tokens"]
    assert answer.usage is not None and answer.usage.completion_tokens > 0
    stream = client.completions.create(
        model="chat", prompt="The cat", max_tokens=8, temperature=0, stream=True
    )
    streamed = "".join(chunk.choices[0].text for chunk in stream if chunk.choices)
    single = client.completions.create(model="chat", prompt="The cat", max_tokens=8, temperature=0)
    assert streamed == single.choices[0].text


def test_embeddings_as_float_and_base64(
    client: openai.OpenAI, vllm_embedding_server: Server, tiny_model: Path
) -> None:
    texts = ["a cat", "a dog"]
    expected = direct(
        vllm_embedding_server, "/v1/embeddings", {"model": str(tiny_model), "input": texts}
    )
    answer = client.embeddings.create(model="embed", input=texts, encoding_format="float")
    vectors = [d.embedding for d in answer.data]
    assert [len(v) for v in vectors] == [64, 64]
    assert vectors == [d["embedding"] for d in expected["data"]]
    one = client.embeddings.create(model="embed", input="a cat", encoding_format="float")
    assert one.data[0].embedding == vectors[0]
    raw = httpx.post(
        str(client.base_url) + "embeddings",
        json={"model": "embed", "input": "a cat", "encoding_format": "base64"},
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=60,
    ).json()
    packed = base64.b64decode(raw["data"][0]["embedding"])
    decoded = list(struct.unpack(f"<{len(packed) // 4}f", packed))
    assert decoded == pytest.approx(vectors[0], rel=1e-6)


def test_chat_options_pass_through(client: openai.OpenAI) -> None:
    answer = client.chat.completions.create(
        model="chat",
        messages=[{"role": "user", "content": "hi"}],
        max_tokens=4,
        temperature=1.0,
        n=2,
        seed=7,
        logprobs=True,
        top_logprobs=2,
    )
    assert len(answer.choices) == 2
    logprobs = answer.choices[0].logprobs
    assert logprobs is not None and logprobs.content
    assert len(logprobs.content[0].top_logprobs) == 2


def test_limits_hold_across_two_microservices_through_redis(
    tmp_path: Path, vllm_server: Server, tiny_model: Path
) -> None:
    keys = tmp_path / "keys.yaml"
    keys.write_text(f"keys:\n  - name: shared\n    key: {KEY}\n    rpm: 3\n")
    body = {
        "model": str(tiny_model),
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 2,
    }
    headers = {"Authorization": f"Bearer {KEY}"}
    with redis_server(Path("test-logs") / "redis-limits.log") as redis:
        env = {"LLM_API_KEYS_FILE": str(keys), "LLM_RATE_LIMIT_REDIS_URL": redis.url}
        with (
            microservice("redis-a", vllm_server.base_url, str(tiny_model), **env) as a,
            microservice("redis-b", vllm_server.base_url, str(tiny_model), **env) as b,
        ):
            codes = []
            for server in (a, b, a, b):
                answer = httpx.post(
                    server.base_url + "/v1/chat/completions", json=body, headers=headers, timeout=60
                )
                codes.append(answer.status_code)
            assert codes == [200, 200, 200, 429]
            health = httpx.get(b.base_url + "/v1/health_check", timeout=30).json()
            assert health["rate_limits"]["backend"] == "redis"
            redis.stop()
            served = httpx.post(
                a.base_url + "/v1/chat/completions", json=body, headers=headers, timeout=60
            )
            assert served.status_code == 200  # Redis down: served, counted per process
            health = httpx.get(a.base_url + "/v1/health_check", timeout=30).json()
            assert health["rate_limits"]["backend"] == "local"
            assert "redis" in health["rate_limits"]["reason"]
            assert KEY not in httpx.get(a.base_url + "/metrics", timeout=30).text


def test_json_schema_answer_parses_and_validates(client: openai.OpenAI) -> None:
    """vLLM's guided decoding through the microservice (the server runs with compact JSON:
    the random-weight model would otherwise pad with blanks until max_tokens)."""
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string", "maxLength": 8}, "age": {"type": "integer"}},
        "required": ["name", "age"],
        "additionalProperties": False,
    }
    answer = client.chat.completions.create(
        model="chat",
        messages=[{"role": "user", "content": "A person as JSON."}],
        max_tokens=120,
        temperature=0,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "person", "schema": schema},
        },
    )
    text = answer.choices[0].message.content or ""
    jsonschema.validate(json.loads(text), schema)


def test_a_clients_trace_continues_into_vllm(
    otlp_receiver: OtlpReceiver, vllm_server: Server, tiny_model: Path
) -> None:
    """The session's vLLM exports its spans to the same collector stand-in: vLLM's span of the
    request must be a child of our model-server-call span, in the client's trace."""
    trace_id, client_span = secrets.token_hex(16), secrets.token_hex(8)
    body = {"model": str(tiny_model), "messages": [{"role": "user", "content": "hi"}]}
    tracing = {"OTEL_EXPORTER_OTLP_ENDPOINT": otlp_receiver.endpoint}
    with microservice("tracing", vllm_server.base_url, str(tiny_model), **tracing) as usvc:
        answer = httpx.post(
            usvc.base_url + "/v1/chat/completions",
            json={**body, "max_tokens": 2},
            headers={"traceparent": f"00-{trace_id}-{client_span}-01"},
            timeout=60,
        )
        assert answer.status_code == 200
    # stopping the microservice flushed its spans; vLLM exports within its batch delay

    def complete(spans: list[ReceivedSpan]) -> bool:
        ours = [s for s in spans if s.trace_id == trace_id]
        return any(s.name == "model server call" for s in ours) and any(
            s.service_name != "llm-microservice" for s in ours
        )

    spans = [s for s in otlp_receiver.wait_for(complete, timeout=60) if s.trace_id == trace_id]
    [request] = [s for s in spans if s.name == "POST /v1/chat/completions"]
    [call] = [s for s in spans if s.name == "model server call"]
    vllm_spans = [s for s in spans if s.service_name != "llm-microservice"]
    assert request.parent_span_id == client_span
    assert call.parent_span_id == request.span_id
    assert [s.parent_span_id for s in vllm_spans] == [call.span_id]
