"""A model that is neither on disk nor downloadable stops start-up with one line.

Real situations only: folders on disk, a Hugging Face cache laid out as huggingface_hub
writes it, a closed loopback port for an unreachable hub, and a loopback HTTP server for a hub
that answers.
"""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from harness.processes import REPO_ROOT, free_port
from model_server.model_source import (
    DEMO_COMMAND,
    ModelUnavailable,
    check,
    check_adapter,
    is_local_path,
)

HUB_ID = "example-org/example-model"


def closed_endpoint() -> str:
    return f"http://127.0.0.1:{free_port()}"  # nothing listens there: connection refused


def unavailable(name: str, hf_home: Path, **environ: str) -> str:
    with pytest.raises(ModelUnavailable) as caught:
        check(name, hf_home, environ=environ, timeout_s=2)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"model {name!r} is not on disk (looked in ")
    assert message.endswith(f"; try the built-in tiny model: {DEMO_COMMAND}")
    return message


def cache_model(hf_home: Path, repo_id: str) -> Path:
    """The layout huggingface_hub leaves after downloading a model's default revision."""
    repo = hf_home / "hub" / f"models--{repo_id.replace('/', '--')}"
    revision = "0123456789abcdef0123456789abcdef01234567"
    snapshot = repo / "snapshots" / revision
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text('{"model_type": "llama"}\n')
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    return snapshot


@pytest.mark.parametrize(
    ("name", "local"),
    [
        ("/models/x", True),
        ("./x", True),
        ("../x", True),
        ("~/models/x", True),
        ("Intel/neural-chat-7b-v3-3", False),
        ("gpt2", False),
    ],
)
def test_local_paths_and_hub_ids(name: str, local: bool) -> None:
    assert is_local_path(name) is local


def test_a_missing_local_folder(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    message = unavailable(str(missing), tmp_path)
    assert f"(looked in {missing})" in message
    assert "(it is a local path)" in message


def test_a_relative_missing_folder_names_the_absolute_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    message = unavailable("./models/mine", tmp_path)
    assert f"(looked in {tmp_path}/models/mine)" in message


def test_a_folder_without_config_json(tmp_path: Path) -> None:
    folder = tmp_path / "half-copied"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"")
    message = unavailable(str(folder), tmp_path)
    assert f"(looked in {folder}, which has no config.json)" in message


def test_a_hub_id_not_in_an_empty_cache_offline(tmp_path: Path) -> None:
    message = unavailable(HUB_ID, tmp_path, HF_HUB_OFFLINE="1", HF_ENDPOINT=closed_endpoint())
    assert f"(looked in {tmp_path / 'hub'})" in message
    assert "(HF_HUB_OFFLINE is set)" in message


def test_hf_hub_cache_is_where_it_looks_when_set(tmp_path: Path) -> None:
    message = unavailable(HUB_ID, tmp_path, HF_HUB_OFFLINE="true", HF_HUB_CACHE="/elsewhere")
    assert "(looked in /elsewhere)" in message


def test_a_hub_id_with_an_unreachable_hub(tmp_path: Path) -> None:
    endpoint = closed_endpoint()
    message = unavailable(HUB_ID, tmp_path, HF_ENDPOINT=endpoint)
    assert f"(cannot reach {endpoint}: " in message
    assert "refused" in message.lower()


def test_a_cached_model_is_found_without_the_network(tmp_path: Path) -> None:
    cache_model(tmp_path, HUB_ID)
    # Online, with a hub that cannot be reached: any network call would fail the check.
    check(HUB_ID, tmp_path, environ={"HF_ENDPOINT": closed_endpoint()}, timeout_s=2)
    check(HUB_ID, tmp_path, environ={"HF_HUB_OFFLINE": "1"})


def test_the_tiny_model_folder_is_found(tiny_model: Path) -> None:
    check(str(tiny_model), tiny_model, environ={"HF_HUB_OFFLINE": "1"})


