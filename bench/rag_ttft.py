"""TTFT of the RAG work on a prefill-heavy model (bench/rag_model.py): on the tiny model a
prefill takes milliseconds and TTFT is the engine's overhead per request; here it takes
seconds, so a prefix found in the cache is time the user does not wait.

Two replicas of that model, pinned like the counting part, and the microservice with
round robin (the baseline of the issue's goal) and with cache_aware, without and with the
replicas' KV-cache events, on fewer requests than the counting part; every segment salted the
same way.
"""

from __future__ import annotations

import contextlib
from dataclasses import replace
from pathlib import Path

from bench import rag_model, rag_run, servers
from bench.rag_measure import RagRecord, RagTarget, Work
from bench.rag_work import Shape

# Target names carry this prefix, so their rows stand apart from the tiny model's.
PREFIX = "prefill-heavy, "
POLICIES = ("round_robin", "cache_aware")
# Document sets asked 12 questions each (a team working over the same retrieved context), one
# client. TTFT p90 shows the cache only where fewer than 10 % of the requests compute their
# documents: cache_aware computes each set once (1 request in 12), round robin about once per
# replica (2 in 12). With 3 questions a set, a third of the requests compute their documents
# under any routing and p90 is such a request for every policy. One client: both replicas
# share one core here, so a second client's request on the OTHER replica would still wait for
# this one's prefill, which replicas on hosts of their own do not (docs/benchmarks.md).
SHAPE = Shape(sets=3, questions=12, conversations=0)
CONCURRENCY = 1
WARM_UP = Shape(sets=1, questions=1, conversations=1)
MAX_TOKENS = 4


def scaled(scale: float) -> Shape:
    """SHAPE with ``scale`` times the document sets (at least 1) and conversations."""
    return replace(
        SHAPE,
        sets=max(1, round(SHAPE.sets * scale)),
        conversations=round(SHAPE.conversations * scale),
    )


async def run(
    work: Path, rounds: int, shape: Shape = SHAPE
) -> tuple[list[RagRecord], dict[str, str]]:
    """The segments, and where each side ran."""
    model = str(rag_model.build(work / "heavy-model"))
    where: dict[str, str] = {}
    with contextlib.ExitStack() as stack:
        urls = stack.enter_context(rag_run.pinned_replicas(model, work, "heavy-vllm", where))
        targets = []
        for policy in (p for p in POLICIES if p in rag_run.policies()):
            env = {"LLM_ROUTING": policy, **rag_run.APPROXIMATE}
            usvc = stack.enter_context(
                servers.microservice(f"heavy-{policy}", ",".join(urls), model, work, **env)
            )
            name = PREFIX + rag_run.MICROSERVICE + policy
            targets.append(RagTarget(name, usvc.base_url, usvc.process.pid))
        if "cache_aware" in rag_run.policies():
            env = rag_run.KV_EVENTS_TARGETS[rag_run.CACHE_AWARE_EVENTS]
            usvc = stack.enter_context(
                servers.microservice("heavy-cache-aware-events", ",".join(urls), model, work, **env)
            )
            name = PREFIX + rag_run.CACHE_AWARE_EVENTS
            targets.append(RagTarget(name, usvc.base_url, usvc.process.pid))
        work_of = Work(model, shape, CONCURRENCY, max_tokens=MAX_TOKENS, time_limit_s=300)
        warm = Work(model, WARM_UP, max_tokens=MAX_TOKENS)
        records = await rag_run.measure(targets, urls, work_of, rounds, warm)
    return records, where
