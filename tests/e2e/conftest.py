"""One private Docker engine and one build of the CPU images for the whole e2e tier.

The Compose module and the Helm pods module both run on them: the images (about 5 minutes to
build on 2 cores) are built once, and the engine is stopped by its PID when the session ends.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from harness.processes import REPO_ROOT
from tests.e2e import engine as eng
from tests.markdown import code_blocks, section, shell_commands

STACK_DIR = REPO_ROOT / "docker" / "cpu"
IMAGES = {"llm-vllm-model-server": "opea/llm-vllm-cpu:latest", "llm-usvc": "opea/llm-usvc:latest"}


def documented_compose() -> tuple[str, ...]:
    """`docker compose ...` up to `up`, as docs/operating.md prints it for docker/cpu: the test
    runs what operators are told to run."""
    operating = REPO_ROOT / "docs" / "operating.md"
    block = code_blocks(section(operating, "Docker Compose"), "bash")[0]
    lines = [line for command in shell_commands(block) for line in command.splitlines()]
    up = next(line for line in lines if line.startswith("cd docker/cpu") and " up " in line)
    words = shlex.split(up.split(" && ")[-1])
    return tuple(words[: words.index("up")])


# The documented command, run in STACK_DIR.
COMPOSE = documented_compose()
# An optional cache of the debootstrap'ed rootfs (saves about a minute per run).
ROOTFS_CACHE = os.environ.get("E2E_ROOTFS_CACHE", "")


@dataclass
class E2E:
    engine: eng.Engine
    phases: eng.Phases
    config: pytest.Config

    def env(self) -> dict[str, str]:
        """A clean environment that reaches the private engine."""
        keep = ("PATH", "HOME", "LANG", "USER")
        return {**{k: os.environ[k] for k in keep if k in os.environ}, **self.engine.env}

    def report(self, line: str) -> None:
        report(self.config, line)


def report(config: pytest.Config, line: str) -> None:
    """One line on the terminal even while pytest captures output, and in the engine log."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"[e2e] {line}")
    eng.LOG_DIR.mkdir(exist_ok=True)
    with (eng.LOG_DIR / "e2e-engine.log").open("a") as log:
        log.write(f"[e2e] {line}\n")


def _skip_or_fail(reason: str) -> None:
    if os.environ.get("E2E_DOCKER", "").strip().lower() == "required":
        pytest.fail(f"e2e required (E2E_DOCKER=required) but: {reason}")
    pytest.skip(f"e2e (real Docker) skipped: {reason}")


@pytest.fixture(scope="session")
def e2e(request: pytest.FixtureRequest) -> Iterator[E2E]:
    """The started engine with the base image and the build inputs in place."""
    reason = eng.unavailable_reason()
    if reason is not None:
        report(request.config, f"skipped: {reason}")
        _skip_or_fail(reason)
    phases = eng.Phases()
    try:
        with eng.private_engine(phases) as engine:
            with phases.phase("base image"):
                eng.script(
                    "base-image", eng.BASE_IMAGE, ROOTFS_CACHE, env=engine.env, timeout_s=600
                )
            with phases.phase("build inputs"):
                eng.script("build-inputs", timeout_s=300)
            yield E2E(engine, phases, request.config)
    except eng.EngineUnavailable as error:
        report(request.config, f"skipped: {error}")
        _skip_or_fail(str(error))
    finally:
        if phases.seconds:
            report(request.config, phases.summary())


def compose_build_env(e2e: E2E) -> dict[str, str]:
    """What `compose build` needs: the engine, and the variables the file requires set."""
    return {
        **e2e.env(),
        "LLM_VLLM_MODEL_NAME": "unused-by-build",
        "LLM_VLLM_PORT": "8008",
        "LLM_MODEL_SERVER_ENDPOINT": "http://127.0.0.1:8008",
        "LLM_USVC_PORT": "9000",
        "LLM_DATA_DIR": "/nonexistent",
        # download.pytorch.org is unreachable here: torch comes from docker/build-inputs/.
        "TORCH_INDEX_URL": "",
    }


@pytest.fixture(scope="session")
def cpu_images(e2e: E2E) -> dict[str, str]:
    """Both CPU images, built from the project's Dockerfiles through Compose, one process per
    image at once (the classic builder builds one at a time); logs in test-logs/."""
    env = compose_build_env(e2e)
    running = {}
    with e2e.phases.phase("build"):
        for service in IMAGES:
            log = (eng.LOG_DIR / f"e2e-build-{service}.log").open("w")
            process = subprocess.Popen(
                [*COMPOSE, "--progress", "plain", "build", service],
                cwd=STACK_DIR, env=env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
            running[service] = (process, log)
        failed = []
        for service, (process, log) in running.items():
            try:
                if process.wait(timeout=1500) != 0:
                    failed.append(service)
            finally:
                if process.poll() is None:
                    process.kill()
                    process.wait()
                log.close()
    assert not failed, f"image build failed for {failed}: see test-logs/e2e-build-*.log"
    return dict(IMAGES)
