"""One measured segment: the load, plus what it cost the proxy and what vLLM generated.

The proxy's CPU time (its process tree's threads, /proc, in nanoseconds) and each vLLM
replica's own counters (generated tokens, finished requests) are read just before and just after
the segment, so each figure belongs to that segment alone. Against a stand-in upstream there is
no vLLM to read: no replica URLs, no token counts.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import httpx

from bench import forms, loadgen, procstat
from bench.scenarios import Scenario, Target

GENERATED = re.compile(rb"^vllm:generation_tokens_total(?:\{[^}]*\})? ([0-9.e+]+)$", re.M)
FINISHED = re.compile(rb"^vllm:request_success_total(?:\{[^}]*\})? ([0-9.e+]+)$", re.M)


@dataclass
class Record:
    """One target in one scenario and round; JSON-ready."""

    scenario: str
    target: str
    round: int
    ok: int
    errors: list[str]
    wall_s: float
    latencies_s: list[float]
    ttfts_s: list[float]
    events: int
    cpu_s: float | None
    tokens: float
    # Requests each vLLM replica finished during the segment, by its own counter, in the order
    # the replicas were given (one entry per replica; the spread across them).
    per_replica: list[float] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Counters:
    """One replica's own running totals, from its ``/metrics``."""

    tokens: float
    finished: float


async def counters(client: httpx.AsyncClient, vllm_url: str) -> Counters:
    """vLLM's own counts so far (all requests, all targets): generated tokens, finished requests
    (every finish reason summed)."""
    text = (await client.get(vllm_url + "/metrics")).content
    return Counters(
        tokens=sum(float(value) for value in GENERATED.findall(text)),
        finished=sum(float(value) for value in FINISHED.findall(text)),
    )


async def generated_tokens(client: httpx.AsyncClient, vllm_url: str) -> float:
    """vLLM's own count of tokens generated so far (all requests, all targets)."""
    return (await counters(client, vllm_url)).tokens


async def _all(client: httpx.AsyncClient, vllm_urls: Sequence[str]) -> list[Counters]:
    return [await counters(client, url) for url in vllm_urls]


async def segment(
    target: Target,
    scenario: Scenario,
    round_index: int,
    model: str,
    vllm_url: str | Sequence[str],
    time_limit_s: float,
) -> Record:
    """One segment; ``vllm_url`` is the vLLM replica, or every replica the target may reach."""
    replicas = [vllm_url] if isinstance(vllm_url, str) else list(vllm_url)
    body = forms.body(target.form, model, scenario.max_tokens, scenario.stream)
    before = await _all(target.client, replicas)
    cpu_before = procstat.sample(target.pid) if target.pid else None
    result = await loadgen.run_segment(
        target.client,
        target.urls,
        body,
        target.form,
        scenario.stream,
        scenario.concurrency,
        scenario.requests,
        time_limit_s,
    )
    cpu_s = None
    if target.pid and cpu_before is not None:
        cpu_s = procstat.cpu_between(cpu_before, procstat.sample(target.pid))
    after = await _all(target.client, replicas)
    ok = [shot for shot in result.shots if shot.ok]
    return Record(
        scenario=scenario.name,
        target=target.name,
        round=round_index,
        ok=len(ok),
        errors=[shot.error for shot in result.shots if not shot.ok][:5],
        wall_s=result.wall_s,
        latencies_s=[shot.latency_s for shot in ok],
        ttfts_s=[shot.ttft_s for shot in ok if shot.ttft_s is not None],
        events=sum(shot.events for shot in ok),
        cpu_s=cpu_s,
        tokens=sum(a.tokens - b.tokens for a, b in zip(after, before, strict=True)),
        per_replica=[a.finished - b.finished for a, b in zip(after, before, strict=True)],
    )
