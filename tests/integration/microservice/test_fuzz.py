"""Schemathesis against the REAL microservice in front of the session's REAL vLLM CPU server:
every operation of its OpenAPI document, with a valid API key (through each connector),
without one and with a wrong one (the document is built in-process, so that pytest can collect
one test per operation; ``test_document_is_served`` checks it is the one GET /openapi.json
serves).

Checked on every answer: no 5xx (but a 503 from /v1/health_check that says not ready), the
status, content type, headers and body as documented, every stream ends with [DONE]; without a
valid key every API route answers 401 whatever the body. Inputs: the document's examples, then
valid and invalid bodies (schemathesis' coverage and fuzzing phases), a bounded number per
operation, from a fixed seed (FUZZ_SEED changes it). Token budgets the service accepts are
capped in the test (the tiny model would make up to ~500 tokens a request otherwise); budgets
over the context length are sent as generated and must be refused.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
import yaml
from schemathesis import BaseSchema, Case, checks

from harness.processes import Server
from microservice.api.openapi import build_openapi
from microservice.app import create_app
from microservice.settings import MicroserviceSettings
from tests.integration.microservice.helpers import microservice

pytestmark = pytest.mark.integration

# Examples per operation in the fuzzing phase, by caller (the coverage phase adds its own).
MAX_EXAMPLES = {"valid key": 60, "no key": 10, "wrong key": 10}
SEED = int(os.environ.get("FUZZ_SEED", "20240611"))  # another seed: other inputs
CAPPED_TOKENS = 4  # what a generated token budget the service would accept becomes
BUDGETS = ("max_tokens", "max_new_tokens", "max_completion_tokens")
GENERATING = {"/v1/chat/completions", "/v1/completions"}
OPEN = {"/health", "/v1/health_check", "/metrics"}  # no API key needed
# How a stream ends when not [DONE]: a Responses stream's last event says it is the last.
STREAM_ENDS = {"/v1/responses": b"}\n\n"}
UNUSED = "http://127.0.0.1:9"  # the document does not depend on the model server
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
]


@pytest.fixture(scope="module")
def api_key() -> str:
    return secrets.token_urlsafe(24)


@contextmanager
def keyed_microservice(
    name: str, vllm: Server, model: Path, keys_dir: Path, key: str, **env: str
) -> Iterator[Server]:
    """The microservice with API keys on: one key, with limits no fuzz run reaches."""
    keys = keys_dir / "keys.yaml"
    keys.write_text(yaml.safe_dump({"keys": [{"name": "fuzz", "key": key, "rpm": 100000}]}))
    with microservice(
        name, vllm.base_url, str(model), LLM_API_KEYS_FILE=str(keys), **env
    ) as server:
        yield server


@pytest.fixture(scope="module")
def usvc_keys(
    vllm_server: Server,
    vllm_rerank_server: Server,
    tiny_model: Path,
    tiny_reranker: Path,
    tmp_path_factory: pytest.TempPathFactory,
    api_key: str,
) -> Iterator[Server]:
    """The chat model, and the reranker for /v1/rerank and /v1/score."""
    keys_dir = tmp_path_factory.mktemp("fuzz-keys")
    with keyed_microservice(
        "fuzz", vllm_server, tiny_model, keys_dir, api_key,
        LLM_RERANK_MODEL_NAME=str(tiny_reranker),
        LLM_RERANK_MODEL_SERVER_ENDPOINT=vllm_rerank_server.base_url,
    ) as server:  # fmt: skip
        yield server


@pytest.fixture(scope="module")
def usvc_keys_langchain(
    vllm_server: Server, tiny_model: Path, tmp_path_factory: pytest.TempPathFactory, api_key: str
) -> Iterator[Server]:
    """The same with the LangChain connector, which reads the chat messages itself."""
    keys_dir = tmp_path_factory.mktemp("fuzz-keys")
    with keyed_microservice(
        "fuzz-langchain", vllm_server, tiny_model, keys_dir, api_key, LLM_CONNECTOR="langchain"
    ) as server:
        yield server


@pytest.fixture(scope="module")
def max_model_len(usvc_keys: Server, api_key: str) -> int:
    """The context length vLLM serves the tiny model with, as the service reports it."""
    headers = {"Authorization": f"Bearer {api_key}"}
    models = httpx.get(usvc_keys.base_url + "/v1/models", headers=headers, timeout=30).json()
    return int(models["data"][0]["max_model_len"])


def document() -> dict[str, Any]:
    """The document the service serves (``test_document_is_served`` checks that it is)."""
    app = create_app(MicroserviceSettings(llm_model_name="m", llm_model_server_endpoint=UNUSED))
    return build_openapi(app)


def fuzz_schema(caller: str) -> BaseSchema:
    """Schemathesis on the document; a wrong key is one it makes up for the bearer scheme.
    (``schemathesis.pytest.from_fixture``, which could read the served one, fails on pytest 9:
    it sets ``Function._nodeid``, which pytest 9 no longer has.)"""
    generation = {
        "mode": "all",
        "max-examples": MAX_EXAMPLES[caller],
        "database": "none",  # the fixed seed makes runs repeatable
        "with-security-parameters": caller == "wrong key",
    }
    config = schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "suppress-health-check": ["all"],  # about the generator, not the service
            "request-timeout": 150,  # over LLM_REQUEST_TIMEOUT_S: the service answers first
            "max-stream-events": 100_000,  # read streams to the end (n up to 128 choices)
            "generation": generation,
            "phases": {"stateful": {"enabled": False}},
            # Failures show the bodies sent as they were; only the key is hidden.
            "output": {
                "sanitization": {
                    "keys-to-sanitize": ["authorization"],
                    "sensitive-markers": ["authorization"],
                }
            },
        }
    )
    return schemathesis.openapi.from_dict(document(), config=config)


def cap_token_budgets(body: Any, path: str, max_model_len: int) -> Any:
    """``body`` with the budgets the service would accept shrunk to CAPPED_TOKENS, and one set
    when none is: the tiny model's ~500 tokens a request would take the whole run. Budgets over
    the context length, and values of other types, stay as generated."""
    if path not in GENERATING or not isinstance(body, dict):
        return body
    body = dict(body)  # an example's body belongs to the document
    for name in BUDGETS:
        value = body.get(name)
        if type(value) is int and CAPPED_TOKENS < value <= max_model_len:
            body[name] = CAPPED_TOKENS
    if all(body.get(name) is None for name in BUDGETS):
        is_opea = isinstance(body.get("messages"), dict)
        body["max_new_tokens" if is_opea else "max_tokens"] = CAPPED_TOKENS
    return body


def fuzz(case: Case[Any], server: Server, key: str | None, max_model_len: int) -> None:
    """One generated request: the documented answer, never a 5xx; without ``key`` a 401."""
    path = case.operation.path
    case.body = cap_token_budgets(case.body, path, max_model_len)
    headers = {"Authorization": f"Bearer {key}"} if key else None
    response = case.call(base_url=server.base_url, headers=headers)
    run = list(CHECKS)
    if path == "/v1/health_check" and response.status_code == 503:
        run.remove(checks.not_a_server_error)  # documented: vLLM not ready
        assert response.json()["status"] == "unavailable"
    case.validate_response(response, checks=run, headers=headers)
    stream = response.headers.get("content-type", [""])[0].startswith("text/event-stream")
    if stream and not response.stream_cut_short:
        assert response.content.endswith(STREAM_ENDS.get(path, b"data: [DONE]\n\n")), (
            "a stream must end with its form's last event"
        )
    if key is None and path not in OPEN and case.method.upper() == case.operation.method.upper():
        assert response.status_code == 401, response.text
        assert response.json()["error"]["code"] == "invalid_api_key"


@fuzz_schema("valid key").parametrize()
def test_fuzz_with_key(
    case: Case[Any], usvc_keys: Server, api_key: str, max_model_len: int
) -> None:
    fuzz(case, usvc_keys, api_key, max_model_len)


@fuzz_schema("valid key").parametrize()
def test_fuzz_with_key_langchain_connector(
    case: Case[Any], usvc_keys_langchain: Server, api_key: str, max_model_len: int
) -> None:
    fuzz(case, usvc_keys_langchain, api_key, max_model_len)


@fuzz_schema("no key").parametrize()
def test_fuzz_without_key(case: Case[Any], usvc_keys: Server, max_model_len: int) -> None:
    fuzz(case, usvc_keys, None, max_model_len)


@fuzz_schema("wrong key").parametrize()
def test_fuzz_with_wrong_key(case: Case[Any], usvc_keys: Server, max_model_len: int) -> None:
    """The Authorization header is schemathesis' own: ``Bearer <made up>``, or negated."""
    fuzz(case, usvc_keys, None, max_model_len)


def test_document_is_served(usvc_keys: Server) -> None:
    """What the fuzzing reads is what the service serves at GET /openapi.json."""
    served = httpx.get(usvc_keys.base_url + "/openapi.json", timeout=10).json()
    assert served == document()
