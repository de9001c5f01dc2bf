"""run_vllm.sh in Docker mode, for real, against a fake `docker` that records what it was
asked to do.

The launcher validates the configuration with the services' own settings: with .venv/'s
Python here, with a host python3 that has pydantic-settings, or (no Python) the script only
runs `docker compose up` and the containers validate (copies of the repository without .venv/
show those cases).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from harness.processes import REPO_ROOT
from launcher import host_layout, replicas
from tests.markdown import printed_requests, readme_curls_on
from tests.run_vllm_script import RUN_VLLM, repo_copy, run_docker_mode
from tests.static import checks


def run(
    tmp_path: Path, *args: str, script: Path = RUN_VLLM, python3: str | None = None, **env: str
) -> tuple[subprocess.CompletedProcess[str], str]:
    return run_docker_mode(tmp_path, *args, script=script, python3=python3, **env)


def test_cpu_stack_runs_the_upstream_compose_command(tmp_path: Path) -> None:
    result, log = run(tmp_path, LLM_DEVICE="cpu")
    assert result.returncode == 0, result.stderr
    assert f"cwd={REPO_ROOT}/docker/cpu" in log
    assert "args=compose --env-file=.env -f docker-compose.yaml up --build -d" in log
    assert f"UID={os.getuid()}" in log
    assert (tmp_path / "data").is_dir()
    assert result.stderr.count("\n") == 1  # one info line, no validation noise


def test_compose_reads_the_env_file_and_exported_variables_win(tmp_path: Path) -> None:
    result, log = run(tmp_path, LLM_DEVICE="cpu", LLM_VLLM_MODEL_NAME="/models/mine")
    assert result.returncode == 0, result.stderr
    assert "LLM_VLLM_MODEL_NAME=/models/mine" in log.splitlines()
    assert "--env-file=.env" in log  # compose reads docker/cpu/.env itself; the shell parses none


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("VLLM_TP_SIZE=0", "model_server: invalid configuration: VLLM_TP_SIZE='0'"),
        ("LLM_CONNECTOR=nope", "microservice: invalid configuration: LLM_CONNECTOR='nope'"),
    ],
)
def test_a_wrong_value_in_the_env_file_stops_it_with_the_services_line(
    tmp_path: Path, line: str, message: str
) -> None:
    root = repo_copy(tmp_path, venv=True, env_lines={"cpu": [line]})
    result, log = run(tmp_path, script=root / "run_vllm.sh", LLM_DEVICE="cpu")
    assert result.returncode == 2
    assert log == ""
    assert result.stderr.splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith(message), result.stderr


def test_an_exported_value_wins_over_a_wrong_one_in_the_env_file(tmp_path: Path) -> None:
    root = repo_copy(tmp_path, venv=True, env_lines={"cpu": ["VLLM_TP_SIZE=0"]})
    result, log = run(tmp_path, script=root / "run_vllm.sh", LLM_DEVICE="cpu", VLLM_TP_SIZE="2")
    assert result.returncode == 0, result.stderr
    assert "args=compose --env-file=.env -f docker-compose.yaml up --build -d" in log


def test_fp8_selects_the_fp8_profile_on_hpu(tmp_path: Path) -> None:
    result, log = run(tmp_path, LLM_DEVICE="hpu", IF_FP8_QUANTIZATION="true")
    assert result.returncode == 0, result.stderr
    assert f"cwd={REPO_ROOT}/docker/hpu" in log
    assert "args=compose --profile fp8 --env-file=.env -f docker-compose.yaml up --build -d" in log
    assert "IF_FP8_QUANTIZATION=true" in log.splitlines()


def test_fp8_set_in_the_env_file_is_read_through_the_settings(tmp_path: Path) -> None:
    root = repo_copy(tmp_path, venv=True, env_lines={"hpu": ["IF_FP8_QUANTIZATION=Yes"]})
    result, log = run(tmp_path, script=root / "run_vllm.sh", LLM_DEVICE="hpu")
    assert result.returncode == 0, result.stderr
    assert "args=compose --profile fp8 --env-file=.env" in log
    assert "IF_FP8_QUANTIZATION=true" in log.splitlines()  # compose gets the validated value


def test_no_fp8_profile_by_default_on_hpu(tmp_path: Path) -> None:
    result, log = run(tmp_path, LLM_DEVICE="HPU")
    assert result.returncode == 0, result.stderr
    assert "--profile" not in log


def test_hpu_is_detected_from_a_habana_docker_runtime(tmp_path: Path) -> None:
    result, log = run(tmp_path, FAKE_RUNTIMES='{"habana":{},"runc":{}}')
    assert result.returncode == 0, result.stderr
    assert f"cwd={REPO_ROOT}/docker/hpu" in log


def test_cpu_is_detected_without_gaudi(tmp_path: Path) -> None:
    if Path("/dev/accel").exists() or Path("/usr/bin/hl-smi").exists():
        pytest.skip("this machine has a Gaudi")
    result, log = run(tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"cwd={REPO_ROOT}/docker/cpu" in log


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"LLM_DEVICE": "tpu"}, "LLM_DEVICE='tpu': Input should be 'cpu' or 'hpu'"),
        (
            {"LLM_DEVICE": "cpu", "IF_FP8_QUANTIZATION": "true"},
            "IF_FP8_QUANTIZATION=true needs LLM_DEVICE=hpu",
        ),
        ({"LLM_DEVICE": "cpu", "FAKE_INFO_FAIL": "1"}, "cannot reach the Docker engine"),
        ({"LLM_DEVICE": "cpu", "FAKE_NO_COMPOSE": "1"}, "Docker Compose v2 is missing"),
        (
            {"LLM_DEVICE": "cpu", "LLM_DATA_DIR": "/proc/no/such/data"},
            "cannot create the data folder /proc/no/such/data",
        ),
    ],
)
def test_one_line_errors(tmp_path: Path, env: dict[str, str], message: str) -> None:
    result, log = run(tmp_path, **env)
    assert result.returncode != 0
    assert log == ""  # compose was never started
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0] == f"run_vllm.sh: error: {message}" or message in lines[0]


def test_missing_docker_is_a_one_line_error(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"  # the few tools run_vllm.sh needs, and no docker
    bin_dir.mkdir()
    for name in ("dirname", "date", "mkdir"):
        (bin_dir / name).symlink_to(
            f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else f"/bin/{name}"
        )
    result = subprocess.run(
        ["/bin/bash", str(RUN_VLLM)],
        env={"PATH": str(bin_dir), "LLM_DEVICE": "cpu", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode != 0
    assert result.stderr.strip() == "run_vllm.sh: error: docker is not installed (or use --native)"


def test_without_venv_a_host_python3_with_pydantic_settings_validates(tmp_path: Path) -> None:
    root = repo_copy(tmp_path, venv=False)
    script = root / "run_vllm.sh"
    result, log = run(tmp_path, script=script, python3="venv", LLM_DEVICE="cpu", VLLM_TP_SIZE="0")
    assert result.returncode == 2 and log == ""
    assert result.stderr.startswith("model_server: invalid configuration: VLLM_TP_SIZE='0'")


def test_without_any_python_the_containers_validate(tmp_path: Path) -> None:
    root = repo_copy(tmp_path, venv=False, env_lines={"hpu": ["IF_FP8_QUANTIZATION=true"]})
    script = root / "run_vllm.sh"
    result, log = run(tmp_path, script=script, python3="broken", LLM_DEVICE="cpu", VLLM_TP_SIZE="0")
    assert result.returncode == 0, result.stderr
    assert "the containers validate the configuration at start" in result.stderr
    assert "args=compose --env-file=.env -f docker-compose.yaml up --build -d" in log

    # The one switch the script needs itself (it picks the compose profile) is still read.
    (tmp_path / "docker.log").unlink()
    result, log = run(tmp_path, script=script, python3="broken", LLM_DEVICE="hpu")
    assert result.returncode == 0, result.stderr
    assert "args=compose --profile fp8 --env-file=.env" in log

    result, log = run(tmp_path, script=script, python3="broken", LLM_DEVICE="tpu")
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        "run_vllm.sh: error: LLM_DEVICE='tpu' is not supported (allowed: cpu, hpu)"
    )


def test_demo_builds_the_tiny_model_in_the_stack_waits_and_prints_the_readme_requests(
    tmp_path: Path,
) -> None:
    result, log = run(tmp_path, "--demo", LLM_DEVICE="hpu", VLLM_MAX_MODEL_LEN="256")
    assert result.returncode == 0, result.stderr
    calls = log.split("---\n")[:-1]
    assert len(calls) == 2, log
    build, up = (call.splitlines() for call in calls)
    assert f"cwd={REPO_ROOT}/docker/cpu" in build  # the demo is the CPU stack, even on a Gaudi
    assert (
        "args=compose --env-file=.env -f docker-compose.yaml run --rm --build --entrypoint python3 "
        "llm-vllm-model-server -m model_server.tiny_model /data/models/tiny --if-missing"
    ) in build
    assert "args=compose --env-file=.env -f docker-compose.yaml up --build -d --wait" in up
    for variable in (
        "LLM_DEVICE=cpu",
        "LLM_VLLM_MODEL_NAME=/data/models/tiny",
        "LLM_MODEL_NAME=/data/models/tiny",
        "HF_HUB_OFFLINE=1",
        "VLLM_CPU_KVCACHE_SPACE=1",
        "VLLM_MAX_MODEL_LEN=256",  # exported: kept
        "LLM_MODEL_SERVER_ENDPOINT=http://127.0.0.1:8008",
    ):
        assert variable in up, variable
    assert printed_requests(result.stdout) == readme_curls_on(9000)


def test_demo_reuses_a_built_tiny_model_and_prints_the_port_in_use(tmp_path: Path) -> None:
    model = tmp_path / "data" / "models" / "tiny"
    model.mkdir(parents=True)
    (model / "config.json").write_text("{}")
    result, log = run(tmp_path, "--demo", LLM_USVC_PORT="9123")
    assert result.returncode == 0, result.stderr
    assert " run " not in log and "up --build -d --wait" in log
    assert printed_requests(result.stdout) == readme_curls_on(9123)
    assert 'base_url="http://localhost:9123/v1"' in result.stdout


def test_help(tmp_path: Path) -> None:
    result, log = run(tmp_path, "--help")
    assert result.returncode == 0
    assert "LLM_DEVICE" in result.stdout and "IF_FP8_QUANTIZATION" in result.stdout
    assert "--demo" in result.stdout and "pydantic-settings" in result.stdout
    assert log == ""


# --- VLLM_REPLICAS>1: one Compose service per replica, in a generated override file ---

OVERRIDE = "replicas.override.yaml"


def render_with_override(
    stack: Path, profiles: tuple[str, ...] = (), **exported: str
) -> dict[str, Any]:
    """`docker-compose config` of the stack's file plus the generated override, as the script
    runs it: its env file, and ``exported`` (nothing else from this shell)."""
    args = [checks.tool("docker-compose")]
    for profile in profiles:
        args += ["--profile", profile]
    args += ["--env-file", ".env", "-f", "docker-compose.yaml", "-f", OVERRIDE]
    env = checks.clean_env(**exported)
    result = checks.run([*args, "config", "--format", "json"], cwd=stack, env=env)
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = json.loads(result.stdout)
    return config


def assert_static_checks_pass(stack: Path, config: dict[str, Any]) -> None:
    """The checks the stack's own compose file passes (tests/static/test_docker_static.py)."""
    override = stack / OVERRIDE
    assert checks.healthy_dependencies_without_healthcheck(config) == []
    assert checks.long_running_without_healthcheck(config) == []
    schema = checks.compose_schema(override)
    assert schema.returncode == 0, schema.stdout + schema.stderr
    lint = checks.yamllint(override)
    assert lint.returncode == 0, lint.stdout
    assert checks.undefined_variables(override.read_text(), checks.env_keys(stack / ".env")) == []


