"""CPU time, resident memory and CPU affinity of a process and all its descendants, from /proc.

The microservice may run several uvicorn workers (children of the process we started), so
its cost is the sum over the whole tree, read before and after each measured segment.

Two clocks: ``cpu_seconds`` reads utime + stime from ``stat`` (10 ms ticks, exited threads
included); ``sample`` reads every thread's ``schedstat`` (nanoseconds), which the measured
segments use, since a Rust proxy may spend only a few ticks on a whole segment.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def _stat_fields(pid: int) -> list[str] | None:
    """Fields after the command name (which may contain spaces), or None if the pid is gone."""
    try:
        raw = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (children read from each thread's children file)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for task in (PROC / str(current) / "task").glob("*"):
            try:
                todo.extend(int(c) for c in (task / "children").read_text().split())
            except OSError:
                continue
    return found


def cpu_seconds(pid: int) -> float:
    """utime + stime of the tree (fields 14 and 15 of stat; here index 11 and 12)."""
    total = 0
    for member in descendants(pid):
        fields = _stat_fields(member)
        if fields is not None:
            total += int(fields[11]) + int(fields[12])
    return total / TICKS


def rss_bytes(pid: int) -> int:
    """Resident memory of the tree (statm's second field, in pages)."""
    total = 0
    for member in descendants(pid):
        try:
            total += int((PROC / str(member) / "statm").read_text().split()[1]) * PAGE
        except OSError:
            continue
    return total


@dataclass(frozen=True, slots=True)
class CpuSample:
    """CPU time of a process tree at one moment, by both clocks."""

    threads_ns: dict[int, int]  # thread id -> ns on a CPU (schedstat); empty where unreadable
    ticks_s: float  # utime + stime of the tree (stat), exited threads included


def tree_tasks(pid: int) -> list[Path]:
    """The /proc folder of every thread of ``pid`` and its descendants (named by thread id)."""
    return [task for member in descendants(pid) for task in (PROC / str(member) / "task").glob("*")]


def sample(pid: int) -> CpuSample:
    threads: dict[int, int] = {}
    for task in tree_tasks(pid):
        try:
            threads[int(task.name)] = int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue  # the thread has exited
    return CpuSample(threads, cpu_seconds(pid))


def cpu_between(before: CpuSample, after: CpuSample) -> float:
    """CPU seconds the tree used between two samples: per thread, in nanoseconds (a thread
    started in between counts whole); by the 10 ms ticks instead when schedstat is unreadable
    or a thread of ``before`` has exited (its time since ``before`` would be missing)."""
    unreadable = not before.threads_ns or not after.threads_ns
    if unreadable or before.threads_ns.keys() - after.threads_ns.keys():
        return after.ticks_s - before.ticks_s
    spent = sum(ns - before.threads_ns.get(tid, 0) for tid, ns in after.threads_ns.items())
    return spent / 1e9


def tree_cpus(pid: int) -> set[int]:
    """Every core any thread of the tree may run on (its affinity masks, joined)."""
    cores: set[int] = set()
    for task in tree_tasks(pid):
        try:
            cores |= os.sched_getaffinity(int(task.name))
        except (OSError, ValueError):
            continue  # the thread has exited
    return cores
