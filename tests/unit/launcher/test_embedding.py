"""run_vllm.sh with LLM_EMBEDDING_MODEL: a second model server for embeddings, natively
(--dry-run: the commands it would start) and in Compose (the `embedding` profile, against the
fake `docker` of tests/unit/docker); and the microservice's config files checked on the host
side of the Compose mount."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from harness.processes import REPO_ROOT
from launcher import embedding
from tests.run_vllm_script import native_dry_run as dry_run
from tests.run_vllm_script import repo_copy
from tests.run_vllm_script import run_docker_mode as run

PYTHON = REPO_ROOT / ".venv" / "bin" / "python"
EMBEDDING = "BAAI/bge-base-en-v1.5"


def test_native_dry_run_starts_an_embedding_server_beside_the_chat_one(tmp_path: Path) -> None:
    result, out = dry_run(
        LLM_DEVICE="cpu",
        LLM_EMBEDDING_MODEL=EMBEDDING,
        VLLM_MAX_MODEL_LEN="4096",  # the chat model's: not the embedding model's
        TMPDIR=str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    assert len(out) == 5, out
    chat_vllm, server, vllm, usvc = out[1], out[2], out[3], out[4]
    assert "--max-model-len 4096" in chat_vllm and "--runner" not in chat_vllm
    assert server.startswith(
        "embedding model server: env -u VLLM_MAX_MODEL_LEN "
        f"LLM_VLLM_MODEL_NAME={EMBEDDING} LLM_VLLM_PORT=8009 VLLM_RUNNER=pooling "
        f"VLLM_CONVERT=embed {PYTHON} -m model_server --env-file {tmp_path}/"
    )
    assert f" --model {EMBEDDING} " in vllm and " --port 8009 " in vllm
    assert vllm.endswith(" --runner pooling --convert embed")
    assert "--max-model-len" not in vllm
    assert " VLLM_CPU_KVCACHE_SPACE=4 " in vllm  # the rest of the env file is shared
    assert usvc.startswith(
        "LLM microservice: LLM_MODEL_SERVER_ENDPOINT=http://localhost:8008 "
        f"LLM_EMBEDDING_MODEL_NAME={EMBEDDING} "
        "LLM_EMBEDDING_MODEL_SERVER_ENDPOINT=http://127.0.0.1:8009 "
    )
    assert list(tmp_path.iterdir()) == []  # its filtered env file is gone


def test_native_dry_run_keeps_exported_embedding_variables() -> None:
    result, out = dry_run(
        LLM_DEVICE="cpu",
        LLM_EMBEDDING_MODEL=EMBEDDING,
        LLM_EMBEDDING_PORT="8100",
        LLM_EMBEDDING_MODEL_SERVER_ENDPOINT="http://embed-lb.test:80",
    )
    assert result.returncode == 0, result.stderr
    assert " --port 8100 " in out[3]
    assert " LLM_EMBEDDING_MODEL_SERVER_ENDPOINT=http://embed-lb.test:80 " in out[4]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"LLM_EMBEDDING_PORT": "8008"},
            "run_vllm.sh: error: LLM_EMBEDDING_PORT=8008 is among the chat model's vLLM ports "
            "(8008-8008): move one",
        ),
        (
            {"LLM_USVC_PORT": "8009"},
            "run_vllm.sh: error: LLM_EMBEDDING_PORT and LLM_USVC_PORT are both 8009: move one",
        ),
        (
            {"LLM_EMBEDDING_PORT": "0"},
            "run_vllm.sh: invalid configuration: LLM_EMBEDDING_PORT='0': Input should be "
            "greater than or equal to 1",
        ),
    ],
)
def test_a_port_clash_stops_it_with_one_line(env: dict[str, str], message: str) -> None:
    result, _ = dry_run(LLM_DEVICE="cpu", LLM_EMBEDDING_MODEL=EMBEDDING, **env)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [message]


def test_the_chat_replicas_ports_are_checked_too(tmp_path: Path) -> None:
    root = repo_copy(tmp_path, venv=True)
    result, log = run(
        tmp_path,
        script=root / "run_vllm.sh",
        LLM_DEVICE="hpu",
        VLLM_REPLICAS="2",
        HABANA_VISIBLE_DEVICES="0,1",
        LLM_EMBEDDING_MODEL=EMBEDDING,
    )
    assert result.returncode != 0 and log == ""
    assert result.stderr.strip().splitlines() == [
        "run_vllm.sh: error: LLM_EMBEDDING_PORT=8009 is among the chat model's vLLM ports "
        "(8008-8009): move one"
    ]


@pytest.mark.parametrize("python3", [None, "broken"])
@pytest.mark.parametrize("where", ["exported", "env file"])
def test_compose_enables_the_embedding_profile(
    tmp_path: Path, where: str, python3: str | None
) -> None:
    """From the validated settings, or read by the script itself when there is no Python."""
    line = f"LLM_EMBEDDING_MODEL={EMBEDDING}"
    root = repo_copy(
        tmp_path, venv=python3 is None, env_lines={"cpu": [line]} if where == "env file" else None
    )
    exported = {"LLM_EMBEDDING_MODEL": EMBEDDING} if where == "exported" else {}
    result, log = run(
        tmp_path, script=root / "run_vllm.sh", python3=python3, LLM_DEVICE="cpu", **exported
    )
    assert result.returncode == 0, result.stderr
    assert "args=compose --profile embedding --env-file=.env -f docker-compose.yaml up" in log


def test_compose_without_an_embedding_model_has_no_profile(tmp_path: Path) -> None:
    result, log = run(tmp_path, LLM_DEVICE="cpu")
    assert result.returncode == 0, result.stderr
    assert "--profile" not in log


def test_compose_checks_the_config_files_where_the_mount_comes_from(tmp_path: Path) -> None:
    """LLM_MODELS_FILE names a path in the container; the check reads the host's file."""
    config = tmp_path / "usvc-config"
    config.mkdir()
    example = REPO_ROOT / "docker" / "usvc-config" / "models.example.yaml"
    exported = {
        "LLM_DEVICE": "cpu",
        "LLM_USVC_CONFIG_DIR": str(config),
        "LLM_MODELS_FILE": "/etc/llm-usvc/models.yaml",
    }
    result, log = run(tmp_path, **exported)
    assert result.returncode == 2 and log == ""
    assert result.stderr.startswith(
        f"microservice: invalid configuration: LLM_MODELS_FILE='{config}/models.yaml': "
        "cannot read it"
    ), result.stderr
    shutil.copy(example, config / "models.yaml")
    result, log = run(tmp_path, **exported)
    assert result.returncode == 0, result.stderr
    assert "LLM_MODELS_FILE=/etc/llm-usvc/models.yaml" in log.splitlines()  # compose: unchanged


def test_the_embedding_env_file_drops_the_chat_models_own_lines() -> None:
    text = "LLM_VLLM_PORT=8008\nexport VLLM_MAX_MODEL_LEN=4096\nHF_HOME=/data\n  QUANT_CONFIG=x\n"
    assert embedding.env_file_text(text) == "HF_HOME=/data\n"


def test_the_embedding_command_unsets_exported_chat_variables_and_sets_its_own() -> None:
    command = embedding.command(
        {"VLLM_TP_SIZE": "2", "HF_HOME": "/data"},
        model="M",
        port=8100,
        cards="3",
        python="py",
        env_file=Path("/tmp/e.env"),
    )
    assert command == [
        "env", "-u", "VLLM_TP_SIZE", "LLM_VLLM_MODEL_NAME=M", "LLM_VLLM_PORT=8100",
        "VLLM_RUNNER=pooling", "VLLM_CONVERT=embed", "HABANA_VISIBLE_DEVICES=3",
        "py", "-m", "model_server", "--env-file", "/tmp/e.env",
    ]  # fmt: skip
