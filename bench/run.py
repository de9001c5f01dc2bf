"""The side-by-side run: real vLLM, and in front of it the microservice per connector and form,
the FastAPI + httpx passthrough and vLLM's Rust router; then two vLLM replicas, the microservice
over both against the load generator spreading over both; then, with vLLM stopped, every proxy
and vLLM's Rust router in front of a stand-in upstream.

Every scenario is measured in rounds; in each round every target gets one segment, in an order
rotated per round, so slow drifts of the machine's load fall on all targets alike. Both vLLM
replicas load together at the start; the second one stays idle (its CPU time is recorded) until
the two-replica scenarios, which run after the single-replica ones. On two cores or more, vLLM
runs on one core and everything else on another; once vLLM stopped, the proxies take its core
and the load generator and stand-ins keep the other (bench/cores.py).
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench import cores, forms, loadgen, measure, procstat, relay, servers
from bench.measure import Record
from bench.rag_run import RagPhase
from bench.relay import RelayRow
from bench.scenarios import (
    DIRECT_SPREAD,
    OVER_ONE,
    OVER_TWO,
    PACE_MS,
    PASSTHROUGH,
    ROUTER,
    TWO_WORKERS,
    Scenario,
    Target,
    scenarios,
    stand_in_scenarios,
    two_replica_scenarios,
)
from bench.summary import DIRECT
from harness.processes import Server

MEMORY_REQUESTS = 1000
SEGMENT_LIMIT_S = 90.0
REPLICAS = 2


@dataclass
class Results:
    records: list[Record] = field(default_factory=list)
    memory: dict[str, dict[str, float]] = field(default_factory=dict)
    relay: list[RelayRow] = field(default_factory=list)
    load: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0
    # CPU seconds the second vLLM replica used, idle, during the single-replica scenarios.
    idle_replica_cpu_s: float | None = None
    # Who ran on which cores ("core 1"), read back from the processes; empty: not pinned.
    cores: dict[str, str] = field(default_factory=dict)
    pace_ms: float = PACE_MS
    # The RAG routing phase (bench/rag_run.py), when it ran.
    rag: RagPhase | None = None


def _load(results: Results, when: str) -> None:
    results.load[when] = [round(x, 2) for x in os.getloadavg()]


async def _interleave(
    targets: list[Target], plan: list[Scenario], rounds: int, model: str, vllm_urls: list[str]
) -> list[Record]:
    records = []
    for scenario in plan:
        for index in range(rounds):
            shift = index % len(targets)
            for target in targets[shift:] + targets[:shift]:
                record = await measure.segment(
                    target, scenario, index, model, vllm_urls, SEGMENT_LIMIT_S
                )
                print(f"bench: {scenario.name} round {index} {target.name}: {record.ok} ok "
                      f"in {record.wall_s:.1f}s", flush=True)  # fmt: skip
                records.append(record)
    return records


async def _warm_up(targets: list[Target], model: str) -> None:
    """Connections, imports, vLLM's prefix cache (on every replica a target spreads over)."""
    for each in targets:
        body = forms.body(each.form, model, 16, True)
        await loadgen.run_segment(each.client, each.urls, body, each.form, True, 4, 8, 60)


async def _top_up(target: Target, model: str, served: int) -> None:
    """Bring a microservice to MEMORY_REQUESTS served (half streaming) before reading its RSS."""
    missing = MEMORY_REQUESTS - served
    for stream in (False, True):
        count = (missing + 1) // 2
        if count > 0:
            body = forms.body(target.form, model, 16, stream)
            await loadgen.run_segment(
                target.client, target.base_url, body, target.form, stream, 32, count, 120
            )


async def _two_replicas(
    stack: contextlib.AsyncExitStack,
    replicas: list[Server],
    single: Server,
    model: str,
    work: Path,
    rounds: int,
    scale: float,
) -> list[Record]:
    """The microservice over both replicas (default routing) against the load generator
    spreading over both itself, with the single-replica microservice as the CPU reference."""
    urls = [r.base_url for r in replicas]
    over_two = stack.enter_context(
        servers.microservice("generic-over-2", ",".join(urls), model, work)
    )
    plan_targets: list[tuple[str, str, int | None, tuple[str, ...]]] = [
        (DIRECT_SPREAD, urls[0], None, tuple(urls)),
        (OVER_TWO, over_two.base_url, over_two.process.pid, ()),
        (OVER_ONE, single.base_url, single.process.pid, ()),
    ]
    targets = []
    for name, base, pid, spread in plan_targets:
        client = await stack.enter_async_context(loadgen.make_client(32))
        targets.append(Target(name, base, "openai", pid, client, spread))
    await _warm_up(targets, model)
    return await _interleave(targets, two_replica_scenarios(scale), rounds, model, urls)


