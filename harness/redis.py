"""A real ``redis-server`` (the Debian package) on a free loopback port, for the shared limits.

It keeps nothing on disk (``save ""``, ``appendonly no``) and runs in a temporary directory; it
can be stopped and started again on the same port, as an outage and its end look to a client.
The settings go in a config file, so a password never shows in the process list.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from harness.processes import REPO_ROOT, free_port, stop_process_group

REDIS_SERVER = "redis-server"
START_TIMEOUT_S = 10.0


@dataclass
class RedisServer:
    """One redis-server: its port and password stay the same across stop() and start()."""

    port: int
    workdir: Path
    log_path: Path
    password: str | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def _write_config(self) -> Path:
        lines = [
            f"port {self.port}",
            "bind 127.0.0.1",
            'save ""',
            "appendonly no",
            f"dir {self.workdir}",
            "daemonize no",
            'logfile ""',
        ]
        if self.password:
            lines.append(f"requirepass {self.password}")
        config = self.workdir / "redis.conf"
        config.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return config

    def start(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Start it (again) and return once it answers PING."""
        if self.process is not None and self.process.poll() is None:
            return
        binary = shutil.which(REDIS_SERVER)
        if binary is None:
            raise RuntimeError("redis-server is not installed (apt-get install -y redis-server)")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log_file:
            self.process = subprocess.Popen(
                [binary, str(self._write_config())],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                cwd=REPO_ROOT,
                start_new_session=True,
            )
        self._wait_until_ready(timeout_s)

    def stop(self) -> None:
        """Stop it by its PID (its port stays free for start())."""
        if self.process is not None:
            stop_process_group(self.process, grace_s=5)
            self.process = None

    def _wait_until_ready(self, timeout_s: float) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}")
            if self._pong():
                return
            time.sleep(0.05)
        raise TimeoutError(f"redis-server on port {self.port} did not answer in {timeout_s}s")

    def _pong(self) -> bool:
        """PING over a raw socket (AUTH first when there is a password)."""
        commands = (f"AUTH {self.password}\r\n" if self.password else "") + "PING\r\n"
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock,
        ):
            sock.sendall(commands.encode())
            answer = b""
            while b"PONG" not in answer and b"-" not in answer:
                chunk = sock.recv(256)
                if not chunk:
                    break
                answer += chunk
            return b"+PONG" in answer
        return False


@contextlib.contextmanager
def redis_server(log_path: Path, password: str | None = None) -> Iterator[RedisServer]:
    """A started redis-server in a temporary directory; stopped and removed when the block
    ends. Its ``url`` carries the password, when there is one."""
    with tempfile.TemporaryDirectory(prefix="redis-") as workdir:
        server = RedisServer(free_port(), Path(workdir), log_path, password)
        try:
            server.start()
            yield server
        finally:
            server.stop()
