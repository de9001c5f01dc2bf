"""POST /v1/rerank and /v1/score through the microservice to a real vLLM serving the tiny
cross-encoder (``harness.tiny_reranker``), beside the chat model, as a RAG pipeline's reranking
step calls them; a key's tokens counted; the wrong kind of model refused clearly."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from harness.processes import Server
from tests.integration.microservice.helpers import metric, microservice

pytestmark = pytest.mark.integration

KEY = "sk-rerank-test-key"
CHAT_ONLY_KEY = "sk-chat-only-test-key"
QUERY = "what is deep learning"
DOCUMENTS = [
    "deep learning trains layers of weights",
    "a fast cat and a slow dog",
    "the blue sky near green trees",
]


@pytest.fixture(scope="module")
def usvc(
    vllm_server: Server,
    vllm_rerank_server: Server,
    tiny_model: Path,
    tiny_reranker: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Server]:
    keys = tmp_path_factory.mktemp("rerank") / "keys.yaml"
    keys.write_text(
        "keys:\n"
        f"  - {{name: rag, key: {KEY}}}\n"
        f"  - {{name: chat-only, key: {CHAT_ONLY_KEY}, models: ['{tiny_model}']}}\n"
    )
    with microservice(
        "rerank", vllm_server.base_url, str(tiny_model),
        LLM_API_KEYS_FILE=str(keys),
        LLM_RERANK_MODEL_NAME=str(tiny_reranker),
        LLM_RERANK_MODEL_SERVER_ENDPOINT=vllm_rerank_server.base_url,
    ) as server:  # fmt: skip
        yield server


def ask(usvc: Server, path: str, body: dict[str, object], key: str = KEY) -> httpx.Response:
    return httpx.post(
        usvc.base_url + path, json=body, headers={"Authorization": f"Bearer {key}"}, timeout=60
    )


def test_rerank_orders_the_documents_as_their_scores_and_counts_the_tokens(
    usvc: Server, tiny_reranker: Path
) -> None:
    tokens_before = metric(
        httpx.get(usvc.base_url + "/metrics").text, "llm_usvc_key_prompt_tokens_total", 'key="rag"'
    )
    reply = ask(
        usvc, "/v1/rerank", {"model": str(tiny_reranker), "query": QUERY, "documents": DOCUMENTS}
    )
    top = ask(usvc, "/v1/rerank", {"query": QUERY, "documents": DOCUMENTS, "top_n": 2})
    scores = ask(
        usvc, "/v1/score", {"model": str(tiny_reranker), "text_1": QUERY, "text_2": DOCUMENTS}
    )
    assert [r.status_code for r in (reply, top, scores)] == [200, 200, 200], reply.text
    results = reply.json()["results"]
    by_index = {r["index"]: r["relevance_score"] for r in results}
    assert sorted(by_index) == [0, 1, 2]
    assert [r["relevance_score"] for r in results] == sorted(by_index.values(), reverse=True)
    assert len(set(by_index.values())) == 3, "random weights should tell the documents apart"
    best_two = top.json()["results"]  # the reranker is the rerank route's default model
    assert [r["index"] for r in best_two] == [r["index"] for r in results[:2]]
    assert [r["relevance_score"] for r in best_two] == pytest.approx(
        [r["relevance_score"] for r in results[:2]]
    )
    score_of = {d["index"]: d["score"] for d in scores.json()["data"]}
    assert score_of == pytest.approx(by_index)  # the same pairs, scored by the same model
    counted = metric(
        httpx.get(usvc.base_url + "/metrics").text, "llm_usvc_key_prompt_tokens_total", 'key="rag"'
    )
    used = [r.json()["usage"]["prompt_tokens"] for r in (reply, top, scores)]
    assert counted - tokens_before == sum(used) > 0


def test_score_pairs_one_by_one_and_the_sdk_reaches_both_routes(usvc: Server) -> None:
    """N:N pairs; the openai SDK has no rerank method: its generic ``post`` is how it calls."""
    with openai.OpenAI(base_url=usvc.base_url + "/v1", api_key=KEY, max_retries=0) as sdk:
        pairs = sdk.post(
            "/score",
            body={"text_1": [QUERY, QUERY], "text_2": DOCUMENTS[:2]},
            cast_to=httpx.Response,
        ).json()
        reranked = sdk.post(
            "/rerank", body={"query": QUERY, "documents": DOCUMENTS[:2]}, cast_to=httpx.Response
        ).json()
    assert [d["index"] for d in pairs["data"]] == [0, 1]
    by_index = {r["index"]: r["relevance_score"] for r in reranked["results"]}
    assert [d["score"] for d in pairs["data"]] == pytest.approx([by_index[0], by_index[1]])


def test_the_wrong_model_or_texts_get_a_clear_error(
    usvc: Server, tiny_model: Path, tiny_reranker: Path
) -> None:
    chat_model = ask(
        usvc, "/v1/rerank", {"model": str(tiny_model), "query": "q", "documents": ["d"]}
    )
    reranker_chat = ask(
        usvc, "/v1/chat/completions",
        {"model": str(tiny_reranker), "messages": [{"role": "user", "content": "hi"}]},
    )  # fmt: skip
    no_pairs = ask(usvc, "/v1/score", {"text_1": [QUERY, QUERY, QUERY], "text_2": DOCUMENTS[:2]})
    empty = ask(usvc, "/v1/rerank", {"query": QUERY, "documents": []})
    not_this_key = ask(
        usvc, "/v1/rerank", {"query": QUERY, "documents": DOCUMENTS}, key=CHAT_ONLY_KEY
    )
    assert chat_model.status_code == 400
    assert chat_model.json()["error"]["code"] == "model_not_supported"
    assert "/v1/chat/completions" in chat_model.json()["error"]["message"]
    assert reranker_chat.status_code == 400
    assert "/v1/rerank" in reranker_chat.json()["error"]["message"]
    assert no_pairs.status_code == 422 and no_pairs.json()["error"]["param"] == "text_1"
    assert empty.status_code == 422 and empty.json()["error"]["param"] == "documents"
    assert not_this_key.status_code == 403


def test_models_lists_the_reranker(usvc: Server, tiny_reranker: Path) -> None:
    listed = httpx.get(usvc.base_url + "/v1/models", headers={"Authorization": f"Bearer {KEY}"})
    kinds = {m["id"]: m["kind"] for m in listed.json()["data"]}
    assert kinds[str(tiny_reranker)] == "rerank"
