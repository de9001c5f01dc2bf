"""A key that keeps the waiting room full, in its own process so that its client work does not
delay the steady key's client: ``python -m tests.integration.microservice.flood_client URL KEY
CONCURRENCY``. Each of CONCURRENCY keep-alive connections sends the next request as soon as its
answer came, until SIGTERM; then it hangs up on the requests under way (the service counts them
499) and exits 1 if any answer was not 200.

Plain sockets and one pre-encoded request: on a host whose two cores run vLLM and CI beside it,
a client that costs little CPU per request is one the scheduler does not leave behind, and a
late client lets the room empty."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from urllib.parse import urlsplit

CHAT = {
    "messages": [{"role": "user", "content": "Say something."}],
    "max_tokens": 64,
    "ignore_eos": True,
}


def encoded_request(host: str, key: str) -> bytes:
    body = json.dumps(CHAT).encode()
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def answer_status(reader: asyncio.StreamReader) -> int:
    """The status of one answer, its body read to the end (the service sends Content-Length)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    length = next(
        int(line.split(":", 1)[1]) for line in lines if line.lower().startswith("content-length:")
    )
    await reader.readexactly(length)
    return int(lines[0].split()[1])


async def connection(host: str, port: int, request: bytes, refused: list[int]) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while True:
            writer.write(request)
            status = await answer_status(reader)
            if status != 200:
                refused.append(status)
                return
    finally:
        writer.close()


async def flood(url: str, key: str, concurrency: int) -> int:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    request = encoded_request(f"{host}:{port}", key)
    refused: list[int] = []
    loops = [
        asyncio.create_task(connection(host, port, request, refused)) for _ in range(concurrency)
    ]
    stop = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set_result, None)
    await asyncio.wait([stop, *loops], return_when=asyncio.FIRST_COMPLETED)
    for loop in loops:
        loop.cancel()
    ended = await asyncio.gather(*loops, return_exceptions=True)
    failures = [repr(end) for end in ended if isinstance(end, Exception)]
    if refused or failures or not stop.done():
        print(f"flood answered {sorted(set(refused))}, failed {failures[:3]}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    url, key, concurrency = sys.argv[1:4]
    sys.exit(asyncio.run(flood(url, key, int(concurrency))))
