"""What one host offers vLLM replicas, read from it: the NUMA nodes and physical cores this
process may use (sysfs and its affinity), the Gaudi cards of ``HABANA_VISIBLE_DEVICES``
(``/dev/accel``) and their module ids (``hl-smi``). ``launcher/replicas.py`` plans on what
these return; the planning itself stays pure.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

_CPU_LIST = re.compile(r"^\s*\d+(-\d+)?(\s*,\s*\d+(-\d+)?)*\s*$")


class ReplicaPlanError(ValueError):
    """Replicas that cannot be placed on this host; the message is one line for the operator."""


@dataclass(frozen=True)
class CpuLayout:
    """The cores vLLM may use, as read from the host.

    ``nodes``: per NUMA node (in node order, empty nodes left out), its usable physical cores,
    each named by its first usable logical CPU. ``threads``: each such core's usable logical
    CPUs (the core itself and its SMT siblings); a core missing here has only itself.
    """

    nodes: tuple[tuple[int, ...], ...]
    threads: Mapping[int, tuple[int, ...]] = field(default_factory=dict)

    def logical(self, core: int) -> tuple[int, ...]:
        return self.threads.get(core, (core,))

    @property
    def cores(self) -> list[int]:
        return [core for node in self.nodes for core in node]


def parse_cpu_list(text: str) -> list[int]:
    """``"0-3,8"`` -> ``[0, 1, 2, 3, 8]`` (the kernel's cpulist format, as vLLM reads it)."""
    if not _CPU_LIST.match(text):
        raise ValueError(f"not a CPU list: {text!r}")
    cpus: set[int] = set()
    for part in text.replace(" ", "").split(","):
        first, _, last = part.partition("-")
        cpus.update(range(int(first), int(last or first) + 1))
    return sorted(cpus)


def format_cpu_list(cpus: Iterable[int]) -> str:
    """``[0, 1, 2, 3, 8]`` -> ``"0-3,8"``."""
    ranges: list[list[int]] = []
    for cpu in sorted(set(cpus)):
        if ranges and cpu == ranges[-1][1] + 1:
            ranges[-1][1] = cpu
        else:
            ranges.append([cpu, cpu])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in ranges)


def _read_list(path: Path) -> list[int] | None:
    try:
        return parse_cpu_list(path.read_text())
    except (OSError, ValueError):
        return None


def read_cpu_layout(
    sys_root: Path = Path("/sys"), usable: Iterable[int] | None = None
) -> CpuLayout:
    """The NUMA nodes and physical cores of the CPUs this process may use (its affinity, which
    ``taskset`` or a container's cpuset narrows), from sysfs; without sysfs, one node."""
    allowed = set(os.sched_getaffinity(0) if usable is None else usable)
    node_root = sys_root / "devices" / "system" / "node"
    numbered = (p for p in node_root.glob("node*") if p.name[4:].isdigit())
    node_lists = []
    for path in sorted(numbered, key=lambda p: int(p.name[4:])):
        cpus = [cpu for cpu in _read_list(path / "cpulist") or [] if cpu in allowed]
        if cpus:
            node_lists.append(cpus)
    rest = sorted(allowed - {cpu for node in node_lists for cpu in node})
    if rest:
        node_lists.append(rest)
    threads: dict[int, tuple[int, ...]] = {}
    nodes = []
    for cpus in node_lists:
        cores = []
        for cpu in cpus:
            topology = sys_root / "devices" / "system" / "cpu" / f"cpu{cpu}" / "topology"
            siblings = [
                s for s in _read_list(topology / "thread_siblings_list") or [] if s in allowed
            ]
            siblings = sorted(set(siblings) | {cpu})
            if siblings[0] == cpu:
                cores.append(cpu)
                threads[cpu] = tuple(siblings)
        nodes.append(tuple(cores))
    return CpuLayout(tuple(nodes), threads)


def visible_cards(setting: str, dev_root: Path = Path("/dev")) -> list[int]:
    """The card indices of ``HABANA_VISIBLE_DEVICES``: a list such as ``0,1,2,3``, or ``all``:
    every ``/dev/accel/accelN`` of this host."""
    if setting.strip().lower() != "all":
        try:
            return parse_cpu_list(setting)
        except ValueError:
            raise ReplicaPlanError(
                f"HABANA_VISIBLE_DEVICES={setting!r}: VLLM_REPLICAS>1 splits a list of card "
                "indices such as 0,1,2,3"
            ) from None
    found = sorted(
        int(path.name[5:])
        for path in (dev_root / "accel").glob("accel*")
        if path.name[5:].isdigit()
    )
    if not found:
        raise ReplicaPlanError(
            "HABANA_VISIBLE_DEVICES=all and no Gaudi card under /dev/accel: list the cards to "
            "split between the replicas, such as HABANA_VISIBLE_DEVICES=0,1,2,3"
        )
    return found


def module_ids() -> tuple[dict[int, int], str | None]:
    """Card index -> module id, from ``hl-smi``; when it cannot tell: none, and a note."""
    hl_smi = shutil.which("hl-smi")
    if hl_smi is not None:
        try:
            out = subprocess.run(
                [hl_smi, "-Q", "index,module_id", "-f", "csv,noheader"],
                capture_output=True,
                text=True,
                timeout=30,
                check=True,
            ).stdout
            pairs = (line.split(",") for line in out.splitlines() if line.strip())
            return {int(index): int(module) for index, module in pairs}, None
        except (OSError, subprocess.SubprocessError, ValueError):
            pass
    return {}, "hl-smi cannot map card indices to module ids: HABANA_VISIBLE_MODULES = indices"