class Hub(http.server.BaseHTTPRequestHandler):
    """A model hub that answers every HEAD with ``status`` and remembers the headers."""

    status: ClassVar[int] = 200
    seen: ClassVar[list[dict[str, str]]] = []

    def do_HEAD(self) -> None:
        Hub.seen.append({"path": self.path, **dict(self.headers)})
        self.send_response(self.status)
        if 300 <= self.status < 400:
            self.send_header("Location", "http://127.0.0.1:1/cdn/config.json")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hub() -> Iterator[tuple[str, type[Hub]]]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    Hub.status, Hub.seen = 200, []
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", Hub
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("status", [200, 302, 307, 500])
def test_a_hub_that_has_the_model_or_may_have_it(
    tmp_path: Path, hub: tuple[str, type[Hub]], status: int
) -> None:
    endpoint, handler = hub
    handler.status = status
    check(HUB_ID, tmp_path, environ={"HF_ENDPOINT": endpoint}, timeout_s=2)
    assert handler.seen[0]["path"] == f"/{HUB_ID}/resolve/main/config.json"


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (401, "answered 401: the model is private, gated, or does not exist"),
        (403, "answered 403: the model is private, gated, or does not exist"),
        (404, "answered 404: no such model"),
    ],
)
def test_a_hub_that_refuses(
    tmp_path: Path, hub: tuple[str, type[Hub]], status: int, reason: str
) -> None:
    endpoint, handler = hub
    handler.status = status
    message = unavailable(HUB_ID, tmp_path, HF_ENDPOINT=endpoint)
    assert f"({endpoint} {reason}" in message


def test_the_token_is_sent_and_never_shown(tmp_path: Path, hub: tuple[str, type[Hub]]) -> None:
    endpoint, handler = hub
    handler.status = 401
    with pytest.raises(ModelUnavailable) as caught:
        check(HUB_ID, tmp_path, token="hf_secret", environ={"HF_ENDPOINT": endpoint}, timeout_s=2)
    assert handler.seen[0]["Authorization"] == "Bearer hf_secret"
    assert "hf_secret" not in str(caught.value)


def launcher_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLM_", "VLLM_", "HF_"))}
    return {**env, "LLM_DEVICE": "cpu", "HF_HOME": str(tmp_path), **extra}


def run_launcher(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``python -m model_server ARGS`` with only ``env`` of the stack's variables set."""
    return subprocess.run(
        [sys.executable, "-m", "model_server", *args],
        env=launcher_env(tmp_path, **env),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("model", "extra"),
    [
        ("/no/such/model", {}),
        (HUB_ID, {"HF_HUB_OFFLINE": "1"}),
    ],
)
def test_the_launcher_stops_with_one_line_and_exit_2(
    tmp_path: Path, model: str, extra: dict[str, str]
) -> None:
    result = run_launcher(tmp_path, LLM_VLLM_MODEL_NAME=model, **extra)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"model_server: model {model!r} is not on disk (looked in ")
    assert lines[0].endswith(DEMO_COMMAND)


def test_dry_run_looks_nothing_up(tmp_path: Path) -> None:
    result = run_launcher(
        tmp_path, "--dry-run", LLM_VLLM_MODEL_NAME=HUB_ID, HF_ENDPOINT=closed_endpoint()
    )
    assert result.returncode == 0, result.stderr
    assert f"--model {HUB_ID}" in result.stdout


def test_adapter_folders_are_checked_and_hub_ids_left_to_vllm(tmp_path: Path) -> None:
    (tmp_path / "good").mkdir()
    (tmp_path / "good" / "adapter_config.json").write_text("{}")
    (tmp_path / "empty").mkdir()
    check_adapter("good", str(tmp_path / "good"))
    check_adapter("hub", "org/some-adapter")
    for name, says in (("empty", "has no adapter_config.json"), ("gone", "does not exist")):
        with pytest.raises(ModelUnavailable) as caught:
            check_adapter(name, str(tmp_path / name))
        assert str(caught.value) == (
            f"VLLM_LORA_MODULES: the adapter {name!r} cannot be loaded: {tmp_path / name} "
            f"{says} (a peft adapter folder, as vLLM sees it)"
        )


def test_the_launcher_stops_on_a_missing_adapter_folder_before_vllm(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    result = run_launcher(
        tmp_path, LLM_VLLM_MODEL_NAME=str(model), VLLM_LORA_MODULES=f"sql={tmp_path}/sql"
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"model_server: VLLM_LORA_MODULES: the adapter 'sql' cannot be loaded: {tmp_path}/sql "
        "does not exist (a peft adapter folder, as vLLM sees it)"
    ]
