"""The OpenAPI document (GET /openapi.json): valid OpenAPI 3.1, every route with its request
body and every error it can answer, and the schemas true to what the service reads and sends."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from jsonschema import Draft202012Validator
from schemathesis.core.result import Ok
from starlette.routing import Route

from microservice import errors
from microservice.api import error_answers
from microservice.api.openapi import API_ERRORS, build_openapi, install_openapi
from microservice.app import create_app
from microservice.settings import MicroserviceSettings

OPEN = {"/health", "/v1/health_check", "/metrics"}
POSTS = {
    "/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses", "/v1/rerank",
    "/v1/score",
}  # fmt: skip


@pytest.fixture(scope="module")
def app() -> FastAPI:
    settings = MicroserviceSettings(
        llm_model_name="m", llm_model_server_endpoint="http://127.0.0.1:9"
    )
    return create_app(settings)


@pytest.fixture(scope="module")
def doc(app: FastAPI) -> dict[str, Any]:
    answer = TestClient(app).get("/openapi.json")
    assert answer.status_code == 200
    document: dict[str, Any] = answer.json()
    return document


def validator(doc: dict[str, Any], schema: dict[str, Any]) -> Draft202012Validator:
    """``schema`` with the document's components, so its ``$ref``s resolve."""
    return Draft202012Validator({**schema, "components": doc["components"]})


def test_is_valid_openapi_31_and_every_operation_loads(doc: dict[str, Any]) -> None:
    assert doc["openapi"].startswith("3.1")
    schema = schemathesis.openapi.from_dict(doc)
    schema.validate()
    operations = list(schema.get_all_operations())
    assert all(isinstance(result, Ok) for result in operations), operations
    assert len(operations) == 10


def test_built_once(app: FastAPI) -> None:
    assert app.openapi() is app.openapi()


def test_every_route_with_body_errors_and_security(app: FastAPI, doc: dict[str, Any]) -> None:
    # FastAPI's routes and the plain endpoints of the model routes alike
    routes = [r for r in app.routes if isinstance(r, Route) and r.include_in_schema]
    assert {r.path for r in routes} == set(doc["paths"])
    assert POSTS.issubset(doc["paths"])
    for route in routes:
        for method in route.methods or ():
            operation = doc["paths"][route.path][method.lower()]
            responses = operation["responses"]
            assert "200" in responses, route.path
            if route.path in OPEN:
                assert "security" not in operation, route.path
                continue
            assert operation["security"] == [{"bearer": []}]
            assert "WWW-Authenticate" in responses["401"]["headers"]
            expected = API_ERRORS if route.path in POSTS else (401,)
            assert {str(s) for s in expected} <= set(responses), route.path
            for status in expected:
                schema = responses[str(status)]["content"]["application/json"]["schema"]
                assert "error" in schema["required"]
            if method == "POST":
                body = operation["requestBody"]
                assert body["required"] is True
                assert body["content"]["application/json"]["schema"]
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


def test_chat_body_is_one_of_the_two_forms(doc: dict[str, Any]) -> None:
    operation = doc["paths"]["/v1/chat/completions"]["post"]
    body = validator(doc, operation["requestBody"]["content"]["application/json"]["schema"])
    assert body.is_valid({"messages": {"user": "hi"}, "max_new_tokens": 5})
    assert body.is_valid({"messages": [{"role": "user", "content": "hi"}], "stream": True})
    assert not body.is_valid({"messages": "hi"})
    assert not body.is_valid({"messages": []})
    assert not body.is_valid({"messages": {"user": "hi"}, "temperature": 3})


def test_request_examples_are_valid_bodies(doc: dict[str, Any]) -> None:
    for path in POSTS:
        media = doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]
        body = validator(doc, media["schema"])
        assert media["examples"], path
        for name, example in media["examples"].items():
            assert body.is_valid(example["value"]), (path, name)


def test_error_envelope_matches_every_error(doc: dict[str, Any]) -> None:
    responses = doc["paths"]["/v1/completions"]["post"]["responses"]
    samples: list[errors.ServiceError] = [
        errors.BodyNotJson("not json"),
        errors.InvalidApiKey("missing API key"),
        errors.ModelNotAllowed("no", param="model"),
        errors.ModelNotFound("no such model", param="model"),
        errors.BodyTooLarge("too big", param="body"),
        errors.RequestInvalid("max_tokens: bad", param="max_tokens"),
        errors.KeyRateLimited("slow down", 3, ()),
        errors.BudgetExceeded("budget spent", 3600, ()),
        errors.ModelServerFailed("boom"),
        errors.NoHealthyReplica("none ready", 5),
        errors.ModelServerTimeout("late"),
    ]
    for error in samples:
        answer = responses[str(error.status)]
        envelope = validator(doc, answer["content"]["application/json"]["schema"])
        assert envelope.is_valid(errors.error_body(error)), error
        sent = error_answers.error_response(error).headers
        for name, header in answer["headers"].items():
            if header["required"] and name != "X-Request-Id":  # added by the middleware
                assert name.lower() in sent, (error.status, name)


def test_answers_in_process_match_the_document(app: FastAPI, doc: dict[str, Any]) -> None:
    """What the open routes answer without a model server (503 from health) fits."""
    paths = doc["paths"]
    with TestClient(app) as client:
        for path, status in (("/health", 200), ("/v1/health_check", 503), ("/v1/models", 200)):
            answer = client.get(path)
            assert answer.status_code == status
            documented = paths[path]["get"]["responses"][str(status)]
            schema = documented["content"]["application/json"]["schema"]
            assert validator(doc, schema).is_valid(answer.json()), (path, answer.json())
            assert "x-request-id" in answer.headers
        metrics = client.get("/metrics")
        assert metrics.headers["content-type"].startswith("text/plain")
        assert "text/plain" in paths["/metrics"]["get"]["responses"]["200"]["content"]


def test_no_work_until_asked() -> None:
    """Installing builds nothing: the document is made on the first request for it."""
    app = FastAPI()
    install_openapi(app)
    assert app.openapi_schema is None
    assert build_openapi(app)["paths"] == {}
