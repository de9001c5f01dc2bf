"""Server processes in process groups of their own: started, polled until they answer over
HTTP, and stopped together with every process they forked (vLLM forks an engine core).

The launcher's native run and the test harness both start servers with it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

Process = subprocess.Popen[bytes]


def start(
    args: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path | None = None,
    output: IO[bytes] | int | None = None,
    errors: IO[bytes] | int | None = subprocess.STDOUT,
) -> Process:
    """``args`` in a new session (its own process group, away from the terminal's Ctrl-C);
    ``output``: where its stdout goes (None: this process's own), ``errors`` its stderr (by
    default with its stdout)."""
    return subprocess.Popen(
        list(args),
        env=dict(env),
        cwd=cwd,
        stdout=output,
        stderr=None if output is None else errors,
        start_new_session=True,
    )


def answers(url: str, *, timeout_s: float = 2.0) -> bool:
    """Whether ``url`` answers 200 now."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return bool(response.status == 200)
    except (OSError, ValueError):
        return False


def first_exited(processes: Sequence[Process]) -> Process | None:
    return next((process for process in processes if process.poll() is not None), None)


def wait_until_answers(url: str, processes: Sequence[Process], *, interval_s: float) -> bool:
    """Poll ``url`` until it answers (True), or until one of ``processes`` has exited (False)."""
    while not answers(url):
        if first_exited(processes) is not None:
            return False
        time.sleep(interval_s)
    return True


def wait_any(processes: Sequence[Process], *, interval_s: float = 0.5) -> Process:
    """The first of ``processes`` to exit."""
    while (done := first_exited(processes)) is None:
        time.sleep(interval_s)
    return done


def exit_status(process: Process) -> int:
    """The status a shell reports: the exit code, or 128 + the signal that ended it."""
    code = process.wait()
    return 128 - code if code < 0 else code


def _group_alive(process: Process) -> bool:
    process.poll()  # reap the leader: a zombie still counts as a member of its group
    try:
        os.killpg(process.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _signal_group(process: Process, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)


def stop(processes: Sequence[Process], *, grace_s: float) -> None:
    """SIGTERM every process's group, wait up to ``grace_s`` for all of them to be gone, then
    SIGKILL what is left; the processes themselves are reaped."""
    for process in processes:
        _signal_group(process, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while any(_group_alive(p) for p in processes) and time.monotonic() < deadline:
        time.sleep(0.2)
    for process in processes:
        if _group_alive(process):
            _signal_group(process, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)


def stop_front_first(processes: Sequence[Process], *, grace_s: float) -> None:
    """Each process's group in the reverse order of their start, each gone before the next is
    signalled: the microservice, started last, drains its open streams while the model servers
    behind it still answer."""
    for process in reversed(processes):
        stop([process], grace_s=grace_s)
