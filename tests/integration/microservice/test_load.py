"""Bounded load: 1,000 requests, 32 at a time, half streaming, per connector.

Zero errors, no socket to vLLM left in CLOSE-WAIT (the OPEA component's LangChain connector
leaked them), and resident memory of the microservice within RSS_BOUND_MB.
"""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urlparse

import httpx
import psutil
import pytest

from harness.processes import Server

pytestmark = pytest.mark.integration

REQUESTS, CONCURRENCY = 1000, 32
RSS_BOUND_MB = 300  # measured after the run: 63 MB (generic), 123 MB (langchain)


async def one(client: httpx.AsyncClient, i: int) -> str | None:
    """None when the answer is complete and correct, else what was wrong."""
    stream = i % 2 == 0
    if i % 4 < 2:
        body: dict[str, object] = {"messages": {"user": f"q{i}"}, "max_new_tokens": 4}
        body["streaming"] = stream
    else:
        body = {"messages": [{"role": "user", "content": f"q{i}"}], "max_tokens": 4}
        body["stream"] = stream
    async with client.stream("POST", "/v1/chat/completions", json=body) as response:
        content = await response.aread()
    if response.status_code != 200:
        return f"{response.status_code}: {content[:200]!r}"
    if stream and not content.endswith(b"data: [DONE]\n\n"):
        return f"stream not ended by [DONE]: {content[-200:]!r}"
    if stream and b'"error"' in content:
        return f"error event: {content[-300:]!r}"
    return None


async def run_load(base_url: str) -> list[str]:
    limits = httpx.Limits(max_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=base_url, timeout=120, limits=limits) as client:
        queue = iter(range(REQUESTS))
        problems: list[str] = []

        async def worker() -> None:
            for i in queue:
                if (problem := await one(client, i)) is not None:
                    problems.append(problem)

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return problems


def sockets_to(process: psutil.Process, port: int, status: str) -> int:
    return sum(
        1
        for c in process.net_connections(kind="tcp")
        if c.raddr and c.raddr.port == port and c.status == status
    )


def test_load(usvc: Server, vllm_server: Server) -> None:
    start = time.monotonic()
    problems = asyncio.run(run_load(usvc.base_url))
    elapsed = time.monotonic() - start
    assert problems == [], f"{len(problems)} of {REQUESTS} failed, first: {problems[:3]}"

    process = psutil.Process(usvc.process.pid)
    vllm_port = int(urlparse(vllm_server.base_url).port or 0)
    time.sleep(1)
    assert sockets_to(process, vllm_port, psutil.CONN_CLOSE_WAIT) == 0
    assert sockets_to(process, vllm_port, psutil.CONN_ESTABLISHED) <= CONCURRENCY + 1
    rss_mb = process.memory_info().rss / 2**20
    print(f"\nload: {REQUESTS} requests in {elapsed:.1f} s, microservice RSS {rss_mb:.0f} MB")
    assert rss_mb < RSS_BOUND_MB
