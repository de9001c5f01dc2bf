"""What scripts/gaudi_check.sh measures: a fixed prompt set against one served model, and the
table that sets a BF16 run beside an FP8 run (output agreement, throughput).

Standard library only, so the Gaudi host's own ``python3`` runs it from the repository root:

    python3 -m bench.gaudi_check run --endpoint http://127.0.0.1:8008 --model M --label BF16 \
        --out bf16.json
    python3 -m bench.gaudi_check table bf16.json fp8.json --min-agreement 0.5
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

# Greedy decoding of short factual and instruction prompts: the BF16 and FP8 answers should
# start alike, and a real divergence shows early.
PROMPTS: tuple[str, ...] = (
    "The capital of France is",
    "Explain in one sentence what a neural network is.",
    "List three prime numbers greater than ten.",
    "Translate to German: The weather is nice today.",
    "Write a haiku about the sea.",
    "What is 17 multiplied by 3?",
    "Name the largest planet in the solar system.",
    "Complete the sequence: Monday, Tuesday, Wednesday,",
)
MAX_TOKENS = 64


@dataclass(frozen=True)
class Answer:
    text: str
    tokens: int


@dataclass(frozen=True)
class Run:
    """One boot of the stack: its label, the answers in prompt order, and the wall time."""

    label: str
    model: str
    answers: list[Answer]
    seconds: float

    @property
    def tokens_per_s(self) -> float:
        return sum(a.tokens for a in self.answers) / self.seconds if self.seconds > 0 else 0.0


def ask(endpoint: str, model: str, prompt: str, max_tokens: int, timeout: float) -> Answer:
    """One greedy completion from vLLM's OpenAI API."""
    body = {"model": model, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0}
    request = urllib.request.Request(
        endpoint.rstrip("/") + "/v1/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        answer = json.load(response)
    return Answer(answer["choices"][0]["text"], int(answer["usage"]["completion_tokens"]))


def run(endpoint: str, model: str, label: str, timeout: float = 600) -> Run:
    """Every prompt at once (one batch's worth of load), timed from first send to last answer."""
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=len(PROMPTS)) as pool:
        answers = list(pool.map(lambda p: ask(endpoint, model, p, MAX_TOKENS, timeout), PROMPTS))
    return Run(label, model, answers, time.monotonic() - started)


def agreement(first: str, second: str) -> float:
    """Share of leading words two answers have in common (1.0: same words)."""
    a, b = first.split(), second.split()
    if not a and not b:
        return 1.0
    same = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        same += 1
    return same / max(len(a), len(b))


def mean_agreement(base: Run, other: Run) -> float:
    pairs = zip(base.answers, other.answers, strict=True)
    return sum(agreement(a.text, b.text) for a, b in pairs) / len(base.answers)


def _aligned(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def table(base: Run, other: Run) -> str:
    """The per-prompt agreement and the throughput of both runs, as plain aligned text."""
    if len(base.answers) != len(other.answers):
        raise ValueError(
            f"{base.label} has {len(base.answers)} answers, {other.label} "
            f"{len(other.answers)}: not the same prompt set"
        )
    head = ["prompt", f"{base.label} tokens", f"{other.label} tokens", "same text", "agreement"]
    rows = [head]
    for index, (a, b) in enumerate(zip(base.answers, other.answers, strict=True), start=1):
        same = "yes" if a.text == b.text else "no"
        rows.append(
            [str(index), str(a.tokens), str(b.tokens), same, f"{agreement(a.text, b.text):.0%}"]
        )
    identical = sum(a.text == b.text for a, b in zip(base.answers, other.answers, strict=True))
    tokens = [str(sum(a.tokens for a in run.answers)) for run in (base, other)]
    rows.append(
        ["all", *tokens, f"{identical}/{len(base.answers)}", f"{mean_agreement(base, other):.0%}"]
    )
    ratio = other.tokens_per_s / base.tokens_per_s if base.tokens_per_s else 0.0
    speed = [
        ["run", "seconds", "tokens/s"],
        *[[r.label, f"{r.seconds:.1f}", f"{r.tokens_per_s:.1f}"] for r in (base, other)],
        [f"{other.label}/{base.label}", "", f"{ratio:.2f}x"],
    ]
    return "\n".join([f"model: {base.model}", "", *_aligned(rows), "", *_aligned(speed)])


def save(result: Run, path: Path) -> None:
    path.write_text(json.dumps(asdict(result), indent=2) + "\n")


def load(path: Path) -> Run:
    data = json.loads(path.read_text())
    answers = [Answer(**a) for a in data.pop("answers")]
    return Run(answers=answers, **data)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m bench.gaudi_check", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    one = commands.add_parser("run", help="send the prompt set, write the answers as JSON")
    one.add_argument("--endpoint", required=True)
    one.add_argument("--model", required=True)
    one.add_argument("--label", required=True)
    one.add_argument("--out", type=Path, required=True)
    two = commands.add_parser("table", help="print BASE beside OTHER")
    two.add_argument("base", type=Path)
    two.add_argument("other", type=Path)
    two.add_argument("--min-agreement", type=float, default=0.0, help="exit 1 below this mean")
    args = parser.parse_args(argv)
    if args.command == "run":
        save(run(args.endpoint, args.model, args.label), args.out)
        return 0
    base, other = load(args.base), load(args.other)
    print(table(base, other))
    score = mean_agreement(base, other)
    if score < args.min_agreement:
        print(
            f"gaudi_check: mean agreement {score:.0%} is below {args.min_agreement:.0%}",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
