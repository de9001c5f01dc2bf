"""A private Docker engine for the end-to-end tests, driven through scripts/docker_engine.sh.

The engine is started with flags that leave the host's firewall alone, with all its state in one
folder, and stopped by its PID afterwards; the folder goes with it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from harness.processes import REPO_ROOT

ENGINE_SCRIPT = REPO_ROOT / "scripts" / "docker_engine.sh"
BASE_IMAGE = "python:3.11-slim-bookworm"
LOG_DIR = REPO_ROOT / "test-logs"


class EngineUnavailable(Exception):
    """This machine cannot start a Docker engine; the message says why."""


def unavailable_reason() -> str | None:
    """Why this machine cannot run the e2e tier, or None when it can (possibly after apt-get)."""
    if os.environ.get("E2E_DOCKER", "").strip().lower() in {"0", "false", "no", "off", "skip"}:
        return "disabled by E2E_DOCKER=0"
    if not sys.platform.startswith("linux"):
        return f"needs Linux to start a private dockerd (this is {sys.platform})"
    if os.geteuid() != 0:
        return "needs root to start a private dockerd (and to apt-get docker.io if missing)"
    needed = ("dockerd", "docker", "debootstrap", "iptables")
    if not all(shutil.which(tool) for tool in needed) and not shutil.which("apt-get"):
        return "dockerd/debootstrap are missing and there is no apt-get to install them"
    return None


@dataclass
class Phases:
    """Wall time of each phase, reported at the end of the run."""

    started: float = field(default_factory=time.monotonic)
    seconds: dict[str, float] = field(default_factory=dict)

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        begin = time.monotonic()
        try:
            yield
        finally:
            self.seconds[name] = round(time.monotonic() - begin, 1)

    def summary(self) -> str:
        parts = ", ".join(f"{name} {secs:.0f}s" for name, secs in self.seconds.items())
        return f"e2e wall time {time.monotonic() - self.started:.0f}s ({parts})"


def script(*args: str, env: dict[str, str] | None = None, timeout_s: float = 600) -> str:
    """Run scripts/docker_engine.sh; its log goes to test-logs/e2e-engine.log."""
    LOG_DIR.mkdir(exist_ok=True)
    with (LOG_DIR / "e2e-engine.log").open("a") as log:
        result = subprocess.run(
            ["bash", str(ENGINE_SCRIPT), *args],
            env={**os.environ, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    if result.returncode != 0:
        tail = (LOG_DIR / "e2e-engine.log").read_text().splitlines()[-5:]
        raise RuntimeError(f"docker_engine.sh {' '.join(args)} failed: {' | '.join(tail)}")
    return result.stdout


@dataclass
class Engine:
    folder: Path
    docker_host: str

    @property
    def env(self) -> dict[str, str]:
        return {"DOCKER_HOST": self.docker_host}

    def pid(self) -> int | None:
        pidfile = self.folder / "dockerd.pid"
        with contextlib.suppress(OSError, ValueError):
            return int(pidfile.read_text().strip())
        return None


@contextlib.contextmanager
def private_engine(phases: Phases) -> Iterator[Engine]:
    """Install what is missing, start dockerd in a fresh folder, stop it by PID afterwards."""
    with phases.phase("install"):
        try:
            script("install", timeout_s=300)
        except RuntimeError as error:
            raise EngineUnavailable(str(error)) from None
    # A short path: the daemon's unix sockets live under it.
    folder = Path(tempfile.mkdtemp(prefix="xgls-docker-", dir="/tmp"))
    try:
        with phases.phase("engine start"):
            out = script("start", str(folder), timeout_s=120)
        docker_host = next(
            line.split("=", 1)[1] for line in out.splitlines() if line.startswith("DOCKER_HOST=")
        )
        engine = Engine(folder, docker_host)
        yield engine
    finally:
        pid = Engine(folder, "").pid()
        with phases.phase("engine stop"):
            script("stop", str(folder), timeout_s=120)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 0)
                raise AssertionError(f"dockerd (pid {pid}) still runs after stop")
        assert not folder.exists(), f"{folder} was not removed"
