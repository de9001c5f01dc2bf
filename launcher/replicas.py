"""``VLLM_REPLICAS`` on one host: the port, cores or Gaudi cards of each vLLM replica.

The launcher asks this module, then starts one ``python -m model_server`` (natively) or one
Compose service per replica, with the environment planned here, and points the microservice at
all of them. The planning is pure (``plan_cpu``, ``plan_hpu``: a host layout and N in, one
``Replica`` per replica out, ``replica_plan.py``) and unit-tested table-driven; reading the host
(``host_layout.py``), writing the Compose override (``replica_compose.py``) and the command line
are kept apart.

CPU: the usable physical cores (the process's affinity, one logical CPU per core) are cut into
one group per vLLM rank (``VLLM_TP_SIZE`` x ``VLLM_PP_SIZE`` ranks per replica): whole NUMA nodes
per group where the node count allows it, else each node into equal contiguous parts, else all
cores into equal contiguous parts. Each rank's OpenMP threads are bound to its group
(``VLLM_CPU_OMP_THREADS_BIND``, ``|`` between ranks) less its last core, which vLLM's API server
and scheduler keep, as vLLM's own ``auto`` binding does; the replica's process is confined to its
cores and their SMT siblings (``taskset`` natively, ``cpuset`` in Compose), so that vLLM also
places its weights and KV cache on the replica's NUMA node.

HPU: the cards of ``HABANA_VISIBLE_DEVICES`` are cut into consecutive groups of
``VLLM_TP_SIZE`` x ``VLLM_PP_SIZE`` cards (unset: an equal share, served with that TP size). In
Compose the Habana container runtime mounts each replica's ``HABANA_VISIBLE_DEVICES``; natively
the Gaudi software reads ``HABANA_VISIBLE_MODULES`` (module ids, as ``hl-smi`` maps them).

With ``VLLM_KV_EVENTS_PORT`` each replica also publishes its KV-cache events on a port of its
own, that port plus its index, as its HTTP port is ``LLM_VLLM_PORT`` plus its index.

One replica is the configuration as it is: nothing is planned or overridden.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from common.config_errors import ConfigError
from common.config_loading import load
from launcher.errors import PROG
from launcher.host_layout import (
    CpuLayout,
    ReplicaPlanError,
    format_cpu_list,
    module_ids,
    read_cpu_layout,
    visible_cards,
)
from launcher.replica_plan import Plan, Replica
from launcher.settings import LauncherSettings
from model_server.settings import ModelServerSettings

# --- pure planning -----------------------------------------------------------------------------


def endpoint_host(bind_host: str) -> str:
    """Where this host reaches a server bound to ``bind_host`` (any address: loopback)."""
    if bind_host in ("", "0.0.0.0", "::", "[::]"):
        return "127.0.0.1"
    if ":" in bind_host and not bind_host.startswith("["):
        return f"[{bind_host}]"
    return bind_host


def ports(replicas: int, first_port: int) -> list[int]:
    last = first_port + replicas - 1
    if last > 65535:
        raise ReplicaPlanError(
            f"VLLM_REPLICAS={replicas} from LLM_VLLM_PORT={first_port} needs ports up to {last}; "
            "the highest is 65535"
        )
    return list(range(first_port, last + 1))


def with_events_ports(plan: Plan, first_port: int | None, http_port: int) -> Plan:
    """Each replica of ``plan`` its own KV-events port, ``first_port`` + its index, as each has
    its own HTTP port; one replica, or the events off: ``plan`` as it is."""
    count = len(plan.replicas)
    if first_port is None or count == 1:
        return plan
    last = first_port + count - 1
    if last > 65535:
        raise ReplicaPlanError(
            f"VLLM_REPLICAS={count} from VLLM_KV_EVENTS_PORT={first_port} needs ports up to "
            f"{last}; the highest is 65535"
        )
    if first_port <= http_port + count - 1 and http_port <= last:
        raise ReplicaPlanError(
            f"VLLM_REPLICAS={count} puts vLLM's HTTP on ports {http_port}-"
            f"{http_port + count - 1} and its KV events on {first_port}-{last}: move "
            "VLLM_KV_EVENTS_PORT"
        )
    replicas = [
        Replica(r.url, {**r.env, "VLLM_KV_EVENTS_PORT": str(first_port + i)}, r.cpus)
        for i, r in enumerate(plan.replicas)
    ]
    return Plan(replicas, plan.notes)


def _even_parts(items: Sequence[int], parts: int) -> list[list[int]]:
    """``items`` cut into ``parts`` contiguous runs whose sizes differ by one at most."""
    size, extra = divmod(len(items), parts)
    runs, start = [], 0
    for index in range(parts):
        end = start + size + (1 if index < extra else 0)
        runs.append(list(items[start:end]))
        start = end
    return runs


def split_cores(nodes: Sequence[Sequence[int]], groups: int) -> list[list[int]]:
    """Cut the cores of ``nodes`` into ``groups`` groups.

    Several nodes and ``groups`` a multiple of their count: each node into equal parts. A
    divisor of their count: whole nodes per group. Otherwise (or one node): all cores, in node
    order, into equal contiguous parts.
    """
    full = [list(node) for node in nodes if node]
    count = len(full)
    if count > 1 and groups % count == 0 and all(len(n) >= groups // count for n in full):
        return [part for node in full for part in _even_parts(node, groups // count)]
    if count > 1 and count % groups == 0:
        per = count // groups
        return [[c for n in full[i * per : (i + 1) * per] for c in n] for i in range(groups)]
    return _even_parts([core for node in full for core in node], groups)


def plan_cpu(
    replicas: int,
    first_port: int,
    layout: CpuLayout,
    *,
    ranks: int = 1,
    host: str = "127.0.0.1",
) -> Plan:
    """One replica per share of ``layout``'s cores; ``ranks`` = TP x PP ranks per replica."""
    replica_ports = ports(replicas, first_port)
    if replicas == 1:
        return Plan([Replica(f"http://{host}:{first_port}", {})])
    cores = layout.cores
    groups = replicas * ranks
    if groups > len(cores):
        per = f" x {ranks} ranks (VLLM_TP_SIZE x VLLM_PP_SIZE)" if ranks > 1 else ""
        raise ReplicaPlanError(
            f"VLLM_REPLICAS={replicas}{per} needs {groups} physical cores, one per "
            f"{'rank' if ranks > 1 else 'replica'} at least; vLLM may use {len(cores)} here "
            f"({format_cpu_list(cores) or 'none'}); lower VLLM_REPLICAS"
        )
    parts = split_cores(layout.nodes, groups)
    node_of = {core: index for index, node in enumerate(layout.nodes) for core in node}
    notes = []
    if any(len({node_of[core] for core in part}) > 1 for part in parts):
        notes.append(
            f"VLLM_REPLICAS={replicas} x {ranks} rank(s) on {len(layout.nodes)} NUMA nodes: "
            "some ranks span several nodes, and vLLM keeps a rank's memory on one node; "
            f"a multiple of {len(layout.nodes)} ranks in all gives each rank its own node"
        )
    if any(len(part) == 1 for part in parts):
        notes.append(
            "some replicas get a single core: vLLM's API server and scheduler then share it with "
            "the model's threads, which costs throughput; fewer replicas with more cores each "
            "usually serve more"
        )
    plan = []
    for index, port in enumerate(replica_ports):
        rank_parts = parts[index * ranks : (index + 1) * ranks]
        bind = "|".join(
            format_cpu_list(part[:-1] if len(part) > 1 else part) for part in rank_parts
        )
        logical = [cpu for part in rank_parts for core in part for cpu in layout.logical(core)]
        env = {"LLM_VLLM_PORT": str(port), "VLLM_CPU_OMP_THREADS_BIND": bind}
        plan.append(Replica(f"http://{host}:{port}", env, format_cpu_list(logical)))
    return Plan(plan, notes)


