"""A STAND-IN model server on loopback that writes scripted bytes for each request: what vLLM
cannot show on demand (a refused port, a silent server, a body cut short, a slow end after
[DONE], events paced as a GPU sends them), for tests of our HTTP/1.1 client and pushed streams."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from harness.raw_http import read_request

# What the scripted server writes for one request: pieces, each written on its own, with a
# pause before it; a None piece closes the connection there.
Script = Callable[[bytes], list[tuple[float, bytes | None]]]


def chunked(*events: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(e), e) for e in events)


SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
)
END = b"0\r\n\r\n"


def json_answer(status: int, body: bytes) -> bytes:
    head = f"HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {len(body)}"
    return head.encode() + b"\r\n\r\n" + body


async def still_open(reader: asyncio.StreamReader, pause: float) -> bool:
    """Wait ``pause`` seconds, watching for the client's close (nothing is read meanwhile)."""
    loop = asyncio.get_running_loop()
    until = loop.time() + pause
    while loop.time() < until:
        if reader.at_eof():
            return False
        await asyncio.sleep(min(0.01, until - loop.time()))
    return not reader.at_eof()


class ScriptedServer:
    def __init__(self, script: Script) -> None:
        self.script = script
        self.connections = 0
        self.closed = 0  # connections over, whoever closed them
        self.requests: list[bytes] = []

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head, body = await read_request(reader)
                self.requests.append(head + body)
                for pause, piece in self.script(head):
                    if not await still_open(reader, pause) or piece is None:
                        return
                    writer.write(piece)
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.closed += 1
            writer.close()


@contextlib.asynccontextmanager
async def scripted(script: Script) -> AsyncIterator[tuple[ScriptedServer, str]]:
    server = ScriptedServer(script)
    listening = await asyncio.start_server(server.serve, "127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    async with listening:
        yield server, f"http://127.0.0.1:{port}"
