"""The models file and the settings that name files: read at start, one line when unusable."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.config_errors import ConfigError
from microservice.config.catalog import read_catalog
from microservice.settings import load_settings


def write(tmp_path: Path, text: str, name: str = "models.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_models_file_names_models_kinds_and_replicas(tmp_path: Path) -> None:
    catalog = read_catalog(
        write(
            tmp_path,
            """
models:
  - name: embed
    kind: embedding
    endpoints: [http://e:8009/]
  - name: chat
    endpoints: http://a:8008, http://b:8008
    served_model_name: org/model
""",
        )
    )
    embed, chat = catalog.models
    assert catalog.default == "chat"  # the first chat model, not the first model
    assert chat.endpoints == ["http://a:8008", "http://b:8008"]
    assert chat.served_model_name == "org/model"
    assert embed.kind == "embedding" and embed.served_model_name == "embed"
    assert embed.endpoints == ["http://e:8009"]


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("models: []", "models: List should have at least 1 item"),
        ("models: [{name: a}]", "model 'a': `endpoints` is required"),
        ("models: [{name: a, kind: adapter}]", "adapter 'a': name its chat model as `base`"),
        (
            "models: [{name: a, endpoints: 'http://x'}, {name: s, kind: adapter, base: a, "
            "endpoints: 'http://y'}]",
            "and no `endpoints`",
        ),
        ("models: [{name: a, kind: adapter, base: b}]", "base 'b' is not a chat model"),
        ("models: [{name: a, endpoints: 'http://x', base: b}]", "for adapters only"),
        ("models: [{name: a, endpoints: 'ftp://x'}]", "is not a base URL"),
        ("models: [{name: a, endpoints: 'http://x', kind: image}]", "models.0.kind"),
        ("models: [{name: a, endpoints: 'http://x', extra: 1}]", "models.0.extra"),
        (
            "models: [{name: a, endpoints: 'http://x'}, {name: a, endpoints: 'http://y'}]",
            "unique",
        ),
        ("default: b\nmodels: [{name: a, endpoints: 'http://x'}]", "'b' is not one of"),
        (
            "models: [{name: a, endpoints: 'http://x', fallbacks: [b]}]",
            "fallback 'b' is not another of the models",
        ),
        ("models: [{name: a, endpoints: 'http://x', fallbacks: [a]}]", "is not another"),
        (
            "models: [{name: a, endpoints: 'http://x', fallbacks: [e]},"
            " {name: e, kind: embedding, endpoints: 'http://y'}]",
            "fallback 'e' serves embedding, not chat",
        ),
        (
            "models: [{name: a, endpoints: 'http://x', fallbacks: [b, b]},"
            " {name: b, endpoints: 'http://y'}]",
            "listed twice",
        ),
        ("[1, 2]", "must be a mapping"),
        ("models: [", "not YAML"),
    ],
)
def test_bad_models_file_is_one_line(tmp_path: Path, text: str, says: str) -> None:
    with pytest.raises(ValueError) as caught:
        read_catalog(write(tmp_path, text))
    assert says in str(caught.value)
    assert "\n" not in str(caught.value)


def test_settings_stop_on_a_bad_models_file(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "models: [{name: a}]")
    clean_env.setenv("LLM_MODELS_FILE", str(path))
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert message.startswith("invalid configuration: LLM_MODELS_FILE=")
    assert str(path) in message and "`endpoints` is required" in message
    assert "\n" not in message


def test_settings_stop_on_a_missing_models_file(
    tmp_path: Path, clean_env: pytest.MonkeyPatch
) -> None:
    clean_env.setenv("LLM_MODELS_FILE", str(tmp_path / "nope.yaml"))
    with pytest.raises(ConfigError, match=r"LLM_MODELS_FILE=.*cannot read it"):
        load_settings()


def test_without_a_file_one_chat_model_plus_embedding_and_rerank_models_when_named(
    clean_env: pytest.MonkeyPatch,
) -> None:
    clean_env.setenv("LLM_MODEL_NAME", "chat-m")
    clean_env.setenv("LLM_MODEL_SERVER_ENDPOINT", "http://a:8008,http://b:8008")
    assert [(m.name, m.kind) for m in load_settings().catalog.models] == [("chat-m", "chat")]
    clean_env.setenv("LLM_EMBEDDING_MODEL_NAME", "embed-m")
    clean_env.setenv("LLM_EMBEDDING_MODEL_SERVER_ENDPOINT", "http://e:8009")
    catalog = load_settings().catalog
    assert [(m.name, m.kind, m.endpoints) for m in catalog.models] == [
        ("chat-m", "chat", ["http://a:8008", "http://b:8008"]),
        ("embed-m", "embedding", ["http://e:8009"]),
    ]
    assert catalog.default == "chat-m"
    clean_env.setenv("LLM_RERANK_MODEL_NAME", "rerank-m")
    assert [(m.name, m.kind, m.endpoints) for m in load_settings().catalog.models][2] == (
        "rerank-m", "rerank", ["http://localhost:8010"]
    )  # fmt: skip


def test_settings_stop_on_a_bad_keys_file_without_showing_a_key(
    tmp_path: Path, clean_env: pytest.MonkeyPatch
) -> None:
    secret = "sk-very-secret-value-123"
    path = write(tmp_path, f"keys:\n  - name: a\n    key: {secret}\n    rpm: 0\n", "keys.yaml")
    clean_env.setenv("LLM_API_KEYS_FILE", str(path))
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert message.startswith("invalid configuration: LLM_API_KEYS_FILE=")
    assert "keys.0.rpm" in message
    assert secret not in message
