"""The RAG routing phase: two vLLM replicas of the tiny model, and in front of them the
microservice once per routing policy and vLLM's Rust router with its cache-aware policy; each
sent the same RAG-shaped work (bench/rag_work.py), beside the same work sent straight to ONE
replica (the reference: what a single replica computes, with every request's prefix cached
where it could be). Counted with vLLM's own prefix-cache and request counters.

Rounds as in bench/run.py: in each round every target gets one segment, in an order rotated per
round. Replicas are pinned like the two-replica scenarios there (both on the first core, the
load generator and the proxies on the second).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, get_args

from bench import cores, loadgen, procstat, servers
from bench.rag_measure import RagRecord, RagTarget, Work, segment
from bench.rag_work import BENCH, Shape

REFERENCE = "vLLM direct, one replica"
ROUTER_CACHE_AWARE = "vLLM router (Rust), cache_aware"
MICROSERVICE = "microservice, "
# The microservice's policies measured, each a target of its own (LLM_ROUTING), cache_aware
# with the index of the prompts it sent (LLM_CACHE_EVENTS=false); one the microservice does not
# know is left out.
POLICIES = ("round_robin", "least_loaded", "prefix", "cache_aware")
APPROXIMATE = {"LLM_CACHE_EVENTS": "false"}
# cache_aware in two worker processes (LLM_USVC_WORKERS=2): what indexes of their own cost.
CACHE_AWARE_TWO_WORKERS = MICROSERVICE + "cache_aware, 2 workers"
# cache_aware fed by the replicas' KV-cache events (the replicas publish them for every
# target; only these read them), in one and in two worker processes.
CACHE_AWARE_EVENTS = MICROSERVICE + "cache_aware, events"
KV_EVENTS_TARGETS: dict[str, dict[str, str]] = {
    CACHE_AWARE_EVENTS: {"LLM_ROUTING": "cache_aware"},
    MICROSERVICE + "cache_aware, events, 2 workers": {
        "LLM_ROUTING": "cache_aware",
        "LLM_USVC_WORKERS": "2",
    },
}
REPLICAS = 2
# Long enough for the longest prompt of the work (about 1,650 tokens, with the answer); the
# tiny model's context is 2,048 positions.
MAX_MODEL_LEN = "2048"
CACHE_CONFIG = re.compile(r"^vllm:cache_config_info\{([^}]*)\}", re.M)
LABEL = re.compile(r'(\w+)="([^"]*)"')


RECORD_LISTS = ("records", "ttft_records")


@dataclass
class RagPhase:
    """Every RAG segment of one run; JSON-ready."""

    records: list[RagRecord] = field(default_factory=list)
    seconds: float = 0.0
    cores: dict[str, str] = field(default_factory=dict)
    # Each replica's KV cache in tokens and its block size (vLLM's cache_config_info): the
    # salts keep targets apart only while no cached block is evicted (see ``salt``).
    kv_cache_tokens: list[float] = field(default_factory=list)
    block_size: int = 0
    shape: dict[str, object] = field(default_factory=dict)
    alone: bool = False  # measured in a run of its own (``--only rag``)
    # The same work's TTFT on the prefill-heavy model (bench/rag_ttft.py), where it ran.
    ttft_records: list[RagRecord] = field(default_factory=list)
    ttft_seconds: float = 0.0

    def to_json(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> RagPhase:
        phase = cls(**{k: v for k, v in doc.items() if k not in RECORD_LISTS})
        phase.records = [RagRecord(**r) for r in doc.get("records", [])]
        phase.ttft_records = [RagRecord(**r) for r in doc.get("ttft_records", [])]
        return phase


def scaled(scale: float) -> Shape:
    """The work with ``scale`` times the document sets and conversations (at least 2 and 1)."""
    sets = max(2, round(BENCH.sets * scale))
    conversations = max(1, round(BENCH.conversations * scale))
    return replace(BENCH, sets=sets, conversations=conversations)


def policies() -> list[str]:
    """POLICIES the microservice's settings accept (its LLM_ROUTING values)."""
    from microservice.settings import RoutingPolicy

    known = set(get_args(RoutingPolicy))
    return [policy for policy in POLICIES if policy in known]


def salt(run_id: str, round_index: int, target_index: int) -> str:
    """Unique per segment. Why salts and not a cache reset: each segment's template starts with
    its own salt, so no KV block of one segment matches another's (vLLM hashes each block
    over every token before it) and no cache carries over between targets or rounds, with no
    restart and no dev-mode endpoint (``/reset_prefix_cache`` needs VLLM_SERVER_DEV_MODE). It
    holds while nothing is evicted: vLLM reuses a freed cached block only once every never-used
    block was handed out, and 1 GiB holds about 2 million tokens of the tiny model, far more
    than a replica computes in the whole phase (the report checks it: misses plus generated
    tokens against ``kv_cache_tokens``)."""
    return f"{run_id}-{round_index:02d}-{target_index:02d}"


