"""run_vllm.sh keeps what bash is for (finding a Python, .venv/, exec, and `docker compose up`
where no Python exists) and stays short; the launcher holds the rest."""

from __future__ import annotations

import subprocess

from tests.run_vllm_script import RUN_VLLM, clean_environ


def test_the_script_stays_short() -> None:
    assert len(RUN_VLLM.read_text().splitlines()) < 80


def test_it_execs_the_launcher() -> None:
    result = subprocess.run(
        [str(RUN_VLLM), "--help"], env=clean_environ(), capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0
    assert result.stdout.startswith("Usage: ./run_vllm.sh [--native [--dry-run] [--verbose]]")
    assert "--verbose" in result.stdout and "log file" in result.stdout


def test_a_wrong_flag_is_the_usage_and_one_line_on_stderr() -> None:
    result = subprocess.run(
        [str(RUN_VLLM), "--native", "--nope"], env=clean_environ(), capture_output=True,
        text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 1 and result.stdout == ""  # no .venv/ bootstrap either
    assert result.stderr.splitlines()[-1] == "run_vllm.sh: error: unknown argument '--nope'"
