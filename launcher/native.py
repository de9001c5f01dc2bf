"""``--native``: the stack as local processes, in the foreground.

Every model server (the chat replicas, the embedding server) starts at once in its own process
group; once all answer ``/health`` the microservice starts; once it answers, the requests to
try are printed. Any process exiting, Ctrl-C or SIGTERM stops them all, the microservice first
(each group SIGTERM, SIGKILL after ``STOP_GRACE_S``, gone before the next), and the launcher
exits with that process's status, 130 or 143.
"""

from __future__ import annotations

import contextlib
import logging
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO

from launcher import embedding, supervisor
from launcher.config import Stack
from launcher.console import ConsoleFilter, SharedLog, relay
from launcher.demo import requests_text
from launcher.errors import refuse
from launcher.replica_plan import Replica
from launcher.replicas import endpoint_host

_PLAIN_WORD = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_./=,:@%+-")
POLL_S = 2.0


@dataclass(frozen=True)
class ModelServer:
    """One model server to start: its name on the console, command, base URL and log file."""

    label: str
    command: list[str]
    url: str
    log_name: str
    announce: str


def shell_line(words: list[str]) -> str:
    """A command as one shell line: plain words as they are, the others quoted."""
    return " ".join(w if w and set(w) <= _PLAIN_WORD else shlex.quote(w) for w in words)


def replica_command(
    replica: Replica, *, python: str, env_file: Path, has_taskset: bool
) -> list[str]:
    """The model server with the replica's variables, confined to its CPUs (taskset) when the
    plan gives it some."""
    words = ["env", *(f"{name}={value}" for name, value in replica.env.items())]
    command = words if replica.env else []
    if replica.cpus:
        if not has_taskset:
            raise refuse(
                "taskset (util-linux) is missing: VLLM_REPLICAS>1 confines each replica to its "
                "cores with it"
            )
        command += ["taskset", "-c", replica.cpus]
    return [*command, python, "-m", "model_server", "--env-file", str(env_file)]


def model_servers(
    stack: Stack, *, python: str, embedding_env_file: Path | None, has_taskset: bool
) -> list[ModelServer]:
    """The chat replicas, then the embedding server when ``embedding_env_file`` is given."""
    settings, count = stack.model_server, len(stack.plan.replicas)
    what = f"{stack.device}, {settings.llm_vllm_model_name}"
    servers = []
    for index, replica in enumerate(stack.plan.replicas):
        command = replica_command(
            replica, python=python, env_file=stack.env_file, has_taskset=has_taskset
        )
        if count == 1:
            announce = f"starting model server ({what}) on port {settings.llm_vllm_port}"
        else:
            shown = " ".join(f"{name}={value}" for name, value in replica.env.items())
            announce = (
                f"starting model server {index + 1}/{count} ({what}) at {replica.url}, "
                f"CPUs {replica.cpus or 'any'}: {shown}"
            )
        label = f"model server {index + 1}/{count}"
        servers.append(
            ModelServer(label, command, replica.url, f"model-server-{index + 1}.log", announce)
        )
    model = stack.launcher.llm_embedding_model
    if model and embedding_env_file is not None:
        port = stack.launcher.llm_embedding_port
        cards = stack.launcher.llm_embedding_habana_visible_devices
        command = embedding.command(
            stack.env,
            model=model,
            port=port,
            cards=cards if stack.device == "hpu" else None,
            python=python,
            env_file=embedding_env_file,
        )
        announce = f"starting embedding model server ({stack.device}, {model}) on port {port}"
        servers.append(
            ModelServer(
                "embedding model server",
                command,
                stack.embedding_url,
                "embedding-model-server.log",
                announce,
            )
        )
    return servers


def microservice_command(stack: Stack, *, python: str) -> list[str]:
    return [python, "-m", "microservice", "--env-file", str(stack.env_file)]


def microservice_shown_env(stack: Stack) -> list[str]:
    """The variables that point the microservice at what the launcher starts, as --dry-run
    shows them."""
    usvc = stack.microservice
    endpoint = stack.env.get("LLM_MODEL_SERVER_ENDPOINT") or usvc.llm_model_server_endpoint
    words = [f"LLM_MODEL_SERVER_ENDPOINT={endpoint}"]
    if stack.launcher.llm_embedding_model:
        words += [
            f"LLM_EMBEDDING_MODEL_NAME={usvc.llm_embedding_model_name}",
            f"LLM_EMBEDDING_MODEL_SERVER_ENDPOINT={usvc.llm_embedding_model_server_endpoint}",
        ]
    return words


