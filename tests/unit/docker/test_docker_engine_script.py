"""scripts/docker_engine.sh: the parts that need no root (the e2e tier drives the rest)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from harness.processes import REPO_ROOT

SCRIPT = REPO_ROOT / "scripts" / "docker_engine.sh"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=30, check=False
    )


def test_help_names_every_command() -> None:
    result = run("--help")
    assert result.returncode == 0
    for command in ("install", "start DIR", "stop DIR", "build-inputs", "base-image TAG"):
        assert command in result.stdout


def test_the_engine_flags_leave_the_firewall_alone() -> None:
    text = SCRIPT.read_text()
    for flag in (
        "--bridge=none",
        "--iptables=false",
        "--ip6tables=false",
        "--ip-forward=false",
        "--ip-masq=false",
        '--data-root="${dir}/data"',
        '--exec-root="${dir}/run"',
        '-H "unix://${sock}"',
    ):
        assert flag in text


def test_unknown_command_is_a_one_line_error() -> None:
    result = run("frobnicate")
    assert result.returncode != 0
    assert result.stderr.strip() == (
        "docker_engine.sh: error: unknown command 'frobnicate' "
        "(install, start, stop, build-inputs, base-image)"
    )


def test_stop_of_a_missing_folder_is_a_no_op(tmp_path: Path) -> None:
    result = run("stop", str(tmp_path / "never-started"))
    assert result.returncode == 0


def test_base_image_needs_an_engine() -> None:
    result = subprocess.run(
        ["bash", str(SCRIPT), "base-image", "python:3.11-slim-bookworm"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert result.returncode != 0
    assert "DOCKER_HOST is not set" in result.stderr
