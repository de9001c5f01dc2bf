"""STAND-IN for vLLM, used ONLY to inject faults a real vLLM cannot show on demand.

It speaks just enough of vLLM's API (/health, /v1/models, /v1/chat/completions) for the
microservice to talk to it. The fault comes from the user message:
``STANDIN:slow`` (answers after 5 s), ``STANDIN:500`` (HTTP 500), ``STANDIN:midstream`` (two
chunks, then the connection drops). /standin/health/{code} sets the /health status and
/standin/stats counts /health calls, for the readiness-cache tests.

Run: python -m tests.integration.microservice.standin_model_server_http PORT
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

MODEL = "standin-model"


def build() -> FastAPI:
    app = FastAPI()
    state = {"health_status": 200, "health_calls": 0}

    @app.get("/health")
    async def health() -> Response:
        state["health_calls"] += 1
        return Response(status_code=state["health_status"])

    @app.post("/standin/health/{code}")
    async def set_health(code: int) -> dict[str, int]:
        state["health_status"] = code
        return state

    @app.get("/standin/stats")
    async def stats() -> dict[str, int]:
        return state

    @app.get("/v1/models")
    async def models() -> dict[str, object]:
        return {"object": "list", "data": [{"id": MODEL, "max_model_len": 512}]}

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        body = await request.json()
        fault = str(body["messages"][-1]["content"])
        if fault == "STANDIN:slow":
            await asyncio.sleep(5)
        if fault == "STANDIN:500":
            return JSONResponse({"error": {"message": "engine dead"}}, status_code=500)
        if body.get("stream"):
            return StreamingResponse(_stream(fault), media_type="text/event-stream")
        return JSONResponse(_completion())

    return app


def _chunk(text: str) -> str:
    chunk = {
        "id": "chatcmpl-standin",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": MODEL,
        "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}],
    }
    return f"data: {json.dumps(chunk)}\n\n"


async def _stream(fault: str) -> AsyncIterator[str]:
    yield _chunk("first ")
    yield _chunk("second ")
    await asyncio.sleep(0.05)
    if fault == "STANDIN:midstream":
        raise RuntimeError("stand-in drops the connection mid-stream")
    yield "data: [DONE]\n\n"


def _completion() -> dict[str, object]:
    return {
        "id": "chatcmpl-standin",
        "object": "chat.completion",
        "created": 0,
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "ok"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


if __name__ == "__main__":
    uvicorn.run(build(), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
