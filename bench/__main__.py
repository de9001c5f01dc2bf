"""``python -m bench``: the whole side-by-side benchmark, ``--runs`` times, results to
bench/results/.

Each run starts every server itself (real vLLM CPU on the tiny model, the microservice per
connector, the FastAPI + httpx passthrough, the stand-in upstreams, vLLM's Rust router) and stops
them by PID. After each run it writes results.json (every run whole, and the medians over them),
results.md and chart.png from the medians; a run into bench/results/ (the recorded one) also
rewrites the README's cost summary. ``--render`` redoes those files from the results.json there,
measuring nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

from bench import chart, rag_run, rag_ttft, readme, report, run
from bench.runs import Medians, Run, combine, load

RECORDED = Path("bench/results")


def _write(out: Path, medians: Medians) -> None:
    report.write(out, medians)
    if medians.rows:
        chart.draw(medians.rows, out / "chart.png")
    if out.resolve() == RECORDED.resolve() and medians.rows:
        readme.update(Path("README.md"), json.loads((out / "results.json").read_text()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--runs", type=int, default=3, help="whole runs; goals on the median")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per scenario")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply request counts")
    parser.add_argument("--relay-requests", type=int, default=300, help="per relay target")
    parser.add_argument(
        "--only",
        choices=("rag",),
        help="only this phase (rag: the RAG routing phase); results go to WORK/results unless "
        "--out says otherwise, so the recorded results are not replaced by a part of them",
    )
    parser.add_argument(
        "--no-ttft",
        action="store_true",
        help="skip the RAG phase's TTFT part on the prefill-heavy model (about 4 minutes)",
    )
    parser.add_argument("--out", type=Path)
    parser.add_argument("--work", type=Path, help="model, logs, recording (default: a temp dir)")
    parser.add_argument(
        "--render", action="store_true", help="only rewrite the outputs from OUT/results.json"
    )
    args = parser.parse_args(argv)
    if args.render:
        out = args.out or RECORDED
        _write(out, combine(load(json.loads((out / "results.json").read_text()))))
    else:
        work = args.work or Path(tempfile.mkdtemp(prefix="bench-"))
        out = args.out or (work / "results" if args.only else RECORDED)
        runs: list[Run] = []
        for index in range(1, args.runs + 1):
            folder = work / f"run-{index}"
            print(f"bench: run {index} of {args.runs}, server logs in {folder}/logs", flush=True)
            runs.append(Run.of(asyncio.run(_one_run(folder, args)), args.rounds))
            _write(out, combine(runs))  # a run cut short later leaves the ones before it
    print((out / "results.md").read_text())
    return 0


async def _one_run(folder: Path, args: argparse.Namespace) -> run.Results:
    """The side-by-side run, then the RAG routing phase (each boots and stops its own vLLM)."""
    if args.only == "rag":
        results = run.Results()
    else:
        results = await run.run(folder, args.rounds, args.scale, args.relay_requests)
    results.rag = await rag_run.run(folder / "rag", args.rounds, rag_run.scaled(args.scale))
    results.rag.alone = args.only == "rag"
    if not args.no_ttft:
        started = time.monotonic()
        shape = rag_ttft.scaled(args.scale)
        records, where = await rag_ttft.run(folder / "rag-ttft", args.rounds, shape)
        results.rag.ttft_records = records
        results.rag.ttft_seconds = round(time.monotonic() - started, 1)
        results.rag.cores.update({f"prefill-heavy model: {k}": v for k, v in where.items()})
    return results


if __name__ == "__main__":
    raise SystemExit(main())