def test_two_cpu_replicas_are_two_services_on_their_own_ports_and_cores(tmp_path: Path) -> None:
    layout = host_layout.read_cpu_layout()
    if len(layout.cores) < 2:
        pytest.skip("two replicas need two physical cores")
    root = repo_copy(tmp_path, venv=True)
    result, log = run(tmp_path, script=root / "run_vllm.sh", LLM_DEVICE="cpu", VLLM_REPLICAS="2")
    assert result.returncode == 0, result.stderr
    assert (
        "args=compose --env-file=.env -f docker-compose.yaml -f replicas.override.yaml "
        "up --build -d --remove-orphans"
    ) in log
    endpoints = "http://127.0.0.1:8008,http://127.0.0.1:8009"
    assert f"LLM_MODEL_SERVER_ENDPOINT={endpoints}" in log.splitlines()

    stack = root / "docker" / "cpu"
    config = render_with_override(stack)
    services = config["services"]
    first, second = services["llm-vllm-model-server"], services["llm-vllm-model-server-1"]
    plan = replicas.plan_cpu(2, 8008, layout).replicas
    for service, replica in zip((first, second), plan, strict=True):
        assert service["environment"]["LLM_VLLM_PORT"] == replica.env["LLM_VLLM_PORT"]
        bind = service["environment"]["VLLM_CPU_OMP_THREADS_BIND"]
        assert bind == replica.env["VLLM_CPU_OMP_THREADS_BIND"]
        assert service["cpuset"] == replica.cpus
    # Replica 1 is the base service but for its port and cores.
    for key in ("image", "build", "volumes", "healthcheck", "network_mode", "restart", "init"):
        assert second[key] == first[key], key
    assert second["depends_on"] == first["depends_on"]  # data-init first
    same = {k: v for k, v in first["environment"].items() if k not in second["environment"]}
    assert same == {}
    usvc = services["llm-usvc"]
    assert usvc["environment"]["LLM_MODEL_SERVER_ENDPOINT"] == endpoints
    for name in ("llm-vllm-model-server", "llm-vllm-model-server-1"):
        assert usvc["depends_on"][name]["condition"] == "service_healthy"
        assert usvc["depends_on"][name]["restart"] is True
    assert_static_checks_pass(stack, config)
    assert "VLLM_REPLICAS" not in first["environment"]  # one container is one replica


