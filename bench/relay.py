"""Relay micro-benchmark: the proxy alone, in front of a STAND-IN that replays vLLM's bytes.

The stand-in (bench/replay_upstream.py) answers every streaming request with a 64-token stream
recorded from the real vLLM earlier in the same run, as fast as the socket allows, so the
proxy's own relay cost is what limits the rate. The figure is chunks relayed per second of the
proxy's CPU time (its process tree), i.e. chunks/s per core.

A second stand-in lets the generic microservice route over two replicas: against the same
microservice over one, that is routing's own cost per request with the upstream's pace taken out
(over real vLLM replicas on shared cores, the pace differs between one replica and two, and the
relay's batching of chunks per read with it).
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

from bench import cores, forms, loadgen, procstat, servers
from bench.forms import Form
from bench.scenarios import OVER_TWO, PASSTHROUGH

STREAM_TOKENS = 64


async def record(client: httpx.AsyncClient, vllm_url: str, model: str) -> dict[str, str]:
    """Real vLLM answers, as the microservice asks for them (usage included, one token a chunk)."""
    ask = {
        "model": model,
        "messages": [{"role": "user", "content": forms.PROMPT}],
        "max_tokens": STREAM_TOKENS,
        "ignore_eos": True,
        "temperature": 0,
    }
    stream = {**ask, "stream": True, "stream_options": {"include_usage": True}}
    url = vllm_url + "/v1/chat/completions"
    return {
        "models": (await client.get(vllm_url + "/v1/models")).text,
        "completion": (await client.post(url, json={**ask, "max_tokens": 16})).text,
        "stream": (await client.post(url, json=stream)).text,
    }


def save(recording: dict[str, str], work: Path) -> Path:
    """The recording as the stand-in upstream reads it (work/recording.json)."""
    path = work / "recording.json"
    path.write_text(json.dumps(recording))
    return path


@dataclass
class RelayRow:
    target: str
    requests: int
    errors: int
    upstream_chunks_per_req: int
    cpu_s: float
    chunks_per_core_s: float
    wall_chunks_s: float

    def to_json(self) -> dict[str, object]:
        return asdict(self)


async def _measure(
    name: str, base_url: str, pid: int, form: Form, model: str, chunks: int, requests: int
) -> RelayRow:
    body = forms.body(form, model, STREAM_TOKENS, True)
    async with loadgen.make_client(8) as client:
        await loadgen.run_segment(client, base_url, body, form, True, 8, 16, 30)  # warm-up
        before = procstat.cpu_seconds(pid)
        segment = await loadgen.run_segment(client, base_url, body, form, True, 8, requests, 60)
        cpu_s = procstat.cpu_seconds(pid) - before
    ok = sum(shot.ok for shot in segment.shots)
    relayed = ok * chunks
    return RelayRow(
        target=name,
        requests=ok,
        errors=len(segment.shots) - ok,
        upstream_chunks_per_req=chunks,
        cpu_s=round(cpu_s, 3),
        chunks_per_core_s=round(relayed / cpu_s) if cpu_s else 0.0,
        wall_chunks_s=round(relayed / segment.wall_s),
    )


async def run(
    recording: dict[str, str],
    model: str,
    work: Path,
    requests: int,
    pinning: cores.Cores | None = None,
) -> list[RelayRow]:
    """Each proxy in front of the stand-in (the routed microservice in front of two), one at a
    time, streaming at concurrency 8; with ``pinning``, the proxies on a core of their own."""
    path = save(recording, work)
    chunks = recording["stream"].count("data: ") - recording["stream"].count("data: [DONE]")
    rows = []
    with contextlib.ExitStack() as stack:
        upstream = stack.enter_context(servers.replay_upstream(path, work)).base_url
        second = stack.enter_context(servers.replay_upstream(path, work, "-2")).base_url
        passthrough = stack.enter_context(servers.passthrough("relay", upstream, work))
        generic = stack.enter_context(servers.microservice("relay-generic", upstream, model, work))
        over_two = stack.enter_context(
            servers.microservice("relay-generic-over-2", f"{upstream},{second}", model, work)
        )
        langchain = stack.enter_context(
            servers.microservice(
                "relay-langchain", upstream, model, work, LLM_CONNECTOR="langchain"
            )
        )
        plan: list[tuple[str, str, int, Form]] = [
            (PASSTHROUGH, passthrough.base_url, passthrough.process.pid, "openai"),
            ("generic, OpenAI form", generic.base_url, generic.process.pid, "openai"),
            (OVER_TWO, over_two.base_url, over_two.process.pid, "openai"),
            ("generic, OPEA form", generic.base_url, generic.process.pid, "opea"),
            ("langchain, OpenAI form", langchain.base_url, langchain.process.pid, "openai"),
            ("langchain, OPEA form", langchain.base_url, langchain.process.pid, "opea"),
        ]
        cores.pin_proxies(sorted({pid for _, _, pid, _ in plan}), pinning)
        for name, url, pid, form in plan:
            rows.append(await _measure(name, url, pid, form, model, chunks, requests))
    return rows
