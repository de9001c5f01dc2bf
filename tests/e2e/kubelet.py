"""A small kubelet on the private Docker engine: runs a rendered pod's containers and probes them.

The translation (env, identity, limits, mounts, probes) is in kubelet_spec and unit-tested; this
module only drives the `docker` CLI, with a timeout on every call, so an e2e test can run a Helm
chart's pods the way a node would: init containers to completion, then the containers, the
startup probe before readiness, preStop before SIGTERM, and the logs kept in test-logs/.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.e2e.engine import LOG_DIR
from tests.e2e.kubelet_objects import Obj, Objects
from tests.e2e.kubelet_probes import Action, Probe, hooks, probe_plan
from tests.e2e.kubelet_spec import docker_run_args, non_root_violation

DOCKER_TIMEOUT_S = 60.0
EXEC_SLACK_S = 2.0  # `docker exec` start-up on a loaded host, on top of the probe's own timeout
MIN_GRACE_S = 2  # the kubelet's floor once a preStop hook has used up the grace period
USER_AGENT = "kube-probe/1.34"


class PodFailed(AssertionError):
    """A container exited, timed out or failed a probe; the message ends with its last logs."""


@dataclass
class Pod:
    """A pod started by run_pod: its spec, the engine, and when each container started."""

    name: str
    spec: Obj
    docker_env: dict[str, str]
    started: dict[str, float] = field(default_factory=dict)  # container → monotonic start

    def docker_name(self, container: str) -> str:
        return f"{self.name}-{container}"

    def container(self, name: str) -> Obj:
        everyone = (self.spec.get("initContainers") or []) + self.spec["containers"]
        return next(c for c in everyone if c["name"] == name)

    def docker(
        self, *args: str, timeout_s: float = DOCKER_TIMEOUT_S, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """One `docker` call; a failure names the subcommand only (argv holds secrets)."""
        result = subprocess.run(
            ["docker", *args],
            env={**os.environ, **self.docker_env},
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"docker {args[0]} failed: {result.stderr.strip()[-2000:]}")
        return result

    def state(self, container: str) -> tuple[str, int]:
        """(status, exit code) of the container as Docker reports it."""
        out = self.docker(
            "inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", self.docker_name(container)
        ).stdout.split()
        return out[0], int(out[1])

    def failed(self, container: str, why: str) -> PodFailed:
        logs = self.docker("logs", "--tail", "40", self.docker_name(container), check=False)
        tail = (logs.stdout + logs.stderr).strip()
        return PodFailed(f"pod {self.name} container {container}: {why}\n--- last logs ---\n{tail}")

    def save_logs(self, container: str, log_dir: Path) -> None:
        log_dir.mkdir(parents=True, exist_ok=True)
        with (log_dir / f"{self.name}-{container}.log").open("w") as log:
            subprocess.run(
                ["docker", "logs", self.docker_name(container)],
                env={**os.environ, **self.docker_env},
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=DOCKER_TIMEOUT_S,
                check=False,
            )


def act(pod: Pod, container: str, action: Action, timeout_s: float) -> tuple[bool, str]:
    """Run one probe or hook handler once: (success, what happened)."""
    try:
        if action.kind == "httpGet":
            url = f"{action.scheme.lower()}://127.0.0.1:{action.port}{action.path}"
            headers = {"User-Agent": USER_AGENT, "Accept": "*/*", **dict(action.headers)}
            answer = httpx.get(url, headers=headers, timeout=timeout_s, verify=False)
            return 200 <= answer.status_code < 400, f"GET {action.path} → {answer.status_code}"
        if action.kind == "tcpSocket":
            socket.create_connection(("127.0.0.1", action.port), timeout=timeout_s).close()
            return True, f"port {action.port} open"
        if action.kind == "sleep":
            time.sleep(action.seconds)
            return True, f"slept {action.seconds}s"
        result = pod.docker(
            "exec", pod.docker_name(container), *action.command,
            timeout_s=timeout_s + EXEC_SLACK_S, check=False,
        )  # fmt: skip
        detail = (result.stdout + result.stderr).strip()[-500:]
        return result.returncode == 0, f"exec exit {result.returncode}: {detail}"
    except (httpx.HTTPError, OSError, subprocess.TimeoutExpired) as error:
        return False, f"{action.kind}: {type(error).__name__}: {error}"


def _check_non_root(pod: Pod, container: Obj) -> None:
    user = pod.docker("image", "inspect", "-f", "{{.Config.User}}", container["image"]).stdout
    why = non_root_violation(container, pod.spec, user.strip())
    if why:
        raise PodFailed(f"pod {pod.name}: {why}")


def _create(pod: Pod, container: Obj, args: list[str]) -> None:
    """`docker run --detach`; a container that could not start is removed and named."""
    _check_non_root(pod, container)
    try:
        pod.docker("run", "--detach", *args)
    except RuntimeError as error:
        pod.docker("rm", "--force", pod.docker_name(container["name"]), check=False)
        raise PodFailed(f"pod {pod.name} container {container['name']}: {error}") from None


def _start(pod: Pod, container: Obj, args: list[str]) -> None:
    _create(pod, container, args)
    pod.started[container["name"]] = time.monotonic()
    post_start, _ = hooks(container)
    if post_start:  # the kubelet kills a container whose postStart hook fails
        ok, detail = act(pod, container["name"], post_start, DOCKER_TIMEOUT_S)
        if not ok:
            raise pod.failed(container["name"], f"postStart hook failed: {detail}")


def _run_to_completion(
    pod: Pod, container: Obj, args: list[str], timeout_s: float, log_dir: Path
) -> None:
    _create(pod, container, args)
    name = container["name"]
    try:
        code = int(pod.docker("wait", pod.docker_name(name), timeout_s=timeout_s).stdout.strip())
    except subprocess.TimeoutExpired:
        pod.docker("kill", pod.docker_name(name), check=False)
        code = -1
    failure = None if code == 0 else pod.failed(name, f"init container exit code {code}")
    pod.save_logs(name, log_dir)
    pod.docker("rm", "--force", pod.docker_name(name), check=False)
    if failure is not None:
        raise failure


def run_pod(
    pod_name: str,
    pod_spec: Obj,
    objects: Objects,
    volume_root: Path,
    docker_env: Mapping[str, str],
    *,
    extra_env: Mapping[str, str] = {},
    extra_hosts: Mapping[str, str] = {},
    init_timeout_s: float = 600,
    log_dir: Path = LOG_DIR,
) -> Pod:
    """Translate every container first (a SpecError starts nothing), run the init containers in
    order (sidecars, restartPolicy Always, stay up once started), then start the containers."""
    pod = Pod(pod_name, pod_spec, dict(docker_env))
    everyone = (pod_spec.get("initContainers") or []) + pod_spec["containers"]
    args = {
        c["name"]: docker_run_args(
            pod_name, c, pod_spec, objects, volume_root, extra_env, extra_hosts
        )
        for c in everyone
    }
    try:
        for init in pod_spec.get("initContainers") or []:
            if init.get("restartPolicy") == "Always":
                _start(pod, init, args[init["name"]])
                _wait_started(pod, init["name"])
            else:
                _run_to_completion(pod, init, args[init["name"]], init_timeout_s, log_dir)
        for container in pod_spec["containers"]:
            _start(pod, container, args[container["name"]])
    except BaseException:
        stop_pod(pod, log_dir, check=False)
        raise
    return pod


def _await(pod: Pod, container: str, kind: str, probe: Probe, deadline: float) -> None:
    """Poll a probe every period until successThreshold successes in a row; a startup probe also
    fails after failureThreshold failures in a row, as the kubelet counts them."""
    time.sleep(max(0.0, pod.started[container] + probe.initial_delay_s - time.monotonic()))
    successes = failures = 0
    while True:
        status, code = pod.state(container)
        if status != "running":
            raise pod.failed(container, f"{status} (exit code {code}) during the {kind} probe")
        ok, detail = act(pod, container, probe.action, probe.timeout_s)
        successes, failures = (successes + 1, 0) if ok else (0, failures + 1)
        if successes >= probe.success_threshold:
            return
        if kind == "startup" and failures >= probe.failure_threshold:
            raise pod.failed(container, f"startup probe failed {failures} times: {detail}")
        if time.monotonic() + probe.period_s > deadline:
            raise pod.failed(container, f"{kind} probe not ready in time: {detail}")
        time.sleep(probe.period_s)


def _wait_started(pod: Pod, container: str, deadline: float | None = None) -> None:
    startup = probe_plan(pod.container(container)).startup
    if startup is not None:
        _await(pod, container, "startup", startup, deadline or float("inf"))


def wait_ready(pod: Pod, timeout_s: float = 600) -> None:
    """Startup probe, then readiness probe, for each running container; a container without a
    readiness probe is ready while it runs. Raises PodFailed with the logs."""
    deadline = time.monotonic() + timeout_s
    for container in pod.started:
        _wait_started(pod, container, deadline)
        readiness = probe_plan(pod.container(container)).readiness
        if readiness is not None:
            _await(pod, container, "readiness", readiness, deadline)
        status, code = pod.state(container)
        if status != "running":
            raise pod.failed(container, f"{status} (exit code {code})")


def check_liveness(pod: Pod) -> None:
    """Each liveness probe once, as the kubelet would before deciding on a restart."""
    for container in pod.started:
        liveness = probe_plan(pod.container(container)).liveness
        if liveness is not None:
            ok, detail = act(pod, container, liveness.action, liveness.timeout_s)
            if not ok:
                raise pod.failed(container, f"liveness probe failed: {detail}")


def _stop(pod: Pod, container: str, log_dir: Path) -> tuple[int, str | None]:
    grace = int(pod.spec.get("terminationGracePeriodSeconds", 30))
    begin, problem = time.monotonic(), None
    _, pre_stop = hooks(pod.container(container))
    if pre_stop is not None and pod.state(container)[0] == "running":
        ok, detail = act(pod, container, pre_stop, grace)
        problem = None if ok else f"{container}: preStop hook failed: {detail}"
    left = max(MIN_GRACE_S, round(grace - (time.monotonic() - begin)))
    name = pod.docker_name(container)
    pod.docker("stop", "-t", str(left), name, timeout_s=left + DOCKER_TIMEOUT_S)
    code = pod.state(container)[1]
    pod.save_logs(container, log_dir)
    pod.docker("rm", "--force", name)
    return code, problem


def stop_pod(pod: Pod, log_dir: Path = LOG_DIR, check: bool = True) -> dict[str, int]:
    """preStop, SIGTERM with the grace period, logs to test-logs/<pod>-<container>.log, rm:
    the containers together, then sidecars in reverse order. Returns the exit codes."""
    sidecars = [c["name"] for c in pod.spec.get("initContainers") or [] if c["name"] in pod.started]
    main = [name for name in pod.started if name not in sidecars]
    codes: dict[str, int] = {}
    problems: list[str] = []

    def stop(container: str) -> None:
        try:
            codes[container], problem = _stop(pod, container, log_dir)
            problems.extend([problem] if problem else [])
        except Exception as error:  # one stuck container must not leave the others running
            problems.append(f"{container}: {type(error).__name__}: {error}")

    with ThreadPoolExecutor(max_workers=max(1, len(main))) as pool:
        list(pool.map(stop, main))
    for sidecar in reversed(sidecars):
        stop(sidecar)
    pod.started.clear()
    if check and problems:
        raise PodFailed(f"pod {pod.name} did not stop cleanly: " + "; ".join(problems))
    return codes
