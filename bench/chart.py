"""The benchmark's PNG, from the medians over the runs: throughput ratio to direct vLLM and
proxy CPU per request, by target.

The two-replica scenarios add their targets beside the single-replica ones, each bar in the
colour of the c=32 scenario it mirrors (their ratio is to the load generator spreading directly
over both replicas)."""

from __future__ import annotations

from pathlib import Path

from bench.goals import THROUGHPUT_LIMIT
from bench.scenarios import DIRECT_SPREAD, TWO_REPLICAS
from bench.summary import DIRECT, Row

CHARTED = ("non-streaming c=32", "streaming c=32")


def _kind(row: Row) -> str:
    return row.scenario.removeprefix(TWO_REPLICAS)


def draw(rows: list[Row], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # Every proxy, the Rust router included; vLLM itself is what the ratios are to.
    charted = [r for r in rows if r.target not in (DIRECT, DIRECT_SPREAD) and _kind(r) in CHARTED]
    targets = list(dict.fromkeys(r.target for r in charted))
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5.5), constrained_layout=True)
    width = 0.8 / len(CHARTED)
    for i, scenario in enumerate(CHARTED):
        by_target = {r.target: r for r in charted if _kind(r) == scenario}
        xs = [t + i * width for t in range(len(targets))]
        ratios = [by_target[t].ratio or 0.0 if t in by_target else 0.0 for t in targets]
        cpu = [by_target[t].cpu_ms_per_req or 0.0 if t in by_target else 0.0 for t in targets]
        left.bar(xs, ratios, width, label=scenario)
        right.bar(xs, cpu, width, label=scenario)
    goal = f"goal {THROUGHPUT_LIMIT:g} (generic)"
    left.axhline(THROUGHPUT_LIMIT, color="grey", linestyle="--", linewidth=1, label=goal)
    left.set_title("Throughput ratio to direct vLLM (over 2 replicas: to direct over both)")
    right.set_title("Proxy CPU ms per request (lower is better)")
    for axis in (left, right):
        axis.set_xticks([t + width / 2 for t in range(len(targets))])
        axis.set_xticklabels(targets, rotation=30, ha="right", fontsize=8)
        axis.legend(fontsize=8)
    fig.savefig(path, dpi=110)
    plt.close(fig)
