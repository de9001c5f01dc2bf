"""The commands the launcher builds, as pure functions: Compose's argument lists, each native
process's command line, the demo's variables and the requests it prints."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.processes import REPO_ROOT
from launcher import cli, compose, demo, native
from launcher.config import load_stack
from launcher.errors import Refusal
from launcher.replica_plan import Replica
from tests.markdown import printed_requests, readme_curls_on

FILES = ["--env-file=.env", "-f", "docker-compose.yaml"]


@pytest.mark.parametrize(
    ("kwargs", "command"),
    [
        ({}, ["docker", "compose", *FILES, "up", "--build", "-d"]),
        (
            {"fp8": True, "embedding": True},
            ["docker", "compose", "--profile", "fp8", "--profile", "embedding", *FILES, "up",
             "--build", "-d"],
        ),
        (
            {"replicas": 2},
            ["docker", "compose", *FILES, "-f", "replicas.override.yaml", "up", "--build", "-d",
             "--remove-orphans"],
        ),
        (
            {"override_exists": True},
            ["docker", "compose", *FILES, "up", "--build", "-d", "--remove-orphans"],
        ),
    ],
)  # fmt: skip
def test_compose_up(kwargs: dict[str, object], command: list[str]) -> None:
    options: dict[str, object] = {
        "fp8": False, "embedding": False, "replicas": 1, "override_exists": False, **kwargs
    }  # fmt: skip
    args = compose.compose_args(**options)  # type: ignore[arg-type]
    assert args.up_command(["docker", "compose"], wait=False) == command
    assert args.up_command(["docker", "compose"], wait=True) == [*command, "--wait"]


def test_the_demo_builds_its_model_with_the_model_server_image() -> None:
    args = compose.compose_args(fp8=True, embedding=False, replicas=1, override_exists=False)
    assert args.tiny_model_command(["docker-compose"]) == [
        "docker-compose", *FILES, "run", "--rm", "--build", "--entrypoint", "python3",
        "llm-vllm-model-server", "-m", "model_server.tiny_model", "/data/models/tiny",
        "--if-missing",
    ]  # fmt: skip


def test_the_data_folder_is_relative_to_the_stack(tmp_path: Path) -> None:
    assert compose.data_folder(tmp_path, "data") == tmp_path / "data"
    assert compose.data_folder(tmp_path, "/srv/hf") == Path("/srv/hf")


@pytest.mark.usefixtures("clean_env")
def test_compose_gets_the_user_and_the_validated_fp8_switch() -> None:
    stack = load_stack(cli.Options(root=REPO_ROOT), {"LLM_DEVICE": "hpu", "X": "y"})
    env = compose.compose_env(stack, uid=1234)
    assert env["UID"] == "1234" and env["IF_FP8_QUANTIZATION"] == "false" and env["X"] == "y"


def test_shell_line_quotes_only_what_needs_it() -> None:
    assert native.shell_line(["env", "A=1,2", "py", "-m", "x"]) == "env A=1,2 py -m x"
    assert native.shell_line(["echo", "a b", ""]) == "echo 'a b' ''"


def test_a_replica_runs_with_its_variables_on_its_cpus() -> None:
    replica = Replica("http://127.0.0.1:8009", {"LLM_VLLM_PORT": "8009"}, "2-3")
    command = native.replica_command(
        replica, python="py", env_file=Path("/e/.env"), has_taskset=True
    )
    assert command == [
        "env", "LLM_VLLM_PORT=8009", "taskset", "-c", "2-3",
        "py", "-m", "model_server", "--env-file", "/e/.env",
    ]  # fmt: skip
    plain = Replica("http://127.0.0.1:8008", {})
    assert native.replica_command(plain, python="py", env_file=Path("/e"), has_taskset=False) == [
        "py",
        "-m",
        "model_server",
        "--env-file",
        "/e",
    ]
    with pytest.raises(Refusal, match=r"taskset \(util-linux\) is missing"):
        native.replica_command(replica, python="py", env_file=Path("/e"), has_taskset=False)


@pytest.mark.usefixtures("clean_env")
def test_the_native_processes_and_what_they_announce(tmp_path: Path) -> None:
    environ = {"LLM_DEVICE": "cpu", "LLM_EMBEDDING_MODEL": "E", "LLM_EMBEDDING_PORT": "8100"}
    stack = load_stack(cli.Options(root=REPO_ROOT, native=True), environ)
    servers = native.model_servers(
        stack, python="py", embedding_env_file=tmp_path / "e.env", has_taskset=True
    )
    assert [s.label for s in servers] == ["model server 1/1", "embedding model server"]
    assert [s.url for s in servers] == ["http://127.0.0.1:8008", "http://127.0.0.1:8100"]
    assert servers[0].announce.startswith("starting model server (cpu, ")
    assert servers[1].announce == "starting embedding model server (cpu, E) on port 8100"
    assert native.microservice_shown_env(stack) == [
        "LLM_MODEL_SERVER_ENDPOINT=http://localhost:8008",
        "LLM_EMBEDDING_MODEL_NAME=E",
        "LLM_EMBEDDING_MODEL_SERVER_ENDPOINT=http://127.0.0.1:8100",
    ]


def test_the_demo_sets_what_the_tiny_model_needs_and_keeps_what_may_be_tuned() -> None:
    assert demo.demo_env({"VLLM_ENFORCE_EAGER": "false", "VLLM_MAX_MODEL_LEN": ""}, "/m") == {
        "LLM_DEVICE": "cpu",
        "LLM_VLLM_MODEL_NAME": "/m",
        "LLM_MODEL_NAME": "/m",
        "HF_HUB_OFFLINE": "1",
        "IF_FP8_QUANTIZATION": "false",
        "VLLM_ENFORCE_EAGER": "false",
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "VLLM_MAX_MODEL_LEN": "512",
    }


@pytest.mark.parametrize("port", [9000, 9123])
def test_the_requests_to_try_are_the_readmes_on_the_port_in_use(port: int) -> None:
    text = demo.requests_text(port)
    assert printed_requests(text) == readme_curls_on(port)
    assert f'base_url="http://localhost:{port}/v1"' in text