def test_hpu_replicas_get_their_card_groups_and_wait_for_fp8_calibration(tmp_path: Path) -> None:
    root = repo_copy(tmp_path, venv=True)
    exported = {
        "LLM_DEVICE": "hpu",
        "VLLM_REPLICAS": "2",
        "HABANA_VISIBLE_DEVICES": "0,1,2,3",
        "VLLM_TP_SIZE": "2",
        "IF_FP8_QUANTIZATION": "true",
    }
    result, log = run(tmp_path, script=root / "run_vllm.sh", **exported)
    assert result.returncode == 0, result.stderr
    assert (
        "args=compose --profile fp8 --env-file=.env -f docker-compose.yaml "
        "-f replicas.override.yaml up --build -d --remove-orphans"
    ) in log
    stack = root / "docker" / "hpu"
    text = (stack / OVERRIDE).read_text()
    assert "HABANA_VISIBLE_MODULES" not in text  # in Compose the Habana runtime mounts the cards
    assert "cpuset" not in text
    config = checks.compose_config(stack / "docker-compose.yaml", stack / ".env")  # base intact
    assert config.returncode == 0, config.stderr
    rendered = render_with_override(stack, ("fp8",), **exported)
    services = rendered["services"]
    for name, cards, port in (
        ("llm-vllm-model-server", "0,1", "8008"),
        ("llm-vllm-model-server-1", "2,3", "8009"),
    ):
        server = services[name]
        assert server["environment"]["HABANA_VISIBLE_DEVICES"] == cards
        assert server["environment"]["LLM_VLLM_PORT"] == port
        assert server["environment"]["VLLM_TP_SIZE"] == "2"
        assert server["runtime"] == "habana"
        assert server["depends_on"]["fp8-quant"]["condition"] == "service_completed_successfully"
    assert_static_checks_pass(stack, rendered)


