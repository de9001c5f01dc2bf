"""One microservice in front of two real vLLM CPU servers: load spread, session affinity read
from each vLLM's own counters, SIGKILL of one under load, its return, admission limits, and
DNS discovery through a resolver STAND-IN whose answer changes (the servers are real).

The second server listens on 127.0.0.2 with the session server's port, as two pods of a
headless Service would (one port, two addresses).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from harness.processes import Server, wait_until_healthy
from microservice.app import create_app
from microservice.settings import MicroserviceSettings
from tests.integration.microservice.helpers import microservice
from tests.integration.microservice.second_vllm import CHAT, SecondVllm, served, warm_up

pytestmark = pytest.mark.integration


def health_of(usvc: Server) -> dict[str, Any]:
    return dict(httpx.get(usvc.base_url + "/v1/health_check", timeout=10).json())


@pytest.fixture(scope="module")
def usvc_two(vllm_server: Server, vllm_b: SecondVllm, tiny_model: Path) -> Iterator[Server]:
    warm_up(vllm_server.base_url, str(tiny_model))
    endpoints = f"{vllm_server.base_url},{vllm_b.base_url}"
    with microservice("two-replicas", endpoints, str(tiny_model)) as server:
        wait_until_healthy(server, "/v1/health_check", timeout_s=60)
        yield server


async def post_all(
    base: str,
    bodies: list[dict[str, object]],
    headers: dict[str, str] | None = None,
    concurrency: int = 4,
) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as client:
        gate = asyncio.Semaphore(concurrency)

        async def one(body: dict[str, object]) -> httpx.Response:
            async with gate:
                return await client.post("/v1/chat/completions", json=body, headers=headers)

        return list(await asyncio.gather(*(one(b) for b in bodies)))


async def test_both_replicas_take_load(
    usvc_two: Server, vllm_server: Server, vllm_b: SecondVllm
) -> None:
    before = served(vllm_server.base_url), served(vllm_b.base_url)
    replies = await post_all(usvc_two.base_url, [CHAT] * 16)
    assert [r.status_code for r in replies] == [200] * 16
    grew = served(vllm_server.base_url) - before[0], served(vllm_b.base_url) - before[1]
    # Least-loaded follows the engines' speed, which a shared 2-core host makes uneven: the
    # even split itself is asserted in the unit tests; here both must take a real share.
    assert sum(grew) == 16 and min(grew) >= 2, grew
    assert [r["healthy"] for r in health_of(usvc_two)["replicas"]] == [True, True]


async def test_a_session_stays_on_one_server(
    vllm_server: Server, vllm_b: SecondVllm, tiny_model: Path
) -> None:
    endpoints = f"{vllm_server.base_url},{vllm_b.base_url}"
    with microservice("session", endpoints, str(tiny_model), LLM_ROUTING="session") as usvc:
        wait_until_healthy(usvc, "/v1/health_check", timeout_s=60)
        for session in ("alice", "bob", "carol", "dave"):
            before = served(vllm_server.base_url), served(vllm_b.base_url)
            replies = await post_all(usvc.base_url, [CHAT] * 6, {"X-Session-Id": session})
            assert [r.status_code for r in replies] == [200] * 6
            grew = served(vllm_server.base_url) - before[0], served(vllm_b.base_url) - before[1]
            assert sorted(grew) == [0, 6], (session, grew)
        # The OpenAI `user` field is the key when no header is given.
        before = served(vllm_server.base_url), served(vllm_b.base_url)
        replies = await post_all(usvc.base_url, [{**CHAT, "user": "alice"}] * 4)
        grew = served(vllm_server.base_url) - before[0], served(vllm_b.base_url) - before[1]
        assert sorted(grew) == [0, 4], grew


async def test_sigkill_of_one_server_under_load_fails_no_request_and_it_returns(
    usvc_two: Server, vllm_b: SecondVllm
) -> None:
    """8 clients; B is SIGKILLed mid-way. No request fails, not even a stream under way on B
    (it is resumed on A), and no answer waits much longer than the slowest before the kill: a
    refused or reset connection moves its request at once. B restarted: in use again within
    seconds.

    Here the answers around the kill take 0.2-0.5 s, and took 4.5 s when a dead replica's
    requests lingered; the bound leaves 2 s over the slowest before the kill, because this
    2-core host also tears down B's memory and, in CI, runs the linters beside the tests
    (a batch of answers held up 0.8 s by that was seen once)."""
    problems: list[str] = []
    answers: list[tuple[float, float, bool]] = []  # began, ended, stream
    stop = asyncio.Event()

    async def client_loop(client: httpx.AsyncClient, i: int) -> None:
        n = 0
        while not stop.is_set():
            stream, n = (i + n) % 2 == 0, n + 1
            started = time.monotonic()
            async with client.stream(
                "POST", "/v1/chat/completions", json={**CHAT, "stream": stream}
            ) as reply:
                body = await reply.aread()
            answers.append((started, time.monotonic(), stream))
            if reply.status_code != 200 or (stream and b'"error"' in body):
                problems.append(f"{reply.status_code} stream={stream}: {body[-200:]!r}")

    try:
        async with httpx.AsyncClient(base_url=usvc_two.base_url, timeout=120) as client:
            workers = [asyncio.create_task(client_loop(client, i)) for i in range(8)]
            await asyncio.sleep(3)
            kill_sent = time.monotonic()
            await asyncio.to_thread(vllm_b.kill)
            await asyncio.sleep(4)
            stop.set()
            await asyncio.gather(*workers)
    finally:
        await asyncio.to_thread(vllm_b.start)  # the later tests need B, whatever happened
    assert problems == []
    before = max(end - began for began, end, _ in answers if end < kill_sent)
    around = [end - began for began, end, _ in answers if end >= kill_sent]
    print(f"slowest answer before the kill {before:.2f} s, around it {max(around):.2f} s")
    assert max(around) <= before + 2.0, (before, sorted(around)[-5:])

    healthy_at = time.monotonic()
    before = served(vllm_b.base_url)
    while served(vllm_b.base_url) == before:
        assert time.monotonic() - healthy_at < 5, "the restarted server got no request in 5 s"
        await post_all(usvc_two.base_url, [CHAT] * 2, concurrency=2)


async def test_tight_admission_limits_answer_429_never_5xx(
    vllm_server: Server, vllm_b: SecondVllm, tiny_model: Path
) -> None:
    endpoints = f"{vllm_server.base_url},{vllm_b.base_url}"
    limits = {"LLM_MAX_INFLIGHT_PER_REPLICA": "1", "LLM_QUEUE_SIZE": "2"}
    slow = {**CHAT, "max_tokens": 48, "ignore_eos": True}
    with microservice("admission", endpoints, str(tiny_model), **limits) as usvc:
        wait_until_healthy(usvc, "/v1/health_check", timeout_s=60)
        replies = await post_all(usvc.base_url, [slow] * 10, concurrency=10)
    codes = sorted(r.status_code for r in replies)
    assert set(codes) == {200, 429}, codes
    assert codes.count(200) >= 4  # 2 in flight and 2 queued at least
    refused = [r for r in replies if r.status_code == 429]
    assert all(int(r.headers["retry-after"]) >= 1 for r in refused)
    assert all(r.json()["error"]["type"] == "rate_limit_error" for r in refused)


class ResolverStandin:
    """A DNS STAND-IN: the test changes what ``vllm-pods`` resolves to."""

    def __init__(self, addresses: list[str]) -> None:
        self.addresses = addresses

    async def __call__(self, host: str, port: int) -> list[str]:
        if host != "vllm-pods":
            raise OSError(host)
        return list(self.addresses)


@contextlib.asynccontextmanager
async def in_process(
    settings: MicroserviceSettings, resolver: ResolverStandin
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, resolver=resolver)
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
        transport=transport, base_url="http://usvc", timeout=120
    ) as client:  # fmt: skip
        yield client


async def replica_addresses(client: httpx.AsyncClient, want: set[str]) -> set[str]:
    """The healthy replicas once they are ``want`` (the refresh is 0.2 s), or after 10 s."""
    deadline = time.monotonic() + 10
    while True:
        health = (await client.get("/v1/health_check")).json()
        healthy = {r["address"] for r in health["replicas"] if r["healthy"]}
        if healthy == want or time.monotonic() > deadline:
            return healthy
        await asyncio.sleep(0.2)


async def test_dns_discovery_follows_the_answer(
    vllm_server: Server, vllm_b: SecondVllm, tiny_model: Path
) -> None:
    port = urlsplit(vllm_server.base_url).port
    a, b = f"http://127.0.0.1:{port}", f"http://127.0.0.2:{port}"
    resolver = ResolverStandin(["127.0.0.1", "127.0.0.2"])
    settings = MicroserviceSettings(
        llm_model_name=str(tiny_model),
        llm_model_server_endpoint=f"http://vllm-pods:{port}",
        llm_discovery_refresh_s=0.2,
        llm_probe_interval_s=0.5,
    )
    async with in_process(settings, resolver) as client:
        assert await replica_addresses(client, {a, b}) == {a, b}
        before = served(vllm_server.base_url), served(vllm_b.base_url)
        for _ in range(6):
            assert (await client.post("/v1/chat/completions", json=CHAT)).status_code == 200
        assert served(vllm_server.base_url) > before[0] and served(vllm_b.base_url) > before[1]

        resolver.addresses = ["127.0.0.2", "127.0.0.3"]  # a pod gone, one not answering yet
        assert await replica_addresses(client, {b}) == {b}
        health = (await client.get("/v1/health_check")).json()
        assert {r["address"] for r in health["replicas"]} == {b, f"http://127.0.0.3:{port}"}
        before_b = served(vllm_b.base_url)
        for _ in range(3):
            assert (await client.post("/v1/chat/completions", json=CHAT)).status_code == 200
        assert served(vllm_b.base_url) == before_b + 3
