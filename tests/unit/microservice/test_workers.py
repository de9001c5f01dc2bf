"""LLM_USVC_WORKERS: validated like every setting; workers rebuild the parent's settings."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from common.config_errors import ConfigError
from microservice.__main__ import WORKER_SETTINGS, worker_app, worker_settings_json
from microservice.settings import MicroserviceSettings, load_settings


def test_workers_default_one_and_refuse_zero(clean_env: pytest.MonkeyPatch) -> None:
    assert load_settings().llm_usvc_workers == 1
    clean_env.setenv("LLM_USVC_WORKERS", "0")
    with pytest.raises(ConfigError, match="LLM_USVC_WORKERS='0'"):
        load_settings()


def test_worker_app_uses_the_parents_settings_not_the_env(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("LLM_CONNECTOR", "langchain")
    clean_env.setenv("LLM_USVC_WORKERS", "2")
    parent = load_settings()
    clean_env.setenv(WORKER_SETTINGS, worker_settings_json(parent))
    clean_env.setenv("LLM_CONNECTOR", "generic")  # changed after start: workers must not see it
    app = worker_app()
    with TestClient(app):  # runs the lifespan, which builds the state from the settings
        assert app.state.service.settings == parent
        assert app.state.service.settings.llm_connector == "langchain"


def test_workers_get_the_secrets_pydantic_masks(clean_env: pytest.MonkeyPatch) -> None:
    url = "redis://:s3cret-pass@127.0.0.1:1/0"
    clean_env.setenv("LLM_RATE_LIMIT_REDIS_URL", url)
    parent = load_settings()
    assert "s3cret" not in parent.model_dump_json()  # pydantic masks it ...
    worker = MicroserviceSettings.model_validate_json(worker_settings_json(parent))
    secret = worker.llm_rate_limit_redis_url
    assert secret is not None and secret.get_secret_value() == url  # ... the workers do not