async def cache_config(urls: list[str]) -> tuple[list[float], int]:
    """Each replica's KV-cache size in tokens, and the block size, from cache_config_info."""
    sizes, block = [], 0
    async with loadgen.make_client(1) as client:
        for url in urls:
            text = (await client.get(url + "/metrics")).text
            found = CACHE_CONFIG.search(text)
            labels = dict(LABEL.findall(found.group(1))) if found else {}
            sizes.append(float(labels.get("kv_cache_size_tokens", 0)))
            block = int(labels.get("block_size", 0))
    return sizes, block


async def _targets(
    stack: contextlib.ExitStack, urls: list[str], model: str, work: Path
) -> list[RagTarget]:
    endpoint = ",".join(urls)
    targets = [RagTarget(REFERENCE, urls[0], None)]
    for policy in policies():
        usvc = stack.enter_context(
            servers.microservice(
                f"rag-{policy}", endpoint, model, work, LLM_ROUTING=policy, **APPROXIMATE
            )
        )
        targets.append(RagTarget(MICROSERVICE + policy, usvc.base_url, usvc.process.pid))
    if "cache_aware" in policies():  # each worker process keeps an index of its own
        two = {"LLM_ROUTING": "cache_aware", "LLM_USVC_WORKERS": "2", **APPROXIMATE}
        usvc = stack.enter_context(
            servers.microservice("rag-cache-aware-2", endpoint, model, work, **two)
        )
        targets.append(RagTarget(CACHE_AWARE_TWO_WORKERS, usvc.base_url, usvc.process.pid))
        for n, (name, env) in enumerate(KV_EVENTS_TARGETS.items()):
            usvc = stack.enter_context(
                servers.microservice(f"rag-cache-aware-events-{n}", endpoint, model, work, **env)
            )
            targets.append(RagTarget(name, usvc.base_url, usvc.process.pid))
    router = stack.enter_context(servers.vllm_router("rag", urls, work, policy="cache_aware"))
    targets.append(RagTarget(ROUTER_CACHE_AWARE, router.base_url, router.process.pid))
    return targets


@contextlib.contextmanager
def pinned_replicas(
    model: str, work: Path, name: str, where: dict[str, str]
) -> Iterator[list[str]]:
    """Two replicas of ``model`` (their base URLs), booted on every core so that they compile
    there, then pinned as bench/cores.py says: both on the first core, this process and what
    it starts later on the second (``where`` gets who runs where); every core again after."""
    cores.unpin_self()
    pinning = cores.plan()
    boot = servers.vllm_replicas(
        Path(model),
        work,
        REPLICAS,
        name,
        port_variables=("VLLM_KV_EVENTS_PORT",),  # their KV-cache events, for the events targets
        VLLM_MAX_MODEL_LEN=MAX_MODEL_LEN,
    )
    with boot as replicas:
        if pinning:
            for replica in replicas:
                cores.pin_tree(replica.process.pid, pinning.vllm)
            cores.pin_self(pinning.rest)
            on = set().union(*(procstat.tree_cpus(r.process.pid) for r in replicas))
            where["vLLM, both replicas"] = cores.describe(on)
            where["load generator, proxies"] = cores.describe(os.sched_getaffinity(0))
        yield [r.base_url for r in replicas]
    cores.unpin_self()


async def run(work: Path, rounds: int, shape: Shape = BENCH, model: str | None = None) -> RagPhase:
    """One run of the phase; ``model`` is a built tiny model (else one is built in ``work``)."""
    from model_server.tiny_model import build

    started = time.monotonic()
    phase = RagPhase(shape=asdict(shape))
    model = model or str(build(work / "model"))
    with contextlib.ExitStack() as stack:
        urls = stack.enter_context(pinned_replicas(model, work, "rag-vllm", phase.cores))
        targets = await _targets(stack, urls, model, work)
        phase.records = await measure(targets, urls, Work(model, shape), rounds)
        phase.kv_cache_tokens, phase.block_size = await cache_config(urls)
    phase.seconds = round(time.monotonic() - started, 1)
    return phase


async def measure(
    targets: list[RagTarget], urls: list[str], work: Work, rounds: int, warm: Work | None = None
) -> list[RagRecord]:
    """A warm-up segment per target (connections, vLLM's compiled shapes; ``warm``, else the
    same work), then ``rounds`` interleaved rounds; every segment with its own salt."""
    run_id = secrets.token_hex(4)
    records = []
    async with loadgen.make_client(work.concurrency) as client:
        for index, target in enumerate(targets):
            await segment(client, target, -1, salt(run_id, 99, index), warm or work, urls)
        for round_index in range(rounds):
            shift = round_index % len(targets)
            for target in targets[shift:] + targets[:shift]:
                index = targets.index(target)
                record = await segment(
                    client, target, round_index, salt(run_id, round_index, index), work, urls
                )
                print(f"bench: rag round {round_index} {target.name}: {record.ok} ok, "
                      f"{record.failed} failed in {record.wall_s:.1f}s", flush=True)  # fmt: skip
                records.append(record)
    return records
