"""One typed settings object for the LLM microservice, read once at start.

Names are kept from the upstream OPEA microservice. Sources, highest priority first: exported
environment variables, then an optional env file, then the defaults below. A wrong value stops
start-up with one line (see ``load_settings``). Field descriptions are the documentation:
``docs/configuration.md`` is generated from them (``make docs``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings

from common.config_loading import SETTINGS_CONFIG, load, lowercase, strict_bool
from common.constants import DEFAULT_MODEL

Connector = Literal["generic", "langchain"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]

BOOLEAN_FIELDS = ("llm_disable_streaming", "llm_output_guard_exists")


class MicroserviceSettings(BaseSettings):
    """Everything `python -m microservice` needs; built once and handed to ``create_app``."""

    model_config = SETTINGS_CONFIG

    llm_model_name: str = Field(
        DEFAULT_MODEL,
        min_length=1,
        description="Model name sent to the model server in every request; it must be the "
        "model vLLM serves. Unset: `LLM_VLLM_MODEL_NAME`, else `" + DEFAULT_MODEL + "`.",
    )
    llm_vllm_model_name: str | None = Field(
        None,
        min_length=1,
        description="The model server's model (its own variable, read here too): the default "
        "of `LLM_MODEL_NAME`, so that one variable names the model for both services.",
    )
    llm_connector: Connector = Field(
        "generic",
        description="Client that calls the model server: `generic` (pooled async HTTP client) "
        "or `langchain` (langchain-openai).",
    )
    llm_model_server: Literal["vllm"] = Field(
        "vllm", description="Model server kind; `vllm` is the only one."
    )
    llm_model_server_endpoint: str = Field(
        "http://localhost:8008",
        pattern=r"^https?://[^\s/]+(/[^\s]*)?$",
        description="Base URL of the model server, `http(s)://host:port`, without `/v1`; a "
        "trailing slash is dropped.",
    )
    llm_usvc_host: str = Field(
        "0.0.0.0",
        min_length=1,
        description="Address the microservice binds to; `0.0.0.0` listens on every interface.",
    )
    llm_usvc_port: int = Field(
        9000, ge=1, le=65535, description="TCP port the microservice listens on."
    )
    llm_disable_streaming: bool = Field(
        False,
        description="`true`: answer requests that ask for streaming with one JSON body instead "
        "(as the OPEA component does).",
    )
    llm_output_guard_exists: bool = Field(
        False,
        description="`true`: an output guardrail follows this service, so streamed text is "
        "collected and returned as one JSON body (as the OPEA component does).",
    )
    opea_logger_level: LogLevel = Field("INFO", description="Level of the microservice's logs.")
    llm_request_timeout_s: float = Field(
        120.0,
        gt=0,
        description="Seconds to wait for the model server's answer (or its next stream chunk) "
        "before answering 504.",
    )
    llm_connect_timeout_s: float = Field(
        5.0, gt=0, description="Seconds to wait for a connection to the model server."
    )
    llm_max_body_bytes: int = Field(
        1_048_576,
        ge=1024,
        description="Largest request body accepted, in bytes; a larger one is answered 413.",
    )
    llm_health_cache_s: float = Field(
        5.0,
        ge=0,
        description="Seconds a successful model-server readiness check is reused by the health "
        "endpoint; `0` checks every time. A failed check is never reused.",
    )
    llm_max_connections: int = Field(
        256,
        ge=1,
        description="Most pooled HTTP connections to the model server, per worker process.",
    )
    llm_usvc_workers: int = Field(
        1,
        ge=1,
        le=64,
        description="uvicorn worker processes, for machines with more cores; each has its own "
        "connection pool and its own `/metrics`.",
    )

    _lowercase = field_validator("llm_connector", "llm_model_server", mode="before")(lowercase)
    _booleans = field_validator(*BOOLEAN_FIELDS, mode="before")(strict_bool)

    @field_validator("opea_logger_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("llm_model_server_endpoint", mode="after")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @model_validator(mode="before")
    @classmethod
    def _model_name_follows_model_server(cls, data: Any) -> Any:
        """Upstream reads LLM_MODEL_NAME only; following the server's model avoids a mismatch."""
        if isinstance(data, dict) and not data.get("llm_model_name"):
            data = {**data, "llm_model_name": data.get("llm_vllm_model_name") or DEFAULT_MODEL}
        return data


def load_settings(env_file: str | None = None) -> MicroserviceSettings:
    """Read the environment once; a wrong value raises ConfigError with one line."""
    return load(MicroserviceSettings, env_file)