async def run(work: Path, rounds: int, scale: float, relay_requests: int) -> Results:
    from model_server.tiny_model import build

    started = time.monotonic()
    results = Results()
    _load(results, "start")
    model = str(build(work / "model"))
    plan = scenarios(scale)
    pinning = cores.plan()
    async with contextlib.AsyncExitStack() as stack:
        replicas = stack.enter_context(servers.vllm_replicas(Path(model), work, REPLICAS))
        url, idle = replicas[0].base_url, replicas[1].process.pid
        if pinning:  # after loading, so both replicas compiled on every core
            for replica in replicas:
                cores.pin_tree(replica.process.pid, pinning.vllm)
            cores.pin_self(pinning.rest)  # the proxies and stand-ins started below inherit it
            on = set().union(*(procstat.tree_cpus(r.process.pid) for r in replicas))
            results.cores["vLLM, both replicas (whole process trees)"] = cores.describe(on)
        generic, langchain, two = _microservices(stack, url, model, work, "")
        passthrough = stack.enter_context(servers.passthrough("vllm", url, work))
        router = stack.enter_context(servers.vllm_router("vllm", [url], work))
        if pinning:
            rest = procstat.tree_cpus(generic.process.pid) | os.sched_getaffinity(0)
            results.cores["load generator, proxies, stand-in upstreams"] = cores.describe(rest)
        proxies = {"generic": generic, "langchain": langchain, "generic, 2 workers": two}
        rss_start = {name: procstat.rss_bytes(s.process.pid) for name, s in proxies.items()}

        plan_targets: list[tuple[str, str, int | None, forms.Form]] = [
            (DIRECT, url, None, "openai"),
            (ROUTER, router.base_url, router.process.pid, "openai"),
            (PASSTHROUGH, passthrough.base_url, passthrough.process.pid, "openai"),
            ("generic, OPEA form", generic.base_url, generic.process.pid, "opea"),
            ("generic, OpenAI form", generic.base_url, generic.process.pid, "openai"),
            ("langchain, OPEA form", langchain.base_url, langchain.process.pid, "opea"),
            ("langchain, OpenAI form", langchain.base_url, langchain.process.pid, "openai"),
            (TWO_WORKERS, two.base_url, two.process.pid, "openai"),
        ]
        targets = [
            Target(name, base, form, pid, await stack.enter_async_context(loadgen.make_client(32)))
            for name, base, pid, form in plan_targets
        ]
        async with httpx.AsyncClient(timeout=60) as client:
            recording = await relay.record(client, url, model)
        await _warm_up(targets, model)
        _load(results, "before measuring")
        idle_before = procstat.cpu_seconds(idle)
        results.records = await _interleave(targets, plan, rounds, model, [url])
        results.idle_replica_cpu_s = round(procstat.cpu_seconds(idle) - idle_before, 2)
        _load(results, "after measuring")
        for name, server in proxies.items():
            pid = server.process.pid
            served = sum(r.ok for r in results.records if _pid_of(targets, r.target) == pid)
            first = next(t for t in targets if t.pid == pid)
            await _top_up(first, model, served)
            results.memory[name] = {
                "rss_after_start_mb": round(rss_start[name] / 2**20, 1),
                "rss_after_1000_mb": round(procstat.rss_bytes(pid) / 2**20, 1),
            }
        results.records += await _two_replicas(stack, replicas, generic, model, work, rounds, scale)
        _load(results, "after two replicas")
    results.records += await _stand_in(recording, model, work, rounds, scale, pinning, results)
    _load(results, "after stand-in scenarios")
    results.relay = await relay.run(recording, model, work, relay_requests, pinning)
    _load(results, "end")
    results.seconds = round(time.monotonic() - started, 1)
    return results


def _microservices(
    stack: contextlib.AsyncExitStack, upstream: str, model: str, work: Path, suffix: str
) -> tuple[Server, Server, Server]:
    """The microservice with the generic connector, with langchain, and generic on 2 workers."""
    generic = stack.enter_context(servers.microservice("generic" + suffix, upstream, model, work))
    langchain = stack.enter_context(
        servers.microservice("langchain" + suffix, upstream, model, work, LLM_CONNECTOR="langchain")
    )
    two = stack.enter_context(
        servers.microservice("generic-2w" + suffix, upstream, model, work, LLM_USVC_WORKERS="2")
    )
    return generic, langchain, two


async def _stand_in(
    recording: dict[str, str],
    model: str,
    work: Path,
    rounds: int,
    scale: float,
    pinning: cores.Cores | None,
    results: Results,
) -> list[Record]:
    """Every proxy and vLLM's Rust router in front of the paced stand-in upstream (streams one
    event per write, PACE_MS apart; non-streaming answers at once), interleaved in the same
    rounds; the router is each scenario's baseline. The proxies run on the core vLLM had."""
    path = relay.save(recording, work)
    async with contextlib.AsyncExitStack() as stack:
        upstream = stack.enter_context(
            servers.replay_upstream(path, work, "-paced", pace_ms=PACE_MS)
        ).base_url
        router = stack.enter_context(servers.vllm_router("stand-in", [upstream], work))
        passthrough = stack.enter_context(servers.passthrough("stand-in", upstream, work))
        generic, langchain, two = _microservices(stack, upstream, model, work, "-stand-in")
        plan_targets: list[tuple[str, Server, forms.Form]] = [
            (ROUTER, router, "openai"),
            (PASSTHROUGH, passthrough, "openai"),
            ("generic, OPEA form", generic, "opea"),
            ("generic, OpenAI form", generic, "openai"),
            ("langchain, OPEA form", langchain, "opea"),
            ("langchain, OpenAI form", langchain, "openai"),
            (TWO_WORKERS, two, "openai"),
        ]
        where = cores.pin_proxies([server.process.pid for _, server, _ in plan_targets], pinning)
        if where:
            results.cores["stand-in scenarios and relay: every proxy, the Rust router"] = where
            load = cores.describe(os.sched_getaffinity(0))
            results.cores["stand-in scenarios and relay: load generator, stand-ins"] = load
        targets = [
            Target(
                name,
                server.base_url,
                form,
                server.process.pid,
                await stack.enter_async_context(loadgen.make_client(32)),
            )
            for name, server, form in plan_targets
        ]
        await _warm_up(targets, model)
        return await _interleave(targets, stand_in_scenarios(scale), rounds, model, [])


def _pid_of(targets: list[Target], name: str) -> int | None:
    return next(t.pid for t in targets if t.name == name)
