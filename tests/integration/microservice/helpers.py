"""Small helpers the microservice integration tests share."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from harness import servers
from harness.processes import Server


@contextmanager
def microservice(name: str, endpoint: str, model: str, **extra: str) -> Iterator[Server]:
    """Start ``python -m microservice`` on a free port; yield once its liveness answers."""
    log_path = Path("test-logs") / f"microservice-{name}.log"
    with servers.microservice(endpoint, model, log_path, **extra) as server:
        yield server


def post(server: Server, body: dict[str, Any], **kwargs: Any) -> httpx.Response:
    return httpx.post(server.base_url + "/v1/chat/completions", json=body, timeout=120, **kwargs)


def vllm_chat(vllm: Server, model: str, messages: list[dict[str, str]], **params: Any) -> str:
    """What vLLM answers when called directly: the reference for our answers."""
    response = httpx.post(
        vllm.base_url + "/v1/chat/completions",
        json={"model": model, "messages": messages, **params},
        timeout=120,
    )
    assert response.status_code == 200, response.text
    return str(response.json()["choices"][0]["message"]["content"])


def metric(text: str, name: str, labels: str = "") -> float:
    """Sum of the samples of ``name`` (optionally only those whose labels contain ``labels``)."""
    total = 0.0
    for match in re.finditer(rf"^{re.escape(name)}(\{{[^}}]*\}})? (\S+)$", text, re.M):
        if labels in (match.group(1) or ""):
            total += float(match.group(2))
    return total
