"""vLLM B: a second real vLLM CPU server for the tests of several replicas. It listens on
127.0.0.2 with the session server's port, as two pods of a headless Service would (one port,
two addresses), and publishes its KV-cache events as the session server does; tests kill and
restart it, or freeze and thaw it. It runs vLLM's priority scheduler, which serves requests
without a ``priority`` as the session server does."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from harness.processes import Server, free_port, python_module, wait_until_healthy
from harness.server_envs import QUICK_BOOT, vllm_env
from tests.integration.microservice.helpers import metric

CHAT = {"messages": [{"role": "user", "content": "Say something."}], "max_tokens": 8}


def served(server_url: str) -> float:
    """Requests this vLLM finished, by its own counter."""
    text = httpx.get(server_url + "/metrics", timeout=10).text
    return metric(text, "vllm:request_success_total")


def warm_up(server_url: str, model: str) -> None:
    """A fresh vLLM's first requests are slow (compilation): least-loaded routing rightly
    sends it less until then, which is not what the spread test measures."""
    for _ in range(2):
        body = {**CHAT, "model": model}
        httpx.post(server_url + "/v1/chat/completions", json=body, timeout=120).raise_for_status()


@dataclass
class SecondVllm:
    """vLLM B: on 127.0.0.2 and the session server's port; killed and restarted by tests."""

    model: Path
    port: int
    hf_home: Path
    process: subprocess.Popen[bytes] | None = None
    events_port: int = field(default_factory=free_port)  # the same one after a restart

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.2:{self.port}"

    def start(self) -> None:
        env = {
            **vllm_env(str(self.model), self.port, self.hf_home),
            "LLM_VLLM_HOST": "127.0.0.2",
            **QUICK_BOOT,  # each of its two boots takes seconds, not minutes
            # its KV-cache events, as the session server's (tests/conftest.py)
            "VLLM_KV_EVENTS_PORT": str(self.events_port),
            "VLLM_SERVER_DEV_MODE": "1",
            # vLLM's priority scheduler: a request's `priority` orders its queue (the session
            # server, first come first served, refuses any priority but 0)
            "VLLM_SCHEDULING_POLICY": "priority",
        }
        log = (Path("test-logs") / "vllm-second.log").open("ab")
        self.process = subprocess.Popen(
            python_module("model_server"), env={**os.environ, **env}, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        server = Server(self.base_url, self.process, Path("test-logs") / "vllm-second.log")
        wait_until_healthy(server, "/health", timeout_s=300)

    def kill(self) -> None:
        """SIGKILL, the whole group: no goodbye to anyone."""
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def freeze(self) -> None:
        """SIGSTOP, the whole group: its sockets stay open, nothing answers (a hung host)."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT: it goes on where it stopped."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGCONT)
