"""HTTP/1.1 requests read straight off an asyncio stream, for the stand-in servers that must
control every byte they write (the benchmark's replay upstream, the tests' scripted server)."""

from __future__ import annotations

import asyncio


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """The next request on a keep-alive connection: its head (request line and headers) and its
    body (by Content-Length). ``asyncio.IncompleteReadError`` when the client closed."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    body = await reader.readexactly(length) if length else b""
    return head, body
