"""Leave a request while vLLM is generating it, and count what vLLM made, from vLLM's metrics.

No sleeps: the client leaves as soon as vLLM runs the request (or a stream's first token came
through), and the count is read once vLLM is idle again, however loaded the machine is.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import httpx

from tests.integration.microservice.helpers import metric
from tests.sse import line_data

IDLE_TIMEOUT_S = 60.0
POLL_S = 0.02


@dataclass(frozen=True)
class Disconnect:
    at_leave: float  # tokens vLLM had made when the client left
    total: float  # tokens vLLM made for the request in all


async def _vllm_metrics(client: httpx.AsyncClient, vllm_url: str) -> str:
    return (await client.get(vllm_url + "/metrics")).text


async def generated(client: httpx.AsyncClient, vllm_url: str) -> float:
    return metric(await _vllm_metrics(client, vllm_url), "vllm:generation_tokens_total")


async def _busy(client: httpx.AsyncClient, vllm_url: str) -> float:
    text = await _vllm_metrics(client, vllm_url)
    return metric(text, "vllm:num_requests_running") + metric(text, "vllm:num_requests_waiting")


async def _read_events_then_leave(client: httpx.AsyncClient, url: str, body: Any) -> None:
    async with client.stream("POST", url, json=body) as response:
        assert response.status_code == 200, await response.aread()
        events = 0
        async for line in response.aiter_lines():
            events += line_data(line) is not None
            if events == 2:  # the role chunk and a first token went through the proxy
                return  # leaving the block closes the connection


async def _post_until_vllm_runs(
    client: httpx.AsyncClient, url: str, vllm_url: str, body: Any, before: float
) -> None:
    """Leave once vLLM runs the request; a request that ends first shows as all tokens made."""
    call = asyncio.ensure_future(client.post(url, json=body))
    try:
        while not call.done():
            if await _busy(client, vllm_url) or await generated(client, vllm_url) > before:
                return
            await asyncio.sleep(POLL_S)
    finally:
        call.cancel()  # closes the connection to the microservice
        await asyncio.gather(call, return_exceptions=True)


async def _disconnect(url: str, vllm_url: str, body: dict[str, Any]) -> Disconnect:
    async with httpx.AsyncClient(timeout=60) as client:
        before = await generated(client, vllm_url)
        if body["stream"]:
            await _read_events_then_leave(client, url, body)
        else:
            await _post_until_vllm_runs(client, url, vllm_url, body, before)
        at_leave = await generated(client, vllm_url) - before
        deadline = time.monotonic() + IDLE_TIMEOUT_S
        while await _busy(client, vllm_url) > 0:
            assert time.monotonic() < deadline, "vLLM still runs the request a minute later"
            await asyncio.sleep(POLL_S)
        return Disconnect(at_leave, await generated(client, vllm_url) - before)


def disconnect_midway(url: str, vllm_url: str, body: dict[str, Any]) -> Disconnect:
    """POST ``body`` to ``url``, go away once vLLM is generating it, wait until vLLM is idle."""
    return asyncio.run(_disconnect(url, vllm_url, body))
