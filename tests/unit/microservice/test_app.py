"""The app in-process (no vLLM): it starts without the model server and says why it is not ready."""

from __future__ import annotations

from fastapi.testclient import TestClient

from harness.processes import free_port
from microservice.app import create_app
from microservice.settings import MicroserviceSettings


def client() -> TestClient:
    settings = MicroserviceSettings(
        llm_model_name="m",
        llm_model_server_endpoint=f"http://127.0.0.1:{free_port()}",
        llm_max_body_bytes=2048,
    )
    return TestClient(create_app(settings))


def test_starts_without_model_server_and_reports_it() -> None:
    with client() as c:
        assert c.get("/health").status_code == 200
        health = c.get("/v1/health_check")
        assert health.status_code == 503
        assert "unreachable" in health.json()["model_server"]["reason"]
        answer = c.post("/v1/chat/completions", json={"messages": {"user": "hi"}})
        assert answer.status_code == 503
        assert answer.json()["error"]["type"] == "upstream_unavailable"


def test_error_envelope_and_request_id() -> None:
    with client() as c:
        answer = c.post("/v1/chat/completions", content=b"x" * 4096, headers={"X-Request-Id": "r1"})
        assert answer.status_code == 413
        assert answer.headers["x-request-id"] == "r1"
        assert answer.json()["error"]["param"] == "body"
        missing = c.get("/nowhere")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == 404
        metrics = c.get("/metrics").text
        assert 'llm_usvc_requests_total{route="/v1/chat/completions",status="413"} 1.0' in metrics
        assert 'route="other",status="404"' in metrics


def test_apps_do_not_share_state() -> None:
    with client() as a, client() as b:
        a.post("/v1/chat/completions", content=b"{")
        assert 'status="400"' in a.get("/metrics").text
        assert 'status="400"' not in b.get("/metrics").text
