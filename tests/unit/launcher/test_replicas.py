"""VLLM_REPLICAS: how one host's cores or Gaudi cards are split between vLLM replicas.

Table-driven over host layouts (1, 2 and 4 NUMA nodes, SMT siblings, odd core counts, cgroup-
restricted nodes; Gaudi card lists and TP sizes); the host readers against fake sysfs and /dev
trees; and run_vllm.sh --native --dry-run, which shows each replica's command and the vLLM
command line it renders, without starting anything.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from harness.processes import REPO_ROOT
from launcher import host_layout as host
from launcher import replicas as rp
from launcher.host_layout import CpuLayout, ReplicaPlanError
from launcher.replica_plan import Replica
from tests.run_vllm_script import VENV_PYTHON, clean_environ
from tests.run_vllm_script import native_dry_run as dry_run


def nodes(*ranges: tuple[int, int]) -> tuple[tuple[int, ...], ...]:
    """NUMA nodes holding the cores first..last of each range."""
    return tuple(tuple(range(first, last + 1)) for first, last in ranges)


def smt(layout_nodes: tuple[tuple[int, ...], ...], offset: int) -> CpuLayout:
    """Each core N has the SMT sibling N + offset (the usual Linux numbering)."""
    threads = {core: (core, core + offset) for node in layout_nodes for core in node}
    return CpuLayout(layout_nodes, threads)


@pytest.mark.parametrize(
    ("text", "cpus", "canonical"),
    [
        ("0", [0], "0"),
        ("0-3", [0, 1, 2, 3], "0-3"),
        ("0-3,8-11\n", [0, 1, 2, 3, 8, 9, 10, 11], "0-3,8-11"),
        ("5,2-4", [2, 3, 4, 5], "2-5"),
        ("0,2,4", [0, 2, 4], "0,2,4"),
    ],
)
def test_cpu_lists_read_and_write_the_kernel_format(
    text: str, cpus: list[int], canonical: str
) -> None:
    assert host.parse_cpu_list(text) == cpus
    assert host.format_cpu_list(cpus) == canonical


@pytest.mark.parametrize("text", ["", "all", "0-", "1;2", "a-b"])
def test_a_cpu_list_that_is_not_one_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a CPU list"):
        host.parse_cpu_list(text)


# (case, layout, replicas, ranks per replica, [(VLLM_CPU_OMP_THREADS_BIND, process CPUs)...])
CPU_CASES = [
    (
        "one node, 8 cores: halves; each keeps its last core for the API server",
        CpuLayout(nodes((0, 7))),
        2,
        1,
        [("0-2", "0-3"), ("4-6", "4-7")],
    ),
    (
        "two cores, two replicas: one core each, nothing to keep back",
        CpuLayout(nodes((0, 1))),
        2,
        1,
        [("0", "0"), ("1", "1")],
    ),
    (
        "odd core count: the first replica gets the extra core",
        CpuLayout(nodes((0, 4))),
        2,
        1,
        [("0-1", "0-2"), ("3", "3-4")],
    ),
    (
        "two NUMA nodes, two replicas: one node each",
        CpuLayout(nodes((0, 15), (16, 31))),
        2,
        1,
        [("0-14", "0-15"), ("16-30", "16-31")],
    ),
    (
        "two nodes with SMT: OpenMP on physical cores, the process on their siblings too",
        smt(nodes((0, 3), (4, 7)), 8),
        2,
        1,
        [("0-2", "0-3,8-11"), ("4-6", "4-7,12-15")],
    ),
    (
        "two nodes, four replicas: each node halved, no replica across nodes",
        CpuLayout(nodes((0, 7), (8, 15))),
        4,
        1,
        [("0-2", "0-3"), ("4-6", "4-7"), ("8-10", "8-11"), ("12-14", "12-15")],
    ),
    (
        "four nodes (sub-NUMA clusters), two replicas: two whole nodes each",
        CpuLayout(nodes((0, 3), (4, 7), (8, 11), (12, 15))),
        2,
        1,
        [("0-6", "0-7"), ("8-14", "8-15")],
    ),
    (
        "four nodes, four replicas: one node each",
        CpuLayout(nodes((0, 3), (4, 7), (8, 11), (12, 15))),
        4,
        1,
        [("0-2", "0-3"), ("4-6", "4-7"), ("8-10", "8-11"), ("12-14", "12-15")],
    ),
    (
        "two nodes, TP=2 per replica: one rank per node half, '|' between ranks",
        CpuLayout(nodes((0, 7), (8, 15))),
        2,
        2,
        [("0-2|4-6", "0-7"), ("8-10|12-14", "8-15")],
    ),
    (
        "two nodes, three replicas: equal contiguous shares, one across the nodes",
        CpuLayout(nodes((0, 3), (4, 7))),
        3,
        1,
        [("0-1", "0-2"), ("3-4", "3-5"), ("6", "6-7")],
    ),
    (
        "nodes cut down by a cpuset (2 and 1 usable cores): still one node each",
        CpuLayout(((0, 1), (8,))),
        2,
        1,
        [("0", "0-1"), ("8", "8")],
    ),
    (
        "a node too small for its share: equal shares of all the cores",
        CpuLayout(((0, 1, 2), (8,))),
        4,
        1,
        [("0", "0"), ("1", "1"), ("2", "2"), ("8", "8")],
    ),
]


@pytest.mark.parametrize(
    ("layout", "count", "ranks", "expected"),
    [case[1:] for case in CPU_CASES],
    ids=[case[0] for case in CPU_CASES],
)
def test_cpu_split(
    layout: CpuLayout, count: int, ranks: int, expected: list[tuple[str, str]]
) -> None:
    plan = rp.plan_cpu(count, 8008, layout, ranks=ranks)
    assert [(r.env["VLLM_CPU_OMP_THREADS_BIND"], r.cpus) for r in plan.replicas] == expected
    assert [r.env["LLM_VLLM_PORT"] for r in plan.replicas] == [str(8008 + i) for i in range(count)]
    assert plan.endpoints == ",".join(f"http://127.0.0.1:{8008 + i}" for i in range(count))
    # No two replicas share a CPU.
    taken = [cpu for r in plan.replicas for cpu in host.parse_cpu_list(r.cpus or "")]
    assert len(taken) == len(set(taken))


def test_a_rank_across_numa_nodes_is_noted() -> None:
    spans = rp.plan_cpu(3, 8008, CpuLayout(nodes((0, 3), (4, 7))))
    assert spans.notes == [
        "VLLM_REPLICAS=3 x 1 rank(s) on 2 NUMA nodes: some ranks span several nodes, and vLLM "
        "keeps a rank's memory on one node; a multiple of 2 ranks in all gives each rank its "
        "own node"
    ]
    assert rp.plan_cpu(2, 8008, CpuLayout(nodes((0, 3), (4, 7)))).notes == []
    assert rp.plan_cpu(3, 8008, CpuLayout(nodes((0, 8)))).notes == []  # one node: nothing to span


def test_a_replica_on_a_single_core_is_noted() -> None:
    assert rp.plan_cpu(2, 8008, CpuLayout(nodes((0, 1)))).notes == [
        "some replicas get a single core: vLLM's API server and scheduler then share it with the "
        "model's threads, which costs throughput; fewer replicas with more cores each usually "
        "serve more"
    ]
    assert rp.plan_cpu(2, 8008, CpuLayout(nodes((0, 3)))).notes == []


def test_one_replica_is_the_configuration_as_it_is() -> None:
    plan = rp.plan_cpu(1, 8008, CpuLayout(nodes((0, 63), (64, 127))), host="10.0.0.5")
    assert plan.replicas == [Replica("http://10.0.0.5:8008", {})]
    assert plan.replicas[0].line() == "http://10.0.0.5:8008 -"
    hpu = rp.plan_hpu(1, 8008, [0, 1, 2, 3], tp_size=2, modules={0: 5})
    assert hpu.replicas == [Replica("http://127.0.0.1:8008", {})]


@pytest.mark.parametrize(
    ("layout", "count", "ranks", "message"),
    [
        (
            CpuLayout(nodes((0, 1))),
            3,
            1,
            "VLLM_REPLICAS=3 needs 3 physical cores, one per replica at least; vLLM may use 2 "
            "here (0-1); lower VLLM_REPLICAS",
        ),
        (
            smt(nodes((0, 1)), 2),  # 4 logical CPUs, 2 physical cores
            4,
            1,
            "VLLM_REPLICAS=4 needs 4 physical cores, one per replica at least; vLLM may use 2 "
            "here (0-1); lower VLLM_REPLICAS",
        ),
        (
            CpuLayout(nodes((0, 5))),
            4,
            2,
            "VLLM_REPLICAS=4 x 2 ranks (VLLM_TP_SIZE x VLLM_PP_SIZE) needs 8 physical cores, one "
            "per rank at least; vLLM may use 6 here (0-5); lower VLLM_REPLICAS",
        ),
    ],
)
def test_more_replicas_than_cores_is_one_clear_error(
    layout: CpuLayout, count: int, ranks: int, message: str
) -> None:
    with pytest.raises(ReplicaPlanError) as error:
        rp.plan_cpu(count, 8008, layout, ranks=ranks)
    assert str(error.value) == message


def test_ports_past_65535_are_refused() -> None:
    with pytest.raises(ReplicaPlanError, match="needs ports up to 65537; the highest is 65535"):
        rp.plan_cpu(3, 65535, CpuLayout(nodes((0, 7))))


@pytest.mark.parametrize(
    ("bind_host", "url_host"),
    [("0.0.0.0", "127.0.0.1"), ("", "127.0.0.1"), ("::", "127.0.0.1"), ("127.0.0.1", "127.0.0.1"),
     ("10.1.2.3", "10.1.2.3"), ("fd00::1", "[fd00::1]"), ("[fd00::1]", "[fd00::1]")],
)  # fmt: skip
def test_endpoint_host(bind_host: str, url_host: str) -> None:
    assert rp.endpoint_host(bind_host) == url_host


# (case, cards, replicas, VLLM_TP_SIZE, VLLM_PP_SIZE, [(HABANA_VISIBLE_DEVICES, VLLM_TP_SIZE set)],
#  notes)
HPU_CASES = [
    ("8 cards, 2 replicas, TP unset: 4 cards each, served with TP 4",
     [0, 1, 2, 3, 4, 5, 6, 7], 2, None, None, [("0,1,2,3", "4"), ("4,5,6,7", "4")], []),
    ("8 cards, 4 replicas, TP 2: pairs",
     list(range(8)), 4, 2, None, [("0,1", None), ("2,3", None), ("4,5", None), ("6,7", None)], []),
    ("8 cards, 2 replicas, TP 1 (the .env default): one card each, the rest said unused",
     list(range(8)), 2, 1, None, [("0", None), ("1", None)],
     ["Gaudi cards 2,3,4,5,6,7 are left unused"]),
    ("4 cards, 4 replicas, TP unset: one card each, TP left unset",
     [0, 1, 2, 3], 4, None, None, [("0", None), ("1", None), ("2", None), ("3", None)], []),
    ("3 cards, 2 replicas, TP unset: one each, one unused",
     [0, 1, 2], 2, None, None, [("0", None), ("1", None)], ["Gaudi cards 2 are left unused"]),
    ("a card list that is not 0..n-1",
     [4, 5, 6, 7], 2, 2, None, [("4,5", None), ("6,7", None)], []),
    ("8 cards, 2 replicas, PP 2, TP unset: 4 cards each, TP 2 x PP 2",
     list(range(8)), 2, None, 2, [("0,1,2,3", "2"), ("4,5,6,7", "2")], []),
]  # fmt: skip


@pytest.mark.parametrize(
    ("cards", "count", "tp", "pp", "expected", "notes"),
    [case[1:] for case in HPU_CASES],
    ids=[case[0] for case in HPU_CASES],
)
def test_hpu_split(
    cards: list[int],
    count: int,
    tp: int | None,
    pp: int | None,
    expected: list[tuple[str, str | None]],
    notes: list[str],
) -> None:
    plan = rp.plan_hpu(count, 8008, cards, tp_size=tp, pp_size=pp)
    got = [(r.env["HABANA_VISIBLE_DEVICES"], r.env.get("VLLM_TP_SIZE")) for r in plan.replicas]
    assert got == expected
    assert [r.env["LLM_VLLM_PORT"] for r in plan.replicas] == [str(8008 + i) for i in range(count)]
    assert all(r.cpus is None and "HABANA_VISIBLE_MODULES" not in r.env for r in plan.replicas)
    assert plan.notes == notes


def test_native_hpu_replicas_select_their_cards_by_module_id() -> None:
    modules = {0: 5, 1: 4, 2: 7, 3: 6}  # as `hl-smi -Q index,module_id` maps them
    plan = rp.plan_hpu(2, 8008, [0, 1, 2, 3], tp_size=2, modules=modules)
    assert [r.env["HABANA_VISIBLE_MODULES"] for r in plan.replicas] == ["5,4", "7,6"]
    assert [r.env["HABANA_VISIBLE_DEVICES"] for r in plan.replicas] == ["0,1", "2,3"]
    unknown = rp.plan_hpu(2, 8008, [0, 1], modules={})
    assert [r.env["HABANA_VISIBLE_MODULES"] for r in unknown.replicas] == ["0", "1"]


@pytest.mark.parametrize(
    ("cards", "count", "tp", "pp", "message"),
    [
        ([0, 1], 4, None, None, "VLLM_REPLICAS=4 needs 4 Gaudi cards (one at least per "
         "replica); HABANA_VISIBLE_DEVICES gives 2 (0,1)"),
        ([0, 1, 2, 3], 2, 4, None, "VLLM_REPLICAS=2 needs 8 Gaudi cards (VLLM_TP_SIZE=4 x "
         "VLLM_PP_SIZE=1 per replica); HABANA_VISIBLE_DEVICES gives 4 (0,1,2,3)"),
        ([0, 1, 2], 2, None, 2, "VLLM_REPLICAS=2 needs 4 Gaudi cards (one at least per "
         "replica); HABANA_VISIBLE_DEVICES gives 3 (0,1,2)"),
    ],
)  # fmt: skip
def test_too_few_cards_is_one_clear_error(
    cards: list[int], count: int, tp: int | None, pp: int | None, message: str
) -> None:
    with pytest.raises(ReplicaPlanError) as error:
        rp.plan_hpu(count, 8008, cards, tp_size=tp, pp_size=pp)
    assert str(error.value) == message


# --- reading the host ---


def fake_sysfs(
    root: Path, node_lists: dict[int, str], siblings: dict[int, str] | None = None
) -> Path:
    for node, cpulist in node_lists.items():
        folder = root / "devices" / "system" / "node" / f"node{node}"
        folder.mkdir(parents=True)
        (folder / "cpulist").write_text(cpulist + "\n")
    (root / "devices" / "system" / "node" / "possible").parent.mkdir(parents=True, exist_ok=True)
    (root / "devices" / "system" / "node" / "possible").write_text("0-9\n")  # not a node folder
    for cpu, text in (siblings or {}).items():
        folder = root / "devices" / "system" / "cpu" / f"cpu{cpu}" / "topology"
        folder.mkdir(parents=True)
        (folder / "thread_siblings_list").write_text(text + "\n")
    return root


def test_layout_of_a_two_socket_host_with_smt(tmp_path: Path) -> None:
    # 2 sockets x 4 cores x 2 threads: node0 = 0-3,8-11, node1 = 4-7,12-15; sibling of N is N+8.
    siblings = {c: f"{c % 8},{c % 8 + 8}" for c in range(16)}
    root = fake_sysfs(tmp_path, {0: "0-3,8-11", 1: "4-7,12-15"}, siblings)
    layout = host.read_cpu_layout(root, usable=range(16))
    assert layout.nodes == ((0, 1, 2, 3), (4, 5, 6, 7))
    assert layout.logical(5) == (5, 13)
    plan = rp.plan_cpu(2, 8008, layout)
    assert [(r.env["VLLM_CPU_OMP_THREADS_BIND"], r.cpus) for r in plan.replicas] == [
        ("0-2", "0-3,8-11"),
        ("4-6", "4-7,12-15"),
    ]


def test_layout_follows_the_process_affinity(tmp_path: Path) -> None:
    siblings = {c: f"{c % 8},{c % 8 + 8}" for c in range(16)}
    root = fake_sysfs(tmp_path, {0: "0-3,8-11", 1: "4-7,12-15"}, siblings)
    # taskset -c 2-5,10: node 0 keeps cores 2,3 (2 with its sibling 10), node 1 cores 4,5.
    layout = host.read_cpu_layout(root, usable=[2, 3, 4, 5, 10])
    assert layout.nodes == ((2, 3), (4, 5))
    assert layout.logical(2) == (2, 10)
    assert layout.logical(3) == (3,)
    # Only a sibling left of a core: that sibling stands for the core.
    assert host.read_cpu_layout(root, usable=[9, 12]).nodes == ((9,), (12,))


def test_layout_without_sysfs_is_one_node_of_the_usable_cpus(tmp_path: Path) -> None:
    layout = host.read_cpu_layout(tmp_path / "no-sys", usable=[3, 1, 2])
    assert layout.nodes == ((1, 2, 3),)


def test_layout_of_this_host_is_its_affinity() -> None:
    layout = host.read_cpu_layout()
    assert set(layout.cores) <= os.sched_getaffinity(0)
    assert {cpu for core in layout.cores for cpu in layout.logical(core)} == os.sched_getaffinity(0)


def test_visible_cards(tmp_path: Path) -> None:
    assert host.visible_cards("0,1,2,3") == [0, 1, 2, 3]
    assert host.visible_cards("4-7") == [4, 5, 6, 7]
    accel = tmp_path / "accel"
    accel.mkdir()
    for name in ("accel0", "accel1", "accel10", "accel2", "accel_controlD0"):
        (accel / name).touch()
    assert host.visible_cards("all", dev_root=tmp_path) == [0, 1, 2, 10]
    assert host.visible_cards("ALL", dev_root=tmp_path) == [0, 1, 2, 10]
    with pytest.raises(ReplicaPlanError, match="HABANA_VISIBLE_DEVICES=all and no Gaudi card"):
        host.visible_cards("all", dev_root=tmp_path / "none")
    with pytest.raises(ReplicaPlanError, match="a list of card indices such as 0,1,2,3"):
        host.visible_cards("gaudi0")


# --- the command line and run_vllm.sh --native --dry-run ---


def run_module(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VENV_PYTHON), "-m", "launcher.replicas", *args],
        cwd=REPO_ROOT,
        env=clean_environ(**env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_cli_prints_one_line_per_replica() -> None:
    result = run_module(
        LLM_DEVICE="hpu", VLLM_REPLICAS="2", HABANA_VISIBLE_DEVICES="0,1,2,3", LLM_VLLM_PORT="9100"
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("http://127.0.0.1:9100 - LLM_VLLM_PORT=9100 ")
    assert "HABANA_VISIBLE_DEVICES=0,1 VLLM_TP_SIZE=2 HABANA_VISIBLE_MODULES=" in lines[0]
    assert lines[1].startswith("http://127.0.0.1:9101 - LLM_VLLM_PORT=9101 ")
    assert len(lines) == 2


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"VLLM_REPLICAS": "65"},
            "run_vllm.sh: invalid configuration: VLLM_REPLICAS='65': Input should be less than "
            "or equal to 64",
        ),
        (
            {"VLLM_REPLICAS": "2", "VLLM_CPU_OMP_THREADS_BIND": "0-3"},
            "run_vllm.sh: VLLM_REPLICAS=2 binds each replica to its own cores: leave "
            "VLLM_CPU_OMP_THREADS_BIND=auto, not '0-3' (to keep vLLM off some cores, start "
            "run_vllm.sh under taskset -c LIST)",
        ),
        (
            {"VLLM_REPLICAS": "64"},
            "run_vllm.sh: VLLM_REPLICAS=64 needs 64 physical cores",
        ),
    ],
)
def test_cli_refuses_with_one_line(env: dict[str, str], message: str) -> None:
    if env["VLLM_REPLICAS"] == "64" and len(os.sched_getaffinity(0)) >= 64:
        pytest.skip("this host has 64 CPUs")
    result = run_module(**env)
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith(message), result.stderr


def two_cores() -> CpuLayout:
    layout = host.read_cpu_layout()
    if len(layout.cores) < 2:
        pytest.skip("two replicas need two physical cores")
    return layout


def test_native_dry_run_starts_each_cpu_replica_on_its_port_and_cores() -> None:
    expected = rp.plan_cpu(2, 8123, two_cores()).replicas
    result, out = dry_run(LLM_DEVICE="cpu", VLLM_REPLICAS="2", LLM_VLLM_PORT="8123")
    assert result.returncode == 0, result.stderr
    python = REPO_ROOT / ".venv" / "bin" / "python"
    for index, replica in enumerate(expected):
        port, bind = replica.env["LLM_VLLM_PORT"], replica.env["VLLM_CPU_OMP_THREADS_BIND"]
        assert out[2 * index] == (
            f"model server {index + 1}/2: env LLM_VLLM_PORT={port} VLLM_CPU_OMP_THREADS_BIND="
            f"{bind} taskset -c {replica.cpus} {python} -m model_server --env-file "
            f"{REPO_ROOT}/docker/cpu/.env"
        )
        vllm = out[2 * index + 1]  # what that model server renders for vLLM
        assert f" VLLM_CPU_OMP_THREADS_BIND={bind} " in vllm
        assert f" --port {port} " in vllm
    assert out[4] == (
        "LLM microservice: LLM_MODEL_SERVER_ENDPOINT=http://127.0.0.1:8123,http://127.0.0.1:8124 "
        f"{python} -m microservice --env-file {REPO_ROOT}/docker/cpu/.env"
    )
    assert len(out) == 5


def test_native_dry_run_keeps_an_exported_endpoint() -> None:
    two_cores()
    result, out = dry_run(
        LLM_DEVICE="cpu", VLLM_REPLICAS="2", LLM_MODEL_SERVER_ENDPOINT="http://lb.test:80"
    )
    assert result.returncode == 0, result.stderr
    assert out[-1].startswith("LLM microservice: LLM_MODEL_SERVER_ENDPOINT=http://lb.test:80 ")


def test_native_dry_run_of_one_replica_is_todays_command() -> None:
    result, out = dry_run(LLM_DEVICE="cpu")
    assert result.returncode == 0, result.stderr
    python = REPO_ROOT / ".venv" / "bin" / "python"
    assert out[0] == (
        f"model server 1/1: {python} -m model_server --env-file {REPO_ROOT}/docker/cpu/.env"
    )
    assert " VLLM_CPU_OMP_THREADS_BIND=auto " in out[1]  # vLLM's own binding, as before
    assert out[2].startswith("LLM microservice: LLM_MODEL_SERVER_ENDPOINT=http://localhost:8008 ")
    assert len(out) == 3


def test_native_dry_run_gives_each_hpu_replica_its_cards() -> None:
    result, out = dry_run(
        LLM_DEVICE="hpu", VLLM_REPLICAS="2", HABANA_VISIBLE_DEVICES="0,1,2,3", VLLM_TP_SIZE="2"
    )
    assert result.returncode == 0, result.stderr
    for index, cards in enumerate(("0,1", "2,3")):
        assert out[2 * index].startswith(
            f"model server {index + 1}/2: env LLM_VLLM_PORT={8008 + index} "
            f"HABANA_VISIBLE_DEVICES={cards} HABANA_VISIBLE_MODULES="
        )
        assert " taskset " not in out[2 * index]
        assert f" HABANA_VISIBLE_DEVICES={cards} " in out[2 * index + 1]
        assert out[2 * index + 1].endswith(" --tensor-parallel-size 2")
    assert "LLM_MODEL_SERVER_ENDPOINT=http://127.0.0.1:8008,http://127.0.0.1:8009 " in out[4]


def test_native_refuses_more_replicas_than_cores_with_one_line() -> None:
    cores = len(host.read_cpu_layout().cores)
    if cores >= 64:
        pytest.skip("this host has 64 cores or more")
    result, out = dry_run(LLM_DEVICE="cpu", VLLM_REPLICAS=str(cores + 1))
    assert result.returncode == 2
    assert out == []
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert f"VLLM_REPLICAS={cores + 1} needs {cores + 1} physical cores" in result.stderr


def test_native_demo_runs_vllm_eagerly_unless_told_otherwise() -> None:
    """The tiny model gains nothing from compiled graphs; compiling them doubles the boot."""
    for env, eager in (({}, True), ({"VLLM_ENFORCE_EAGER": "false"}, False)):
        result, out = dry_run("--demo", LLM_DEVICE="cpu", **env)
        assert result.returncode == 0, result.stderr
        vllm = next(line for line in out if "api_server" in line)
        assert ("--enforce-eager" in vllm) is eager, vllm
