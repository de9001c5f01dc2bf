"""The real app on a real uvicorn socket (httptools, as in production) in front of the scripted
STAND-IN model server: for what only a real server socket shows (pushed streams, a client that
hangs up)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import httpx
import orjson
import uvicorn

from harness.processes import free_port
from microservice.app import create_app
from microservice.settings import MicroserviceSettings
from tests.unit.microservice.scripted_model_server import (
    Script,
    ScriptedServer,
    json_answer,
    scripted,
)
from tests.unit.microservice.standin_model_server import MODEL

MODELS = {"object": "list", "data": [{"id": MODEL, "object": "model", "max_model_len": 2048}]}


def vllm(stream: list[tuple[float, bytes | None]]) -> Script:
    """Health, models and a 404 for /metrics as vLLM's probes expect; ``stream`` for a POST."""

    def script(head: bytes) -> list[tuple[float, bytes | None]]:
        path = head.split(b" ")[1]
        if path == b"/health":
            return [(0, json_answer(200, b"{}"))]
        if path == b"/v1/models":
            return [(0, json_answer(200, orjson.dumps(MODELS)))]
        if not head.startswith(b"POST"):
            return [(0, json_answer(404, b"{}"))]
        return stream

    return script


async def until(condition: Callable[[], bool], timeout_s: float) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():  # noqa: ASYNC110 - state of a server or a test double, no event
            await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def served(
    script: Script, **settings: float
) -> AsyncIterator[tuple[ScriptedServer, httpx.AsyncClient]]:
    async with scripted(script) as (upstream, url):
        config = MicroserviceSettings.model_validate(
            {"llm_model_name": MODEL, "llm_model_server_endpoint": url, **settings}
        )
        port = free_port()
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(config), host="127.0.0.1", port=port, http="httptools",
                loop="none", log_config=None,
            )
        )  # fmt: skip
        serving = asyncio.ensure_future(server.serve())
        try:
            await until(lambda: server.started, 10)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
                yield upstream, client
        finally:
            server.should_exit = True
            await serving