def test_an_exported_endpoint_is_kept(tmp_path: Path) -> None:
    root = repo_copy(tmp_path, venv=True)
    result, log = run(
        tmp_path,
        script=root / "run_vllm.sh",
        LLM_DEVICE="hpu",
        VLLM_REPLICAS="2",
        HABANA_VISIBLE_DEVICES="0,1",
        LLM_MODEL_SERVER_ENDPOINT="http://lb.test:8000",
    )
    assert result.returncode == 0, result.stderr
    assert "LLM_MODEL_SERVER_ENDPOINT=http://lb.test:8000" in log.splitlines()
    assert "LLM_MODEL_SERVER_ENDPOINT" not in (root / "docker" / "hpu" / OVERRIDE).read_text()


def test_back_to_one_replica_removes_the_override_and_its_replicas(tmp_path: Path) -> None:
    root = repo_copy(tmp_path, venv=True)
    hpu = {"LLM_DEVICE": "hpu", "HABANA_VISIBLE_DEVICES": "0,1"}
    result, _ = run(tmp_path, script=root / "run_vllm.sh", VLLM_REPLICAS="2", **hpu)
    assert result.returncode == 0, result.stderr
    assert (root / "docker" / "hpu" / OVERRIDE).is_file()
    (tmp_path / "docker.log").unlink()
    result, log = run(tmp_path, script=root / "run_vllm.sh", **hpu)
    assert result.returncode == 0, result.stderr
    assert not (root / "docker" / "hpu" / OVERRIDE).exists()
    assert (
        "args=compose --env-file=.env -f docker-compose.yaml up --build -d --remove-orphans" in log
    )
    # ...and the next start with one replica is today's command again.
    (tmp_path / "docker.log").unlink()
    result, log = run(tmp_path, script=root / "run_vllm.sh", **hpu)
    assert "args=compose --env-file=.env -f docker-compose.yaml up --build -d\n" in log


