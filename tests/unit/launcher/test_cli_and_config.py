"""The launcher's flags, and what it validates before starting anything: both services'
settings and its own, from the environment it is given and the stack's env file."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.processes import REPO_ROOT
from launcher import cli, rules
from launcher.config import load_stack
from launcher.errors import Refusal
from launcher.settings import LauncherSettings
from microservice.settings import MicroserviceSettings
from model_server.settings import ModelServerSettings

NATIVE = cli.Options(root=REPO_ROOT, native=True)
DOCKER = cli.Options(root=REPO_ROOT)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], cli.Options(root=REPO_ROOT)),
        (["--native", "--demo"], cli.Options(root=REPO_ROOT, native=True, demo=True)),
        (["--dry-run", "--native"], cli.Options(root=REPO_ROOT, native=True, dry_run=True)),
        (["--native", "--verbose"], cli.Options(root=REPO_ROOT, native=True, verbose=True)),
        (["--root=/x", "--demo"], cli.Options(root=Path("/x"), demo=True)),
        (["--help", "--nope"], cli.Options(root=REPO_ROOT, help=True)),
        (["-h"], cli.Options(root=REPO_ROOT, help=True)),
    ],
)
def test_flags(argv: list[str], expected: cli.Options) -> None:
    assert cli.parse(argv, default_root=REPO_ROOT) == expected


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (["--nope"], "run_vllm.sh: error: unknown argument '--nope'"),
        (["--dry-run"], "run_vllm.sh: error: --dry-run goes with --native"),
        (["--verbose"], "run_vllm.sh: error: --verbose goes with --native"),
    ],
)
def test_a_wrong_flag_is_the_usage_then_one_line(argv: list[str], line: str) -> None:
    with pytest.raises(cli.UsageError) as caught:
        cli.parse(argv, default_root=REPO_ROOT)
    assert caught.value.line == cli.USAGE + line
    assert caught.value.code == 1


def refused(options: cli.Options, **environ: str) -> Refusal:
    with pytest.raises(Refusal) as caught:
        load_stack(options, {"PATH": "/usr/bin:/bin", **environ})
    return caught.value


@pytest.mark.usefixtures("clean_env")
@pytest.mark.parametrize(
    ("environ", "line"),
    [
        ({"LLM_DEVICE": "tpu"}, "model_server: invalid configuration: LLM_DEVICE='tpu'"),
        ({"VLLM_TP_SIZE": "0"}, "model_server: invalid configuration: VLLM_TP_SIZE='0'"),
        ({"LLM_CONNECTOR": "x"}, "microservice: invalid configuration: LLM_CONNECTOR='x'"),
        ({"VLLM_REPLICAS": "0"}, "run_vllm.sh: invalid configuration: VLLM_REPLICAS='0'"),
        ({"STOP_GRACE_S": "-1"}, "run_vllm.sh: invalid configuration: STOP_GRACE_S='-1'"),
    ],
)
def test_a_wrong_value_is_refused_with_its_readers_line(environ: dict[str, str], line: str) -> None:
    refusal = refused(NATIVE, **{"LLM_DEVICE": "cpu", **environ})
    assert refusal.line.startswith(line), refusal.line
    assert refusal.code == 2 and "\n" not in refusal.line


@pytest.mark.usefixtures("clean_env")
def test_the_environment_given_wins_over_the_env_file_and_names_are_in_any_case() -> None:
    stack = load_stack(NATIVE, {"LLM_DEVICE": "HPU", "llm_vllm_port": "8123", "VLLM_TP_SIZE": ""})
    assert stack.device == "hpu"
    assert stack.env_file == REPO_ROOT / "docker" / "hpu" / ".env"
    assert stack.model_server.llm_vllm_port == 8123
    assert stack.model_server.vllm_tp_size == 1  # exported empty: unset, the env file says 1
    assert stack.env["LLM_DEVICE"] == "hpu"
    assert [r.url for r in stack.plan.replicas] == ["http://127.0.0.1:8123"]
    assert "LLM_MODEL_SERVER_ENDPOINT" not in stack.env  # one replica: the configured one


@pytest.mark.usefixtures("clean_env")
def test_the_demo_serves_the_tiny_model_on_cpu_and_keeps_what_may_be_tuned() -> None:
    environ = {"LLM_DEVICE": "hpu", "VLLM_MAX_MODEL_LEN": "256", "LLM_VLLM_PORT": "8200"}
    stack = load_stack(cli.Options(root=REPO_ROOT, native=True, demo=True), environ)
    model = str(REPO_ROOT / ".demo" / "tiny-model")
    assert stack.device == "cpu"
    assert stack.model_server.llm_vllm_model_name == model
    assert stack.microservice.llm_model_name == model
    assert stack.env["HF_HUB_OFFLINE"] == "1" and stack.env["VLLM_ENFORCE_EAGER"] == "true"
    assert stack.env["VLLM_MAX_MODEL_LEN"] == "256" and stack.env["VLLM_CPU_KVCACHE_SPACE"] == "1"
    assert stack.env["LLM_MODEL_SERVER_ENDPOINT"] == "http://127.0.0.1:8200"
    in_stack = load_stack(cli.Options(root=REPO_ROOT, demo=True), {})
    assert in_stack.model_server.llm_vllm_model_name == "/data/models/tiny"


@pytest.mark.usefixtures("clean_env")
def test_replicas_become_the_microservices_endpoints_unless_one_is_exported() -> None:
    environ = {"LLM_DEVICE": "hpu", "VLLM_REPLICAS": "2", "HABANA_VISIBLE_DEVICES": "0,1"}
    stack = load_stack(DOCKER, environ)
    endpoints = "http://127.0.0.1:8008,http://127.0.0.1:8009"
    assert stack.env["LLM_MODEL_SERVER_ENDPOINT"] == endpoints == stack.plan.endpoints
    assert stack.microservice.llm_model_server_endpoint == endpoints
    exported = load_stack(DOCKER, {**environ, "LLM_MODEL_SERVER_ENDPOINT": "http://lb.test:80"})
    assert exported.env["LLM_MODEL_SERVER_ENDPOINT"] == "http://lb.test:80"


@pytest.mark.usefixtures("clean_env")
@pytest.mark.parametrize(
    ("environ", "message"),
    [
        (
            {"LLM_EMBEDDING_PORT": "8008"},
            "LLM_EMBEDDING_PORT=8008 is among the chat model's vLLM ports (8008-8008): move one",
        ),
        ({"LLM_USVC_PORT": "8009"}, "LLM_EMBEDDING_PORT and LLM_USVC_PORT are both 8009: move one"),
    ],
)
def test_the_embedding_port_clashes_with_no_other(environ: dict[str, str], message: str) -> None:
    refusal = refused(NATIVE, LLM_DEVICE="cpu", LLM_EMBEDDING_MODEL="E", **environ)
    assert (refusal.line, refusal.code) == (f"run_vllm.sh: error: {message}", 1)


def test_the_microservice_port_is_none_of_the_replicas() -> None:
    settings = (
        ModelServerSettings(llm_vllm_port=8008),
        LauncherSettings(vllm_replicas=3),
        MicroserviceSettings(llm_usvc_port=8010),
    )
    with pytest.raises(Refusal) as caught:
        rules.check_usvc_port(*settings)
    assert caught.value.line == (
        "run_vllm.sh: error: VLLM_REPLICAS=3 puts vLLM on ports 8008-8010, LLM_USVC_PORT=8010 "
        "among them: move one"
    )


@pytest.mark.usefixtures("clean_env")
def test_natively_the_microservice_serves_the_embedding_model_started_beside_it() -> None:
    stack = load_stack(NATIVE, {"LLM_DEVICE": "cpu", "LLM_EMBEDDING_MODEL": "E"})
    assert stack.env["LLM_EMBEDDING_MODEL_NAME"] == "E"
    assert stack.env["LLM_EMBEDDING_MODEL_SERVER_ENDPOINT"] == "http://127.0.0.1:8009"
    assert stack.microservice.llm_embedding_model_name == "E"
    kept = rules.embedding_defaults({"LLM_EMBEDDING_MODEL_NAME": "mine"}, "E", "http://u")
    assert kept == {
        "LLM_EMBEDDING_MODEL_NAME": "mine",
        "LLM_EMBEDDING_MODEL_SERVER_ENDPOINT": "http://u",
    }


def test_compose_checks_the_microservices_files_on_the_host_side_of_the_mount(
    tmp_path: Path,
) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("LLM_API_KEYS_FILE='/etc/llm-usvc/keys.yaml'\n")
    launcher = LauncherSettings(llm_usvc_config_dir="../conf")
    environ = {"LLM_MODELS_FILE": "/etc/llm-usvc/m.yaml", "LLM_API_KEYS_FILE": ""}
    assert rules.mounted_files(environ, env_file, launcher, tmp_path / "cpu") == {
        "LLM_MODELS_FILE": f"{tmp_path}/cpu/../conf/m.yaml",
        "LLM_API_KEYS_FILE": f"{tmp_path}/cpu/../conf/keys.yaml",
    }
    assert rules.mounted_files({"LLM_MODELS_FILE": "/srv/m.yaml"}, None, launcher, tmp_path) == {}


@pytest.mark.usefixtures("clean_env")
def test_compose_leaves_the_audit_files_folder_to_the_container() -> None:
    audit_file = {"LLM_DEVICE": "cpu", "LLM_AUDIT_LOG": "/var/log/llm-usvc/audit.log"}
    stack = load_stack(DOCKER, audit_file)  # no such folder here: the container checks it
    assert stack.env["LLM_AUDIT_LOG"] == "/var/log/llm-usvc/audit.log"
    with pytest.raises(Refusal, match="LLM_AUDIT_LOG="):
        load_stack(NATIVE, audit_file)
