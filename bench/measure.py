"""One measured segment: the load, plus what it cost the proxy and what vLLM generated.

The proxy's CPU time (its process tree, /proc) and vLLM's own generated-token counter are read
just before and just after the segment, so each figure belongs to that segment alone.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

import httpx

from bench import forms, loadgen, procstat
from bench.scenarios import Scenario, Target

GENERATED = re.compile(rb"^vllm:generation_tokens_total(?:\{[^}]*\})? ([0-9.e+]+)$", re.M)


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

    def to_json(self) -> dict[str, object]:
        return asdict(self)


async def generated_tokens(client: httpx.AsyncClient, vllm_url: str) -> float:
    """vLLM's own count of tokens generated so far (all requests, all targets)."""
    text = (await client.get(vllm_url + "/metrics")).content
    return sum(float(value) for value in GENERATED.findall(text))


async def segment(
    target: Target,
    scenario: Scenario,
    round_index: int,
    model: str,
    vllm_url: str,
    time_limit_s: float,
) -> Record:
    body = forms.body(target.form, model, scenario.max_tokens, scenario.stream)
    tokens_before = await generated_tokens(target.client, vllm_url)
    cpu_before = procstat.cpu_seconds(target.pid) if target.pid else None
    result = await loadgen.run_segment(
        target.client,
        target.base_url,
        body,
        target.form,
        scenario.stream,
        scenario.concurrency,
        scenario.requests,
        time_limit_s,
    )
    cpu_s = None
    if target.pid and cpu_before is not None:
        cpu_s = procstat.cpu_seconds(target.pid) - cpu_before
    tokens = await generated_tokens(target.client, vllm_url) - tokens_before
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
        tokens=tokens,
    )
