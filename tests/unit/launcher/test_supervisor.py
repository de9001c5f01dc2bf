"""The supervisor with real processes: groups started apart from the terminal, polled over
HTTP, stopped with every process they forked."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import psutil

from harness.processes import free_port
from launcher import supervisor

ENV = {"PATH": os.environ["PATH"]}
# A shell that forks a child (as vLLM forks its engine core), then waits.
FORKING = ["bash", "-c", "sleep 300 & wait"]


def test_stop_ends_the_whole_group_and_reaps_the_leader() -> None:
    process = supervisor.start(FORKING, env=ENV)
    assert os.getpgid(process.pid) == process.pid  # a group of its own
    time.sleep(0.3)
    children = psutil.Process(process.pid).children(recursive=True)
    assert children
    supervisor.stop([process], grace_s=5)
    assert process.returncode is not None
    _, alive = psutil.wait_procs(children, timeout=5)
    assert alive == []


def test_the_front_stops_first_while_the_servers_behind_it_still_run(tmp_path: Path) -> None:
    """Started model server, then microservice: the microservice is signalled and gone before
    the model server is signalled, so its open streams drain against a live model server."""
    order = tmp_path / "order"

    def noting(name: str) -> list[str]:
        return ["bash", "-c", f"trap 'echo {name} >> {order}; exit 0' TERM; sleep 300 & wait"]

    model_server = supervisor.start(noting("model-server"), env=ENV)
    microservice = supervisor.start(noting("microservice"), env=ENV)
    time.sleep(0.3)
    supervisor.stop_front_first([model_server, microservice], grace_s=5)
    assert order.read_text().split() == ["microservice", "model-server"]
    assert model_server.returncode is not None and microservice.returncode is not None


def test_a_process_that_ignores_sigterm_is_killed_after_the_grace() -> None:
    process = supervisor.start(["bash", "-c", "trap '' TERM; sleep 300 & wait"], env=ENV)
    time.sleep(0.3)
    started = time.monotonic()
    supervisor.stop([process], grace_s=1)
    assert 1 <= time.monotonic() - started < 10
    assert supervisor.exit_status(process) == 137  # 128 + SIGKILL


def test_exit_status_and_the_first_to_exit(tmp_path: Path) -> None:
    slow = supervisor.start(["sleep", "300"], env=ENV)
    with (tmp_path / "out.log").open("wb") as log:
        quick = supervisor.start(["bash", "-c", "echo hi; exit 3"], env=ENV, output=log)
    try:
        assert supervisor.wait_any([slow, quick], interval_s=0.05) is quick
        assert supervisor.exit_status(quick) == 3
        assert (tmp_path / "out.log").read_text() == "hi\n"
        assert (
            supervisor.wait_until_answers("http://127.0.0.1:1/", [quick], interval_s=0.05) is False
        )
    finally:
        supervisor.stop([slow, quick], grace_s=5)


def test_answers_once_the_server_serves_200(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    assert not supervisor.answers(url)
    server = supervisor.start(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        env=ENV,
        cwd=tmp_path,
        output=(tmp_path / "server.log").open("wb"),
    )
    try:
        assert supervisor.wait_until_answers(url, [server], interval_s=0.1)
        assert not supervisor.answers(url + "missing")  # 404
    finally:
        supervisor.stop([server], grace_s=5)
