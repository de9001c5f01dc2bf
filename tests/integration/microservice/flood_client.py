"""A key that keeps the waiting room full, in its own process so that its client work does not
delay the steady key's client: ``python -m tests.integration.microservice.flood_client URL KEY
CONCURRENCY``. It floods until SIGTERM, lets the requests under way finish, and exits 1 on any
answer but 200. Each request generates long enough (64 tokens) that a client slowed by the
shared host still keeps its requests in flight."""

from __future__ import annotations

import asyncio
import signal
import sys

import httpx

CHAT = {
    "messages": [{"role": "user", "content": "Say something."}],
    "max_tokens": 64,
    "ignore_eos": True,
}


async def flood(url: str, key: str, concurrency: int) -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"Authorization": f"Bearer {key}"}

    async def loop(client: httpx.AsyncClient) -> None:
        while not stop.is_set():
            reply = await client.post("/v1/chat/completions", json=CHAT, headers=headers)
            if reply.status_code != 200:
                raise SystemExit(f"flood answered {reply.status_code}: {reply.text[:200]}")

    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        await asyncio.gather(*(loop(client) for _ in range(concurrency)))


if __name__ == "__main__":
    url, key, concurrency = sys.argv[1:4]
    asyncio.run(flood(url, key, int(concurrency)))
