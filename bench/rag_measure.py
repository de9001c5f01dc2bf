"""One measured RAG segment: the work sent to one target, and what it cost each vLLM replica,
by vLLM's own counters, read from every replica's ``/metrics`` just before and just after.

Prefix-cache counters are in tokens: ``queries`` is every prompt token looked up, ``hits`` those
found cached; queries minus hits is what the replica had to compute (the misses).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import httpx

from bench import procstat, rag_load
from bench.rag_work import BENCH, Shape

SAMPLE = re.compile(rb"^(vllm:[a-z_]+)(?:\{[^}]*\})? ([0-9.e+-]+)$", re.M)
QUERIES = "vllm:prefix_cache_queries_total"
HITS = "vllm:prefix_cache_hits_total"
FINISHED = "vllm:request_success_total"
KV_USAGE = "vllm:kv_cache_usage_perc"


@dataclass(frozen=True, slots=True)
class Counters:
    """One replica's running totals (every label set summed): prefix-cache queries and hits
    in tokens, finished requests (every finish reason)."""

    queries: float
    hits: float
    finished: float


def parse(text: bytes) -> dict[str, float]:
    totals: dict[str, float] = {}
    for name, value in SAMPLE.findall(text):
        key = name.decode()
        totals[key] = totals.get(key, 0.0) + float(value)
    return totals


async def counters(client: httpx.AsyncClient, vllm_url: str) -> Counters:
    totals = parse((await client.get(vllm_url + "/metrics")).content)
    return Counters(totals.get(QUERIES, 0.0), totals.get(HITS, 0.0), totals.get(FINISHED, 0.0))


@dataclass
class RagRecord:
    """One target in one round; JSON-ready. Per-replica lists follow the replicas' order."""

    target: str
    round: int
    ok: int
    failed: int
    errors: list[str]
    wall_s: float
    ttfts_s: list[float]
    cpu_s: float | None  # the proxy's process tree; None for vLLM called directly
    queries: list[float] = field(default_factory=list)
    hits: list[float] = field(default_factory=list)
    finished: list[float] = field(default_factory=list)

    @property
    def misses(self) -> float:
        return sum(self.queries) - sum(self.hits)

    def to_json(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class RagTarget:
    """Where the work is sent, and whose CPU is measured (None: vLLM itself, not a proxy)."""

    name: str
    base_url: str
    pid: int | None


@dataclass(frozen=True, slots=True)
class Work:
    """What every segment sends: the same for every target."""

    model: str
    shape: Shape = BENCH
    concurrency: int = 4
    max_tokens: int = 12
    time_limit_s: float = 120.0


async def segment(
    client: httpx.AsyncClient,
    target: RagTarget,
    round_index: int,
    salt: str,
    work: Work,
    replicas: Sequence[str],
) -> RagRecord:
    before = [await counters(client, url) for url in replicas]
    cpu_before = procstat.sample(target.pid) if target.pid else None
    sent = await rag_load.send(
        client,
        target.base_url,
        work.model,
        salt,
        shape=work.shape,
        concurrency=work.concurrency,
        max_tokens=work.max_tokens,
        time_limit_s=work.time_limit_s,
    )
    cpu_s = None
    if target.pid and cpu_before is not None:
        cpu_s = procstat.cpu_between(cpu_before, procstat.sample(target.pid))
    after = [await counters(client, url) for url in replicas]
    pairs = list(zip(after, before, strict=True))
    ok = [shot for shot in sent.shots if shot.ok]
    return RagRecord(
        target=target.name,
        round=round_index,
        ok=len(ok),
        failed=len(sent.shots) - len(ok),
        errors=[shot.error for shot in sent.shots if not shot.ok][:5],
        wall_s=sent.wall_s,
        ttfts_s=[shot.ttft_s for shot in ok if shot.ttft_s is not None],
        cpu_s=cpu_s,
        queries=[a.queries - b.queries for a, b in pairs],
        hits=[a.hits - b.hits for a, b in pairs],
        finished=[a.finished - b.finished for a, b in pairs],
    )