def plan_hpu(
    replicas: int,
    first_port: int,
    cards: Sequence[int],
    *,
    tp_size: int | None = None,
    pp_size: int | None = None,
    modules: Mapping[int, int] | None = None,
    host: str = "127.0.0.1",
) -> Plan:
    """One replica per group of ``cards``: ``tp_size`` x ``pp_size`` cards each, or (TP unset)
    an equal share served with that TP size. ``modules``: card index -> module id, given for
    native processes, which select their cards by ``HABANA_VISIBLE_MODULES``."""
    replica_ports = ports(replicas, first_port)
    if replicas == 1:
        return Plan([Replica(f"http://{host}:{first_port}", {})])
    stages = pp_size or 1
    listed = ",".join(map(str, cards)) or "none"
    if tp_size is not None:
        size, set_tp = tp_size * stages, None
    else:
        size = (len(cards) // replicas) // stages * stages
        set_tp = size // stages if size > stages else None
    if size == 0 or replicas * size > len(cards):
        each = f"VLLM_TP_SIZE={tp_size} x VLLM_PP_SIZE={stages}" if tp_size else "one at least"
        raise ReplicaPlanError(
            f"VLLM_REPLICAS={replicas} needs {replicas * (size or stages)} Gaudi cards ({each} "
            f"per replica); HABANA_VISIBLE_DEVICES gives {len(cards)} ({listed})"
        )
    notes = []
    unused = list(cards[replicas * size :])
    if unused:
        notes.append(f"Gaudi cards {','.join(map(str, unused))} are left unused")
    plan = []
    for index, port in enumerate(replica_ports):
        group = list(cards[index * size : (index + 1) * size])
        env = {"LLM_VLLM_PORT": str(port), "HABANA_VISIBLE_DEVICES": ",".join(map(str, group))}
        if set_tp is not None:
            env["VLLM_TP_SIZE"] = str(set_tp)
        if modules is not None:
            env["HABANA_VISIBLE_MODULES"] = ",".join(str(modules.get(c, c)) for c in group)
        plan.append(Replica(f"http://{host}:{port}", env))
    return Plan(plan, notes)


# --- the host and the command line --------------------------------------------------------------


def plan_for(settings: ModelServerSettings, *, replicas: int, native: bool) -> Plan:
    """The plan of ``replicas`` for this host and configuration (reads sysfs, /dev/accel,
    hl-smi)."""
    plan = _plan_for(settings, replicas=replicas, native=native)
    return with_events_ports(plan, settings.vllm_kv_events_port, settings.llm_vllm_port)


def _plan_for(settings: ModelServerSettings, *, replicas: int, native: bool) -> Plan:
    port = settings.llm_vllm_port
    host = endpoint_host(settings.llm_vllm_host)
    if replicas == 1:
        return Plan([Replica(f"http://{host}:{port}", {})])
    if settings.llm_device == "cpu":
        if settings.vllm_cpu_omp_threads_bind != "auto":
            raise ReplicaPlanError(
                f"VLLM_REPLICAS={replicas} binds each replica to its own cores: leave "
                f"VLLM_CPU_OMP_THREADS_BIND=auto, not {settings.vllm_cpu_omp_threads_bind!r} "
                "(to keep vLLM off some cores, start run_vllm.sh under taskset -c LIST)"
            )
        ranks = (settings.vllm_tp_size or 1) * (settings.vllm_pp_size or 1)
        return plan_cpu(replicas, port, read_cpu_layout(), ranks=ranks, host=host)
    cards = visible_cards(settings.habana_visible_devices)
    modules, note = module_ids() if native else (None, None)
    plan = plan_hpu(
        replicas,
        port,
        cards,
        tp_size=settings.vllm_tp_size,
        pp_size=settings.vllm_pp_size,
        modules=modules,
        host=host,
    )
    return Plan(plan.replicas, plan.notes + ([note] if note else []))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m launcher.replicas",
        description="Plan VLLM_REPLICAS vLLM replicas on this host: print one line per replica, "
        "'URL CPUS NAME=value ...' (CPUS: the logical CPUs to confine it to, '-' for none; "
        "NAME=value: what it sets over the configuration). Exit 2 with one line when they do "
        "not fit.",
    )
    parser.add_argument("--env-file", type=Path, help="env file; exported variables win over it")
    parser.add_argument(
        "--compose", action="store_true", help="plan for Compose (no Gaudi module ids)"
    )
    args = parser.parse_args(argv)
    try:
        settings = load(ModelServerSettings, args.env_file)
        replicas = load(LauncherSettings, args.env_file).vllm_replicas
        plan = plan_for(settings, replicas=replicas, native=not args.compose)
    except (ConfigError, ReplicaPlanError) as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return 2
    for note in plan.notes:
        print(f"{PROG}: note: {note}", file=sys.stderr)
    for replica in plan.replicas:
        print(replica.line())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
