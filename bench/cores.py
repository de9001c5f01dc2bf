"""Which cores each side of the benchmark runs on.

On a machine with two cores or more, vLLM (every replica's whole process tree) gets the first
core the benchmark may use and everything else (the load generator, that is the benchmark's own
process, and every proxy and stand-in upstream it starts, which inherit its affinity) gets the
second, so that vLLM's CPU worker, which spins while it serves, does not delay the proxy and the
load generator at random. vLLM is pinned once it has loaded, so that the replicas still compile
their model on every core.

Once vLLM has stopped (the stand-in scenarios, the relay micro-benchmark), the proxies under
test take the first core and the load generator and the stand-in upstreams keep the second: as
in production, where a proxy shares its core with neither its clients nor its upstream, each
proxy's CPU per request is its own work, not the cache and scheduler churn of three busy
processes on one core. The Rust router is placed the same way. With one core nothing is pinned.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

from bench import procstat

PASSES = 10


@dataclass(frozen=True, slots=True)
class Cores:
    vllm: frozenset[int]  # vLLM while it runs; then the proxies under test
    rest: frozenset[int]  # the load generator and the stand-in upstreams (and proxies beside vLLM)


def plan() -> Cores | None:
    """vLLM on the first allowed core, the rest on the second; None with fewer than two."""
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        return None
    return Cores(frozenset(allowed[:1]), frozenset(allowed[1:2]))


def pin_self(cpus: frozenset[int]) -> None:
    """Pin every thread of this process (and so whatever it starts from now on) to ``cpus``."""
    for task in Path("/proc/self/task").iterdir():
        with contextlib.suppress(OSError):  # the thread has exited
            os.sched_setaffinity(int(task.name), cpus)


def pin_tree(pid: int, cpus: frozenset[int]) -> None:
    """Pin every thread of ``pid`` and its descendants to ``cpus``; what they start later
    inherits it. Passes repeat until one moves nothing: a thread started during a pass by one
    not yet moved would have escaped it."""
    for _ in range(PASSES):
        moved = 0
        for task in procstat.tree_tasks(pid):
            try:
                if os.sched_getaffinity(int(task.name)) != cpus:
                    os.sched_setaffinity(int(task.name), cpus)
                    moved += 1
            except (OSError, ValueError):
                continue  # the thread has exited
        if not moved:
            return


def describe(cpus: set[int] | frozenset[int]) -> str:
    """``{0}`` -> "core 0", ``{0, 1}`` -> "cores 0, 1"."""
    listed = ", ".join(str(c) for c in sorted(cpus))
    return f"core {listed}" if len(cpus) == 1 else f"cores {listed}"


def pin_proxies(pids: list[int], pinning: Cores | None) -> str | None:
    """With vLLM stopped: every proxy's tree on vLLM's core; where they run, or None."""
    if pinning is None:
        return None
    for pid in pids:
        pin_tree(pid, pinning.vllm)
    return describe(set().union(*(procstat.tree_cpus(pid) for pid in pids)))


def unpin_self() -> None:
    """Let this process (and what it starts from now on) run on every core again: the kernel
    narrows the mask to the cores this process may use at all."""
    pin_self(frozenset(range(os.cpu_count() or 1)))
