"""Start real servers as child processes on loopback and stop them by PID, with their children
(the launcher's supervisor: the processes the tests start are started as ``run_vllm.sh
--native`` starts them)."""

from __future__ import annotations

import contextlib
import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from launcher import supervisor

REPO_ROOT = Path(__file__).resolve().parents[1]


# Ports handed to servers come from below Linux's ephemeral range (32768-60999): a port the
# kernel picked (bind to 0) can be taken, before our server binds it, by an outgoing
# connection or by another server's own random port (vLLM opens several), which once made a
# Compose service fail with "address already in use".
SERVER_PORTS = (20000, 32000)


def free_port() -> int:
    """A TCP port no one listens on, on any address, outside the ephemeral range."""
    for _ in range(1000):
        port = random.randint(*SERVER_PORTS)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("0.0.0.0", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {SERVER_PORTS}")


@dataclass
class Server:
    """A running server: where it answers, its process, and where its log goes."""

    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self, lines: int = 40) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""


def stop_process_group(process: subprocess.Popen[bytes], grace_s: float = 20.0) -> None:
    """SIGTERM the whole group (vLLM forks an engine core), then SIGKILL what is left."""
    supervisor.stop([process], grace_s=grace_s)


def wait_until_healthy(server: Server, path: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"server exited with {server.process.returncode}:\n{server.log_tail()}"
            )
        if supervisor.answers(server.base_url + path):
            return
        time.sleep(0.5)
    raise TimeoutError(f"{server.base_url}{path} not healthy in {timeout_s}s:\n{server.log_tail()}")


@contextlib.contextmanager
def running(
    args: list[str],
    env: Mapping[str, str],
    port: int,
    log_path: Path,
    health_path: str,
    timeout_s: float,
) -> Iterator[Server]:
    """Run ``args`` in a new process group until the block ends; yield once healthy."""
    with spawned(args, env, port, log_path) as server:
        wait_until_healthy(server, health_path, timeout_s)
        yield server


@contextlib.contextmanager
def spawned(args: list[str], env: Mapping[str, str], port: int, log_path: Path) -> Iterator[Server]:
    """Run ``args`` in a new process group until the block ends, its output in ``log_path``;
    yield at once, not yet waited for (several servers can then load in parallel)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log_file:
        process = supervisor.start(args, env={**os.environ, **env}, cwd=REPO_ROOT, output=log_file)
        try:
            yield Server(f"http://127.0.0.1:{port}", process, log_path)
        finally:
            stop_process_group(process)


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]
