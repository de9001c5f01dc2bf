"""CPU time and resident memory of a process and all its descendants, from /proc.

The microservice may run several uvicorn workers (children of the process we started), so
its cost is the sum over the whole tree, read before and after each measured segment.
"""

from __future__ import annotations

import os
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
