"""scripts/gaudi_check.sh's Python side: agreement, the BF16/FP8 table, the prompt run.

The script itself needs Gaudi hardware (shellcheck lints it, tests/static); what it prints is
computed here, from stand-in runs and from a loopback STAND-IN of vLLM's completions API.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from bench import gaudi_check
from bench.gaudi_check import Answer, Run


def standin_run(label: str, texts: list[str], seconds: float) -> Run:
    return Run(label, "tiny", [Answer(t, len(t.split())) for t in texts], seconds)


BF16 = standin_run("BF16", ["Paris is the capital", "one two three", "", "a b"], 2.0)
FP8 = standin_run("FP8", ["Paris is the capital", "one two four", "", "x y z"], 1.0)


@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [
        ("a b c", "a b c", 1.0),
        ("a b c d", "a b x d", 0.5),
        ("a b", "a b c d", 0.5),  # shorter answer: measured against the longer
        ("x", "y", 0.0),
        ("", "", 1.0),
        ("", "a", 0.0),
    ],
)
def test_agreement_counts_leading_words(first: str, second: str, expected: float) -> None:
    assert gaudi_check.agreement(first, second) == expected


def test_table_lines_up_prompts_and_throughput() -> None:
    assert gaudi_check.table(BF16, FP8) == "\n".join(
        [
            "model: tiny",
            "",
            "prompt  BF16 tokens  FP8 tokens  same text  agreement",
            "1       4            4           yes        100%",
            "2       3            3           no         67%",
            "3       0            0           yes        100%",
            "4       2            3           no         0%",
            "all     9            10          2/4        67%",
            "",
            "run       seconds  tokens/s",
            "BF16      2.0      4.5",
            "FP8       1.0      10.0",
            "FP8/BF16           2.22x",
        ]
    )


def test_table_refuses_runs_of_different_prompt_sets() -> None:
    with pytest.raises(ValueError, match="not the same prompt set"):
        gaudi_check.table(BF16, standin_run("FP8", ["a"], 1.0))


def test_table_command_fails_below_the_minimum_agreement(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gaudi_check.save(BF16, tmp_path / "b.json")
    gaudi_check.save(FP8, tmp_path / "f.json")
    assert gaudi_check.load(tmp_path / "f.json") == FP8
    args = ["table", str(tmp_path / "b.json"), str(tmp_path / "f.json")]
    assert gaudi_check.main([*args, "--min-agreement", "0.6"]) == 0
    assert "FP8/BF16" in capsys.readouterr().out
    assert gaudi_check.main([*args, "--min-agreement", "0.7"]) == 1
    assert capsys.readouterr().err.strip() == "gaudi_check: mean agreement 67% is below 70%"


class StandinCompletions(BaseHTTPRequestHandler):
    """A STAND-IN for vLLM's /v1/completions: echoes the prompt's last word three times."""

    seen: ClassVar[list[dict[str, object]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.seen.append(body)
        word = str(body["prompt"]).split()[-1]
        answer = {"choices": [{"text": f" {word}" * 3}], "usage": {"completion_tokens": 3}}
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def endpoint() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), StandinCompletions)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_run_sends_every_prompt_greedily_in_order(endpoint: str, tmp_path: Path) -> None:
    StandinCompletions.seen.clear()
    out = tmp_path / "bf16.json"
    assert gaudi_check.main(["run", "--endpoint", endpoint, "--model", "m", "--label", "BF16",
                             "--out", str(out)]) == 0  # fmt: skip
    result = gaudi_check.load(out)
    assert [a.text.split()[0] for a in result.answers] == [
        p.split()[-1] for p in gaudi_check.PROMPTS
    ]
    assert result.tokens_per_s > 0 and result.label == "BF16"
    assert {(b["temperature"], b["max_tokens"], b["model"]) for b in StandinCompletions.seen} == {
        (0, gaudi_check.MAX_TOKENS, "m")
    }