@contextlib.contextmanager
def embedding_env_file(stack: Stack) -> Iterator[Path | None]:
    """The embedding server's env file while the block runs (none without an embedding model)."""
    if not stack.launcher.llm_embedding_model:
        yield None
        return
    with tempfile.NamedTemporaryFile(
        "w", prefix="run_vllm-embedding.", dir=stack.env.get("TMPDIR") or None
    ) as file:
        file.write(embedding.env_file_text(stack.env_file.read_text()))
        file.flush()
        yield Path(file.name)


def dry_run(stack: Stack, *, python: str, has_taskset: bool) -> int:
    """Print each process and the vLLM command each model server would run; start nothing."""
    with embedding_env_file(stack) as env_file:
        servers = model_servers(
            stack, python=python, embedding_env_file=env_file, has_taskset=has_taskset
        )
        for server in servers:
            print(f"{server.label}: {shell_line(server.command)}\n  vLLM: ", end="", flush=True)
            if subprocess.run([*server.command, "--dry-run"], env=stack.env).returncode:
                return 2
    words = [*microservice_shown_env(stack), *microservice_command(stack, python=python)]
    print(f"LLM microservice: {shell_line(words)}")
    return 0


class Stopped(Exception):
    """SIGINT or SIGTERM reached the launcher; ``status``: what it exits with."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def _stop_on(signum: int, _frame: FrameType | None) -> None:
    raise Stopped(128 + signum)


def run(stack: Stack, *, python: str, verbose: bool, has_taskset: bool, log: logging.Logger) -> int:
    """Start the stack and supervise it until a process exits or a signal arrives."""
    signal.signal(signal.SIGINT, _stop_on)
    signal.signal(signal.SIGTERM, _stop_on)
    processes: list[supervisor.Process] = []
    logs = Path(tempfile.mkdtemp(prefix="run_vllm-", dir=stack.env.get("TMPDIR") or None))
    try:
        with embedding_env_file(stack) as env_file:
            servers = model_servers(
                stack, python=python, embedding_env_file=env_file, has_taskset=has_taskset
            )
            log.info(f"vLLM's output goes to {logs}/ (--verbose shows it here too)")
            for server in servers:
                log.info(server.announce)
                processes.append(_start_logged(server, stack, logs, verbose=verbose))
            status = _serve(stack, servers, processes, python=python, log=log)
    except Stopped as stopped:
        status = stopped.status
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        supervisor.stop_front_first(processes, grace_s=stack.launcher.stop_grace_s)
    return status


def _start_logged(
    server: ModelServer, stack: Stack, logs: Path, *, verbose: bool
) -> supervisor.Process:
    """Start a model server whose stdout and stderr go to its log file, and to the console's
    stdout and stderr filtered."""
    pipe = subprocess.PIPE
    process = supervisor.start(server.command, env=stack.env, output=pipe, errors=pipe)
    log_file = (logs / server.log_name).open("wb")
    log = SharedLog(log_file)
    streams = ((process.stdout, sys.stdout.buffer), (process.stderr, sys.stderr.buffer))
    threads = [
        threading.Thread(
            target=relay, args=(source, log, console, ConsoleFilter(verbose=verbose)), daemon=True
        )
        for source, console in streams
    ]
    for thread in threads:
        thread.start()
    threading.Thread(target=_close_after, args=(threads, log_file), daemon=True).start()
    return process


def _close_after(threads: list[threading.Thread], file: IO[bytes]) -> None:
    for thread in threads:
        thread.join()
    file.close()


def _serve(
    stack: Stack,
    servers: list[ModelServer],
    processes: list[supervisor.Process],
    *,
    python: str,
    log: logging.Logger,
) -> int:
    """Every model server healthy, then the microservice; the first process to exit ends it."""
    healthy = True
    for server in servers:
        log.info(f"waiting for {server.url}/health")
        if not supervisor.wait_until_answers(f"{server.url}/health", processes, interval_s=POLL_S):
            healthy = False
            break
    if healthy:
        usvc = stack.microservice
        log.info(f"starting LLM microservice ({usvc.llm_connector}) on port {usvc.llm_usvc_port}")
        processes.append(
            supervisor.start(microservice_command(stack, python=python), env=stack.env)
        )
        url = f"http://{endpoint_host(usvc.llm_usvc_host)}:{usvc.llm_usvc_port}/v1/health_check"
        log.info(f"waiting for {url}")
        if supervisor.wait_until_answers(url, processes, interval_s=POLL_S):
            print(requests_text(usvc.llm_usvc_port), end="", flush=True)
    gone = supervisor.wait_any(processes)
    status = supervisor.exit_status(gone)
    log.info(f"a service exited with status {status}; stopping the rest")
    return status
