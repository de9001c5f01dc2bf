"""Every query of the Grafana dashboard returns data from a real Prometheus scraping the real
services: the session's vLLM, a microservice in front of it with API keys and tight admission
limits, and a microservice whose only model server is down (for the 5xx panels).

The traffic covers every panel: chat requests streamed and not, by a key with a daily budget;
a key over its requests per minute (per-key 429s); a request for a model whose replica is down,
answered by its fallback; a request that waits while the only slot is taken and is refused
when its 0.1 s in the queue is up (queue depth per key, admission 429s); a request with
no model server up (503). It is sent twice, with a scrape in
between, so that each counter has grown between two samples and each rate and quantile is a
number. Grafana's interval variables become 1m.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from harness import servers
from harness.processes import REPO_ROOT, Server, free_port, wait_until_healthy
from harness.prometheus import Prometheus, Sample, dashboard_queries, finite, prometheus
from tests.sse import line_data

pytestmark = pytest.mark.integration

DASHBOARD = REPO_ROOT / "docker" / "monitoring" / "grafana" / "dashboards" / "llm-stack.json"
LOGS = Path("test-logs")
RPM = 2  # team-a's requests per minute
QUERY_TIMEOUT_S = 30
DETOUR = "detour"  # a model whose replica is down: its requests fall back


def keys_file(keys: dict[str, str], path: Path) -> Path:
    entries: list[dict[str, Any]] = [
        {"name": "team-a", "key": keys["team-a"], "rpm": RPM},
        {"name": "team-b", "key": keys["team-b"], "tokens_per_day": 10**9},
    ]
    path.write_text(yaml.safe_dump({"keys": entries}))
    return path


def models_file(vllm: Server, model: str, dead_endpoint: str, path: Path) -> Path:
    """The model, and `detour`, whose only replica is down and whose fallback is the model."""
    entries: list[dict[str, Any]] = [
        {"name": model, "endpoints": vllm.base_url},
        {"name": DETOUR, "endpoints": dead_endpoint, "served_model_name": model,
         "fallbacks": [model]},
    ]  # fmt: skip
    path.write_text(yaml.safe_dump({"models": entries}))
    return path


@contextlib.contextmanager
def monitored_stack(
    vllm: Server, model: str, keys: dict[str, str], workdir: Path
) -> Iterator[tuple[Server, Server, Prometheus]]:
    """The keyed microservice, the one with its model server down, and Prometheus scraping
    both and vLLM."""
    dead_endpoint = f"http://127.0.0.1:{free_port()}"
    keyed_env = {
        "LLM_API_KEYS_FILE": str(keys_file(keys, workdir / "keys.yaml")),
        "LLM_MODELS_FILE": str(models_file(vllm, model, dead_endpoint, workdir / "models.yaml")),
        # One request at a time on the one replica, one waiting 0.1 s: then 429.
        "LLM_MAX_INFLIGHT_PER_REPLICA": "1",
        "LLM_QUEUE_SIZE": "1",
        "LLM_QUEUE_TIMEOUT_S": "0.1",
    }
    with contextlib.ExitStack() as stack:
        keyed = stack.enter_context(
            servers.microservice(vllm.base_url, model, LOGS / "monitoring-usvc.log", **keyed_env)
        )
        down = stack.enter_context(
            servers.microservice(dead_endpoint, model, LOGS / "monitoring-usvc-down.log")
        )
        wait_until_healthy(keyed, "/v1/health_check", timeout_s=60)
        jobs = {"llm-usvc": [keyed.base_url, down.base_url], "vllm": [vllm.base_url]}
        prom = stack.enter_context(
            prometheus(jobs, workdir / "prometheus", LOGS / "monitoring-prometheus.log")
        )
        yield keyed, down, prom


def chat(model: str) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def send_traffic(keyed: Server, down: Server, model: str, keys: dict[str, str]) -> None:
    """One round of the traffic every panel needs (see the module's docstring)."""
    url = "/v1/chat/completions"
    with httpx.Client(base_url=keyed.base_url, timeout=120) as client:
        team_b = bearer(keys["team-b"])
        for _ in range(2):
            reply = client.post(url, json=chat(model), headers=team_b)
            assert reply.status_code == 200, reply.text
            with client.stream(
                "POST", url, json={**chat(model), "stream": True}, headers=team_b
            ) as stream:
                body = stream.read().decode()
                assert stream.status_code == 200, body
                assert body.rstrip().endswith("data: [DONE]"), body[-200:]

        # team-a: a fixed or a sliding minute, RPM*2+1 requests at once exceed it either way.
        codes = []
        for _ in range(RPM * 2 + 1):
            reply = client.post(url, json=chat(model), headers=bearer(keys["team-a"]))
            codes.append(reply.status_code)
            if reply.status_code == 429:
                break
        assert codes[-1] == 429, codes
        assert set(codes) <= {200, 429}, codes

        detour = client.post(url, json={**chat(model), "model": DETOUR}, headers=team_b)
        assert detour.status_code == 200, detour.text

        refused = admission_refusal(client, model, team_b)
        assert refused.status_code == 429, refused.text
        wait_until_idle(client)

    reply = httpx.post(down.base_url + url, json=chat(model), timeout=60)
    assert reply.status_code >= 500, reply.text


def admission_refusal(
    client: httpx.Client, model: str, headers: dict[str, str], timeout_s: float = 60
) -> httpx.Response:
    """A request sent while a long stream holds the replica's only slot: 429 once its time in
    the queue is up. Tried again when the stream ended before that."""
    long_stream = {**chat(model), "stream": True, "max_tokens": 256, "ignore_eos": True}
    deadline = time.monotonic() + timeout_s
    while True:
        with client.stream(
            "POST", "/v1/chat/completions", json=long_stream, headers=headers
        ) as holder:
            assert holder.status_code == 200, holder.read()
            lines = holder.iter_lines()  # held: a dropped iterator would close the stream
            next(line for line in lines if line_data(line) is not None)
            reply = client.post("/v1/chat/completions", json=chat(model), headers=headers)
        if reply.status_code != 200 or time.monotonic() > deadline:
            return reply


def wait_until_idle(client: httpx.Client, timeout_s: float = 60) -> None:
    """Until no request holds the replica's slot (the closed stream's generation is
    aborted), so that the next request is not refused."""
    deadline = time.monotonic() + timeout_s
    while True:
        replicas = client.get("/v1/health_check").json()["replicas"]
        if all(r["in_flight"] == 0 for r in replicas):
            return
        assert time.monotonic() < deadline, replicas
        time.sleep(0.2)


def test_every_dashboard_query_returns_data(
    vllm_server: Server, tiny_model: Path, tmp_path: Path
) -> None:
    model = str(tiny_model)
    # Key name → key: team-a limited to RPM requests a minute, team-b unlimited.
    keys = {"team-a": secrets.token_hex(16), "team-b": secrets.token_hex(16)}
    queries = dashboard_queries(DASHBOARD)
    assert queries, "no queries in the dashboard"
    with monitored_stack(vllm_server, model, keys, tmp_path) as (keyed, down, prom):
        prom.wait_for_scrapes(1, timeout_s=QUERY_TIMEOUT_S)
        for _ in range(2):
            send_traffic(keyed, down, model, keys)
            prom.wait_for_scrape_after(time.time(), timeout_s=QUERY_TIMEOUT_S)

        results: dict[str, list[Sample]] = {}
        deadline = time.monotonic() + QUERY_TIMEOUT_S
        for query in queries:
            expr = query.runnable("1m")
            left = max(deadline - time.monotonic(), 0.0)
            with contextlib.suppress(TimeoutError):
                prom.wait_for(expr, finite, timeout_s=left)
            results[f"{query.panel} {query.ref_id}: {expr}"] = prom.query(expr)

    without_data = [where for where, result in results.items() if not finite(result)]
    assert without_data == [], "\n".join(f"{where} -> {results[where]!r}" for where in without_data)
