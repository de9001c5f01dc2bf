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
from pathlib import Path

from bench import chart, readme, report, run
from bench.runs import Medians, Run, combine, load

RECORDED = Path("bench/results")


def _write(out: Path, medians: Medians) -> None:
    report.write(out, medians)
    chart.draw(medians.rows, out / "chart.png")
    if out.resolve() == RECORDED.resolve():
        readme.update(Path("README.md"), json.loads((out / "results.json").read_text()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--runs", type=int, default=3, help="whole runs; goals on the median")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per scenario")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply request counts")
    parser.add_argument("--relay-requests", type=int, default=300, help="per relay target")
    parser.add_argument("--out", type=Path, default=RECORDED)
    parser.add_argument("--work", type=Path, help="model, logs, recording (default: a temp dir)")
    parser.add_argument(
        "--render", action="store_true", help="only rewrite the outputs from OUT/results.json"
    )
    args = parser.parse_args(argv)
    if args.render:
        _write(args.out, combine(load(json.loads((args.out / "results.json").read_text()))))
    else:
        work = args.work or Path(tempfile.mkdtemp(prefix="bench-"))
        runs: list[Run] = []
        for index in range(1, args.runs + 1):
            folder = work / f"run-{index}"
            print(f"bench: run {index} of {args.runs}, server logs in {folder}/logs", flush=True)
            results = asyncio.run(run.run(folder, args.rounds, args.scale, args.relay_requests))
            runs.append(Run.of(results, args.rounds))
            _write(args.out, combine(runs))  # a run cut short later leaves the ones before it
    print((args.out / "results.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
