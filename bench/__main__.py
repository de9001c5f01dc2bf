"""``python -m bench``: the whole side-by-side benchmark, results to bench/results/.

Starts every server itself (real vLLM CPU on the tiny model, the microservice per connector,
the reference passthrough, the stand-in upstreams, vLLM's Rust router), stops them by PID, and
writes results.md, results.json and chart.png; a run into bench/results/ (the recorded run) also
rewrites the README's cost summary.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from pathlib import Path

from bench import chart, readme, report, run
from bench.goals import goals
from bench.summary import summarise

RECORDED = Path("bench/results")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per scenario")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply request counts")
    parser.add_argument("--relay-requests", type=int, default=300, help="per relay target")
    parser.add_argument("--out", type=Path, default=RECORDED)
    parser.add_argument("--work", type=Path, help="model, logs, recording (default: a temp dir)")
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-"))
    print(f"bench: work folder {work} (server logs in logs/)", flush=True)
    results = asyncio.run(run.run(work, args.rounds, args.scale, args.relay_requests))
    rows = summarise(results.records)
    checked = goals(rows, results.relay)
    report.write(args.out, results, rows, results.relay, checked, args.rounds)
    chart.draw(rows, args.out / "chart.png")
    if args.out.resolve() == RECORDED.resolve():
        readme.update(Path("README.md"), json.loads((args.out / "results.json").read_text()))
    print((args.out / "results.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
