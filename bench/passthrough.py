"""A REFERENCE, not a product: the thinnest FastAPI + httpx passthrough to vLLM.

No validation, no metrics, no error handling, no request ids: the body goes up as sent and
the answer's bytes come back as read. The benchmark runs it beside the microservice so every
figure has next to it what the same web stack costs with none of the service's work on top.

Run: python -m bench.passthrough UPSTREAM_URL PORT
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator

import httpx
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import Response, StreamingResponse
from starlette.background import BackgroundTask


def build(upstream: str) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
        async with httpx.AsyncClient(base_url=upstream, timeout=120, limits=limits) as client:
            app.state.client = client
            yield

    app = FastAPI(lifespan=lifespan)

    @app.get("/health")
    async def health() -> Response:
        return Response(b"{}", media_type="application/json")

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        client: httpx.AsyncClient = request.app.state.client
        upstream_request = client.build_request(
            "POST",
            "/v1/chat/completions",
            content=await request.body(),
            headers={"content-type": "application/json"},
        )
        answer = await client.send(upstream_request, stream=True)
        return StreamingResponse(
            answer.aiter_raw(),
            status_code=answer.status_code,
            media_type=answer.headers.get("content-type"),
            background=BackgroundTask(answer.aclose),
        )

    return app


def main() -> None:
    upstream, port = sys.argv[1], int(sys.argv[2])
    # Keep-alive longer than the load generator's idle pool expiry (5 s), as the microservice does.
    uvicorn.run(
        build(upstream), host="127.0.0.1", port=port, log_level="warning", timeout_keep_alive=65
    )


if __name__ == "__main__":
    main()
