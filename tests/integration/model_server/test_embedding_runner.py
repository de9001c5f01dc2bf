"""The tiny chat model served as an embedding model (VLLM_RUNNER=pooling, VLLM_CONVERT=embed):
vLLM answers /v1/embeddings and refuses chat. One server for the whole session."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from harness.processes import Server
from model_server.tiny_model import TINY  # its hidden size is the pooled embedding length

pytestmark = pytest.mark.integration


def test_embeddings_of_two_strings(vllm_embedding_server: Server, tiny_model: Path) -> None:
    response = httpx.post(
        vllm_embedding_server.base_url + "/v1/embeddings",
        json={"model": str(tiny_model), "input": ["what is a cat", "a cat is an animal"]},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "list"
    vectors = [item["embedding"] for item in sorted(body["data"], key=lambda d: d["index"])]
    assert [len(v) for v in vectors] == [TINY.hidden_size, TINY.hidden_size]
    assert all(isinstance(x, float) for v in vectors for x in v)
    assert vectors[0] != vectors[1]
    assert body["usage"]["prompt_tokens"] > 0


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}]}),
        ("/v1/completions", {"prompt": "hi"}),
    ],
)
def test_generation_is_refused(
    vllm_embedding_server: Server, tiny_model: Path, path: str, body: dict[str, object]
) -> None:
    response = httpx.post(
        vllm_embedding_server.base_url + path,
        json={"model": str(tiny_model), "max_tokens": 4, **body},
        timeout=60,
    )
    assert 400 <= response.status_code < 500, response.text


def test_launcher_rendered_the_runner_flags(vllm_embedding_server: Server) -> None:
    log = vllm_embedding_server.log_path.read_text(errors="replace")
    assert "--runner pooling --convert embed" in log
