"""Sends the RAG work (bench/rag_work.py) to one target: a few clients take the asks in order,
each a streamed chat completion; a conversation's turn waits for its previous turn's answer,
which joins its history.

Unlike bench/loadgen.py it parses every event (it keeps the answer's text for the next turn);
its own cost is not measured, only the proxy's and vLLM's.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx
import orjson

from bench import rag_work
from bench.loadgen import CHAT_PATH, HEADERS
from bench.rag_work import Ask, Shape


@dataclass(frozen=True, slots=True)
class Shot:
    """One ask as the client saw it: TTFT is the time to the first chunk with a token."""

    ok: bool
    latency_s: float
    ttft_s: float | None
    error: str = ""


@dataclass
class Sent:
    """Every ask of one segment, and the wall time they took together."""

    shots: list[Shot] = field(default_factory=list)
    wall_s: float = 0.0


def body(model: str, messages: list[dict[str, str]], max_tokens: int) -> bytes:
    request = {
        "model": model,
        "messages": messages,
        "max_tokens": max_tokens,
        "temperature": 0,
        "ignore_eos": True,
        "stream": True,
    }
    return orjson.dumps(request)


def _token(line: bytes) -> str | None:
    """The text of a ``data:`` line that carries a generated token (its text may be '': a
    byte-level token that ends no character yet); None for any other line, the role chunk
    included."""
    if not line.startswith(b"data: ") or line == b"data: [DONE]":
        return None
    try:
        delta = orjson.loads(line[6:])["choices"][0]["delta"]
    except (ValueError, KeyError, IndexError, TypeError):
        return None
    if not isinstance(delta, dict) or "role" in delta or "content" not in delta:
        return None
    return str(delta["content"] or "")


async def _stream(client: httpx.AsyncClient, url: str, content: bytes) -> tuple[Shot, str]:
    start = time.perf_counter()
    ttft: float | None = None
    text: list[str] = []
    done = False
    async with client.stream("POST", url, content=content, headers=HEADERS) as response:
        if response.status_code != 200:
            await response.aread()
            error = f"HTTP {response.status_code}: {response.text[:120]}"
            return Shot(False, time.perf_counter() - start, None, error), ""
        async for line in response.aiter_lines():
            done = done or line == "data: [DONE]"
            piece = _token(line.encode())
            if piece is not None:
                ttft = ttft or time.perf_counter() - start
                text.append(piece)
    latency = time.perf_counter() - start
    if ttft is None or not done:
        return Shot(False, latency, None, "no token or no [DONE] in the stream"), ""
    return Shot(True, latency, ttft), "".join(text)


async def send(
    client: httpx.AsyncClient,
    base_url: str,
    model: str,
    salt: str,
    *,
    shape: Shape,
    concurrency: int,
    max_tokens: int,
    time_limit_s: float,
) -> Sent:
    """The whole work, ``concurrency`` asks at a time, in order; no new ask after the limit.
    A turn whose previous turn failed is sent with an empty answer in its history."""
    asks: Sequence[Ask] = rag_work.build(shape)
    system = rag_work.template(shape, salt)
    answers: dict[int, str] = {}
    done = {ask.index: asyncio.Event() for ask in asks}
    queue = list(reversed(asks))
    sent = Sent()
    deadline = time.monotonic() + time_limit_s

    async def worker() -> None:
        while queue and time.monotonic() < deadline:
            ask = queue.pop()
            if ask.after is not None:
                await done[ask.after].wait()
            messages = rag_work.messages(ask, list(asks), system, answers)
            try:
                shot, answers[ask.index] = await _stream(
                    client, base_url + CHAT_PATH, body(model, messages, max_tokens)
                )
            except httpx.HTTPError as error:
                shot = Shot(False, 0.0, None, f"{type(error).__name__}: {error}")
            finally:
                done[ask.index].set()
            sent.shots.append(shot)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    sent.wall_s = time.perf_counter() - start
    return sent
