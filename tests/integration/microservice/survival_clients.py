"""What the survival tests send and check: one request of each form, one answer read as it
arrives (with when each event came), what makes an answer not whole, and the load around the
faults (busy loops that starve the CPU)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from harness.processes import Server, wait_until_healthy
from tests.integration.microservice.helpers import metric
from tests.integration.microservice.second_vllm import SecondVllm
from tests.sse import line_data, sse_data

FORMS = ("chat", "opea", "completions")
STALL_S = 5.0  # LLM_STALL_S and LLM_STREAM_STALL_S by default
LONG = 400  # tokens: a stream still under way seconds later (the model's context is 512)
# A stream cut and resumed: its partial text goes back as the continuation's prompt, where the
# tiny model's gibberish can take up to half as many tokens again as it was generated in; at
# 300 the prompt, that text and the tokens still owed stay within the context of 512, so the
# whole answer is exactly 300 tokens (beyond, vLLM would cap the continuation at the context).
RESUMED = 300
SHORT = 24


def request(form: str, tag: str, max_tokens: int, *, stream: bool) -> tuple[str, dict[str, Any]]:
    """A request of ``form``, its prompt made distinct by ``tag`` (so that cache-aware routing
    spreads them), generating exactly ``max_tokens`` where the form lets vLLM ignore EOS."""
    if form == "opea":  # no ignore_eos in the OPEA form: the tiny model decides the length
        body = {"messages": {"user": f"Tell tale {tag}."}, "max_new_tokens": max_tokens}
        return "/v1/chat/completions", {**body, "streaming": stream}
    params: dict[str, Any] = {"max_tokens": max_tokens, "ignore_eos": True, "temperature": 0}
    params["stream"] = stream
    if stream:
        params["stream_options"] = {"include_usage": True}
    if form == "chat":
        messages = [{"role": "user", "content": f"Tell tale {tag}."}]
        return "/v1/chat/completions", {"messages": messages, **params}
    return "/v1/completions", {"prompt": f"Tale {tag}:", **params}


def problems_with(label: str, form: str, max_tokens: int, status: int, text: str) -> list[str]:
    """What is wrong with one answer, stream or not: not 200, an error, a cut stream, more
    than one id or usage chunk, or a token count that is not the whole answer's."""
    if status != 200:
        return [f"{label}: HTTP {status}: {text[-300:]}"]
    if not text.startswith("data: "):  # a JSON body
        answer = json.loads(text)
        if "error" in answer:
            return [f"{label}: error body {answer['error']}"]
        if form != "opea" and answer["usage"]["completion_tokens"] != max_tokens:
            return [f"{label}: completion_tokens {answer['usage']} != {max_tokens}"]
        return []
    events = sse_data(text)
    found = [] if events[-1:] == ["[DONE]"] else [f"{label}: no [DONE] at the end: {events[-2:]}"]
    errors = [e for e in events if e.startswith("{") and "error" in json.loads(e)]
    found += [f"{label}: error event {e[:300]}" for e in errors]
    if form == "opea" or errors or found:
        return found
    chunks = [json.loads(e) for e in events[:-1]]
    ids = {c["id"] for c in chunks}
    if len(ids) != 1:
        found.append(f"{label}: {len(ids)} ids in one stream: {sorted(ids)}")
    usage = [c["usage"] for c in chunks if c.get("usage")]
    if len(usage) != 1 or chunks[-1]["choices"] != [] or not chunks[-1].get("usage"):
        found.append(f"{label}: {len(usage)} usage chunks, last chunk {chunks[-1]}")
    elif usage[0]["completion_tokens"] != max_tokens:
        found.append(f"{label}: completion_tokens {usage[0]} != {max_tokens}")
    return found


@dataclass
class Answer:
    """One request's answer as it arrives: its status, its lines, when its first event came."""

    label: str
    form: str
    max_tokens: int
    status: int = 0
    lines: list[str] = field(default_factory=list)
    times: list[float] = field(default_factory=list)  # when each event came
    began: asyncio.Event = field(default_factory=asyncio.Event)
    took_s: float = 0.0
    failure: str = ""  # the client's own error (connection cut, time-out)

    async def fetch(self, client: httpx.AsyncClient, url: str, body: dict[str, Any]) -> None:
        started = time.monotonic()
        try:
            async with client.stream("POST", url, json=body) as reply:
                self.status = reply.status_code
                async for line in reply.aiter_lines():
                    self.lines.append(line)
                    if line_data(line) is not None:
                        self.times.append(time.monotonic())
                        self.began.set()
        except httpx.HTTPError as error:
            self.failure = f"{type(error).__name__}: {error}"
        finally:
            self.took_s = time.monotonic() - started
            self.began.set()  # also when it failed before any event

    def problems(self) -> list[str]:
        if self.failure:
            return [f"{self.label}: {self.failure} after {self.took_s:.1f} s"]
        text = "\n".join(self.lines)
        return problems_with(self.label, self.form, self.max_tokens, self.status, text)


def page(usvc: Server) -> str:
    return httpx.get(usvc.base_url + "/metrics", timeout=10).text


async def on_b(client: httpx.AsyncClient, usvcs: list[Server], vllm_b: SecondVllm) -> bool:
    """Whether each microservice has requests in flight on B (its own gauge) and B's engine
    runs some (vLLM's), asked all at once: the tiny model answers 400 tokens in 2 s."""
    pages = await asyncio.gather(
        *(client.get(usvc.base_url + "/metrics") for usvc in usvcs),
        client.get(vllm_b.base_url + "/metrics"),
    )
    label = f'replica="{vllm_b.base_url}"'
    ours = [metric(p.text, "llm_usvc_replica_in_flight", label) for p in pages[:-1]]
    return all(ours) and metric(pages[-1].text, "vllm:num_requests_running") > 0


def replicas_healthy(usvc: Server) -> list[bool]:
    health = httpx.get(usvc.base_url + "/v1/health_check", timeout=10).json()
    return [bool(r["healthy"]) for r in health["replicas"]]


def wait_both_healthy(usvc: Server, timeout_s: float = 60) -> None:
    """Both replicas in rotation (B may just have been restarted or thawed)."""
    wait_until_healthy(usvc, "/v1/health_check", timeout_s=timeout_s)
    deadline = time.monotonic() + timeout_s
    while replicas_healthy(usvc) != [True, True]:
        assert time.monotonic() < deadline, replicas_healthy(usvc)
        time.sleep(0.2)


@contextlib.contextmanager
def busy_loops(count: int) -> Iterator[None]:
    """``count`` processes that spin on the CPU (the host has 2 cores), killed by their PIDs."""
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        yield
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


async def until(check: Callable[[], Awaitable[bool]], what: str, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail(f"not in {timeout_s} s: {what}")
        await asyncio.sleep(0.05)
