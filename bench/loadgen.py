"""Our own async load generator: N requests at concurrency C, bounded in count and in time.

It sends prepared bytes (no per-request serialisation) and reads streams as raw bytes, counting
events and timing the first one that carries text, so its own cost per chunk stays small and
the same for every target.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx

from bench.forms import FIRST_TEXT, Form

CHAT_PATH = "/v1/chat/completions"
HEADERS = {"content-type": "application/json"}


@dataclass(frozen=True, slots=True)
class Shot:
    """One request as the client saw it."""

    ok: bool
    latency_s: float
    ttft_s: float | None
    events: int
    error: str = ""


@dataclass
class Segment:
    """Every request of one target in one scenario, and the wall time they took together."""

    shots: list[Shot] = field(default_factory=list)
    wall_s: float = 0.0


def make_client(concurrency: int, timeout_s: float = 120.0) -> httpx.AsyncClient:
    """One keep-alive pool per target for the whole run, so connects are not what we measure."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    return httpx.AsyncClient(limits=limits, timeout=timeout_s)


async def _stream(client: httpx.AsyncClient, url: str, body: bytes, form: Form) -> Shot:
    first_text = FIRST_TEXT[form]
    start = time.perf_counter()
    ttft: float | None = None
    events, seen, tail = 0, b"", b""
    async with client.stream("POST", url, content=body, headers=HEADERS) as response:
        if response.status_code != 200:
            await response.aread()
            return Shot(False, time.perf_counter() - start, None, 0, f"HTTP {response.status_code}")
        async for part in response.aiter_raw():
            if ttft is None:
                seen += part
                if first_text.search(seen):
                    ttft, seen = time.perf_counter() - start, b""
            events += (tail + part).count(b"\n\n")
            tail = part[-1:]
    return Shot(True, time.perf_counter() - start, ttft, events)


async def _whole(client: httpx.AsyncClient, url: str, body: bytes) -> Shot:
    start = time.perf_counter()
    response = await client.post(url, content=body, headers=HEADERS)
    latency = time.perf_counter() - start
    if response.status_code != 200:
        return Shot(False, latency, None, 0, f"HTTP {response.status_code}")
    return Shot(True, latency, None, 0)


async def one(
    client: httpx.AsyncClient, base_url: str, body: bytes, form: Form, stream: bool
) -> Shot:
    url = base_url + CHAT_PATH
    try:
        if stream:
            return await _stream(client, url, body, form)
        return await _whole(client, url, body)
    except httpx.HTTPError as error:
        return Shot(False, 0.0, None, 0, f"{type(error).__name__}: {error}")


async def run_segment(
    client: httpx.AsyncClient,
    base_url: str | Sequence[str],
    body: bytes,
    form: Form,
    stream: bool,
    concurrency: int,
    requests: int,
    time_limit_s: float,
) -> Segment:
    """``requests`` requests, ``concurrency`` at a time; no new one starts after the limit.

    Several base URLs: the requests go to each in turn (round robin at the client, no proxy),
    the direct baseline over several replicas."""
    segment = Segment()
    urls = [base_url] if isinstance(base_url, str) else list(base_url)
    remaining = requests
    deadline = time.monotonic() + time_limit_s

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0 and time.monotonic() < deadline:
            remaining -= 1
            url = urls[remaining % len(urls)]
            segment.shots.append(await one(client, url, body, form, stream))

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    segment.wall_s = time.perf_counter() - start
    return segment
