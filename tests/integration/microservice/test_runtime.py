"""Disconnects abort vLLM's work; request ids, logs, metrics; readiness while vLLM is away."""

from __future__ import annotations

import json
import time

import httpx
import psutil
import pytest

from harness.processes import Server
from microservice.upstream.http1.pool import MODEL_SERVER_KEEPALIVE_S
from tests.integration.microservice.disconnect import disconnect_midway
from tests.integration.microservice.helpers import metric, post

pytestmark = pytest.mark.integration

ASKED = 480  # tokens asked for; the tiny model makes them in ~2-3 s
ATTEMPTS = 5
STREAMS = 10


def generated(vllm: Server) -> float:
    text = httpx.get(vllm.base_url + "/metrics", timeout=10).text
    return metric(text, "vllm:generation_tokens_total")


def long_body(form: str, stream: bool) -> dict[str, object]:
    if form == "opea":
        # ignore_eos is not part of the OPEA form: ask for text until the limit instead.
        return {"messages": {"user": "count"}, "max_new_tokens": ASKED, "streaming": stream}
    return {
        "messages": [{"role": "user", "content": "count"}],
        "max_tokens": ASKED,
        "ignore_eos": True,
        "stream": stream,
    }


@pytest.mark.parametrize("stream", [True, False], ids=["streaming", "non-streaming"])
def test_client_disconnect_aborts_generation_in_vllm(
    usvc: Server, vllm_server: Server, stream: bool
) -> None:
    """With ignore_eos vLLM makes all ASKED tokens unless the request is aborted (the control
    below shows it). A proxy that does not close its call to vLLM fails every attempt. One
    vLLM-side miss is not the proxy's: on 2 cores vLLM itself sometimes acts on a disconnect
    only after the generation ends (seen calling it directly, about 1 in 8 non-streaming
    requests), and it can deliver a stream's first bytes only when most of it is made."""
    url = usvc.base_url + "/v1/chat/completions"
    seen = []
    for _ in range(ATTEMPTS):
        seen.append(disconnect_midway(url, vllm_server.base_url, long_body("openai", stream)))
        if seen[-1].total < ASKED / 2:
            return
    pytest.fail(f"vLLM made at least half of {ASKED} tokens after every disconnect: {seen}")


def test_complete_generation_counts_all_tokens(usvc: Server, vllm_server: Server) -> None:
    """The control for the disconnect test: without a disconnect all tokens are made."""
    before = generated(vllm_server)
    body = long_body("openai", False) | {"max_tokens": 60}
    assert post(usvc, body).json()["usage"]["completion_tokens"] == 60
    assert generated(vllm_server) - before >= 60


def test_request_id_accepted_returned_forwarded_logged(usvc: Server) -> None:
    rid = f"test-{time.monotonic_ns()}"
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    response = post(usvc, body, headers={"X-Request-Id": rid})
    assert response.headers["x-request-id"] == rid
    assert response.json()["id"] == f"chatcmpl-{rid}"  # vLLM named its request by our id
    time.sleep(0.2)
    events = [json.loads(line) for line in usvc.log_tail(2000).splitlines() if line.startswith("{")]
    assert any(e.get("request_id") == rid and e.get("status") == 200 for e in events)


def test_request_id_generated_and_unsafe_ones_replaced(usvc: Server) -> None:
    url = usvc.base_url + "/v1/health_check"
    generated_id = httpx.get(url, timeout=10).headers["x-request-id"]
    assert len(generated_id) == 32
    replaced = httpx.get(url, headers={"X-Request-Id": "bad id\twith spaces"}, timeout=10)
    assert replaced.headers["x-request-id"] != "bad id\twith spaces"


def test_prometheus_metrics(usvc: Server) -> None:
    def scrape() -> str:
        return httpx.get(usvc.base_url + "/metrics", timeout=10).text

    before = scrape()
    post(usvc, {"messages": {"user": "hi"}, "max_new_tokens": 4})  # streams
    post(usvc, {"messages": {"user": "hi"}, "max_new_tokens": 4, "streaming": False})
    post(usvc, {"messages": {"user": "   "}})
    after = scrape()

    def grew(name: str, labels: str = "") -> float:
        return metric(after, name, labels) - metric(before, name, labels)

    route = 'route="/v1/chat/completions"'
    assert grew("llm_usvc_requests_total", f'{route},status="200"') == 2
    assert grew("llm_usvc_requests_total", f'{route},status="422"') == 1
    assert grew("llm_usvc_request_duration_seconds_count", route) == 3
    assert grew("llm_usvc_time_to_first_token_seconds_count", 'form="opea"') == 2
    assert grew("llm_usvc_generated_tokens_total") == 8
    assert "llm_usvc_requests_in_flight" in after


def test_readiness_cached_when_good_never_when_bad(
    usvc_on_standin: Server, standin_model_server: Server
) -> None:
    """Against the STAND-IN, which counts /health calls and can turn unhealthy on demand."""
    control, health = standin_model_server.base_url, usvc_on_standin.base_url + "/v1/health_check"

    def calls() -> int:
        return int(httpx.get(control + "/standin/stats", timeout=5).json()["health_calls"])

    httpx.post(control + "/standin/health/503", timeout=5)
    time.sleep(2.2)  # let a good answer cached earlier (LLM_HEALTH_CACHE_S=2) expire
    try:
        first = calls()
        for _ in range(3):
            answer = httpx.get(health, timeout=10)
            assert answer.status_code == 503
            assert "not ready" in answer.json()["model_server"]["reason"]
        assert calls() - first == 3  # failures are not cached
    finally:
        httpx.post(control + "/standin/health/200", timeout=5)
    assert httpx.get(health, timeout=10).status_code == 200  # recovery shows at once
    first = calls()
    for _ in range(5):
        body = httpx.get(health, timeout=10).json()
        assert body["status"] == "ok" and body["model"] == "standin-model"
    assert calls() == first  # the good answer is reused (LLM_HEALTH_CACHE_S=2)


def test_streams_reuse_model_server_connections(usvc: Server, vllm_server: Server) -> None:
    """A finished stream hands its connection to vLLM back to the pool: no new TCP connection
    (and no TIME-WAIT socket left behind by closing one) per streamed request."""
    port = int(vllm_server.base_url.rsplit(":", 1)[1])

    def closed_by_us() -> int:
        return sum(
            1
            for c in psutil.net_connections(kind="tcp")
            if c.status == psutil.CONN_TIME_WAIT and c.raddr and c.raddr.port == port
        )

    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, "stream": True}
    # The connections earlier tests left idle in the pool are closed (by us, into TIME-WAIT)
    # once idle for the keep-alive bound; let that happen before counting.
    time.sleep(MODEL_SERVER_KEEPALIVE_S + 0.5)
    post(usvc, body)  # a pooled connection exists from here on
    before = closed_by_us()
    for _ in range(STREAMS):
        assert post(usvc, body).text.endswith("data: [DONE]\n\n")
    assert closed_by_us() - before < STREAMS / 2