def test_demo_with_two_replicas_builds_once_and_waits_for_both(tmp_path: Path) -> None:
    if len(host_layout.read_cpu_layout().cores) < 2:
        pytest.skip("two replicas need two physical cores")
    root = repo_copy(tmp_path, venv=True)
    result, log = run(tmp_path, "--demo", script=root / "run_vllm.sh", VLLM_REPLICAS="2")
    assert result.returncode == 0, result.stderr
    build, up = (call.splitlines() for call in log.split("---\n")[:-1])
    files = "--env-file=.env -f docker-compose.yaml -f replicas.override.yaml"
    assert any(line.startswith(f"args=compose {files} run --rm --build ") for line in build)
    assert f"args=compose {files} up --build -d --remove-orphans --wait" in up
    assert "LLM_MODEL_SERVER_ENDPOINT=http://127.0.0.1:8008,http://127.0.0.1:8009" in up
    assert printed_requests(result.stdout) == readme_curls_on(9000)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"VLLM_REPLICAS": "3", "HABANA_VISIBLE_DEVICES": "0,1", "LLM_DEVICE": "hpu"},
            "run_vllm.sh: VLLM_REPLICAS=3 needs 3 Gaudi cards (VLLM_TP_SIZE=1 x VLLM_PP_SIZE=1 "
            "per replica); "
            "HABANA_VISIBLE_DEVICES gives 2 (0,1)",
        ),
        (
            {"VLLM_REPLICAS": "2", "LLM_USVC_PORT": "8009", "LLM_DEVICE": "hpu",
             "HABANA_VISIBLE_DEVICES": "0,1"},
            "run_vllm.sh: error: VLLM_REPLICAS=2 puts vLLM on ports 8008-8009, LLM_USVC_PORT=8009 "
            "among them: move one",
        ),
        (
            {"VLLM_REPLICAS": "0", "LLM_DEVICE": "cpu"},
            "run_vllm.sh: invalid configuration: VLLM_REPLICAS='0': Input should be greater "
            "than or equal to 1",
        ),
    ],
)  # fmt: skip
def test_replicas_that_do_not_fit_stop_it_with_one_line(
    tmp_path: Path, env: dict[str, str], message: str
) -> None:
    root = repo_copy(tmp_path, venv=True)  # a plan that fits writes its override file there
    result, log = run(tmp_path, script=root / "run_vllm.sh", **env)
    assert result.returncode != 0
    assert log == ""
    assert result.stderr.strip().splitlines() == [message]


def test_replicas_without_any_python_is_one_line(tmp_path: Path) -> None:
    root = repo_copy(tmp_path, venv=False)
    script = root / "run_vllm.sh"
    result, log = run(
        tmp_path, script=script, python3="broken", LLM_DEVICE="cpu", VLLM_REPLICAS="2"
    )
    assert result.returncode == 1 and log == ""
    assert result.stderr.splitlines()[-1] == (
        "run_vllm.sh: error: VLLM_REPLICAS=2 needs .venv/ or a host python3 with pydantic-settings "
        "(python -m launcher.replicas plans the replicas)"
    )
    result, log = run(
        tmp_path, script=script, python3="broken", LLM_DEVICE="cpu", VLLM_REPLICAS="1"
    )
    assert result.returncode == 0, result.stderr
