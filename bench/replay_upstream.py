"""STAND-IN for vLLM, for the relay micro-benchmark only: replays recorded vLLM answers.

It answers /health, /v1/models and /v1/chat/completions with bytes recorded from the real vLLM
earlier in the same run (``bench.relay.record``), each in one write, as fast as the socket
allows, so that the only thing left to measure is the proxy's own relay cost. Plain asyncio,
HTTP/1.1 keep-alive, no framework: the stand-in must cost as little as possible.

Run: python -m bench.replay_upstream RECORDING.json PORT
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from pathlib import Path

STREAM_ASKED = re.compile(rb'"stream":\s*true')


def _response(content_type: str, body: bytes) -> bytes:
    head = f"HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\ncontent-length: {len(body)}\r\n\r\n"
    return head.encode() + body


class Replay:
    def __init__(self, recording: dict[str, str]) -> None:
        self.health = _response("application/json", b"{}")
        self.models = _response("application/json", recording["models"].encode())
        self.completion = _response("application/json", recording["completion"].encode())
        self.stream = _response("text/event-stream", recording["stream"].encode())

    def answer(self, path: bytes, body: bytes) -> bytes:
        if path.startswith(b"/v1/chat/completions"):
            return self.stream if STREAM_ASKED.search(body) else self.completion
        if path.startswith(b"/v1/models"):
            return self.models
        return self.health

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                request_line, _, headers = head.partition(b"\r\n")
                path = request_line.split(b" ", 2)[1]
                length = 0
                for line in headers.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                body = await reader.readexactly(length) if length else b""
                writer.write(self.answer(path, body))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def main(replay: Replay, port: int) -> None:
    server = await asyncio.start_server(replay.serve, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    recorded = json.loads(Path(sys.argv[1]).read_text())
    asyncio.run(main(Replay(recorded), int(sys.argv[2])))
