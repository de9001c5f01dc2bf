"""STAND-IN for vLLM, for the benchmark only: replays recorded vLLM answers.

It answers /health, /v1/models and /v1/chat/completions with bytes recorded from the real vLLM
earlier in the same run (``bench.relay.record``). Plain asyncio, HTTP/1.1 keep-alive, no
framework: the stand-in must cost as little as possible. Two modes:

- **one write** (pace 0, the relay micro-benchmark): every answer leaves in one write, as fast
  as the socket allows, so the only thing left to measure is the proxy's own relay cost;
- **paced** (pace > 0, the stand-in scenarios): a streaming answer is sent chunked, one SSE
  event per write, the pace apart (2 ms: the pace of a GPU-served vLLM; the CPU vLLM of this
  machine is far slower), so a proxy reads every event on its own, as it does in front of a
  real model server. Non-streaming answers still leave at once (the "instant upstream").

Run: python -m bench.replay_upstream RECORDING.json PORT [PACE_MS]
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from pathlib import Path

from harness.raw_http import read_request

STREAM_ASKED = re.compile(rb'"stream":\s*true')
DEFAULT_PACE_MS = 2.0


def _response(content_type: str, body: bytes) -> bytes:
    head = f"HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\ncontent-length: {len(body)}\r\n\r\n"
    return head.encode() + body


def events(stream: bytes) -> list[bytes]:
    """The SSE events of a recorded stream, each with its blank-line terminator."""
    return [part + b"\n\n" for part in stream.split(b"\n\n") if part.strip()]


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


CHUNKED_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
)
LAST_CHUNK = b"0\r\n\r\n"


class Replay:
    def __init__(self, recording: dict[str, str], pace_s: float = 0.0) -> None:
        self.pace_s = pace_s
        self.health = _response("application/json", b"{}")
        self.models = _response("application/json", recording["models"].encode())
        self.completion = _response("application/json", recording["completion"].encode())
        self.stream = _response("text/event-stream", recording["stream"].encode())
        # Paced mode: the chunked frames, prepared once; the head leaves with the first event.
        frames = [_chunk(event) for event in events(recording["stream"].encode())]
        frames[0] = CHUNKED_HEAD + frames[0]
        frames[-1] += LAST_CHUNK
        self.paced = frames

    def answer(self, path: bytes, body: bytes) -> bytes | list[bytes]:
        """The bytes of one answer; a list is written one item at a time, the pace apart."""
        if path.startswith(b"/v1/chat/completions"):
            if not STREAM_ASKED.search(body):
                return self.completion
            return self.paced if self.pace_s > 0 else self.stream
        if path.startswith(b"/v1/models"):
            return self.models
        return self.health

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head, body = await read_request(reader)
                path = head.split(b" ", 2)[1]
                answer = self.answer(path, body)
                if isinstance(answer, bytes):
                    writer.write(answer)
                    await writer.drain()
                    continue
                for index, frame in enumerate(answer):
                    if index:
                        await asyncio.sleep(self.pace_s)
                    writer.write(frame)
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
    pace_ms = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0
    asyncio.run(main(Replay(recorded, pace_ms / 1000), int(sys.argv[2])))
