"""One typed settings object for the LLM microservice, read once at start.

Names are kept from the upstream OPEA microservice. Sources, highest priority first: exported
environment variables, then an optional env file, then the defaults below. A wrong value stops
start-up with one line (see ``load_settings``). Field descriptions are the documentation:
``docs/configuration.md`` is generated from them (``make docs``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, PrivateAttr, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings

from common.config_loading import SETTINGS_CONFIG, load, lowercase, strict_bool
from common.constants import DEFAULT_MODEL, OtlpProtocol
from microservice.config.audit_target import STDOUT, audit_target
from microservice.config.catalog import Catalog, ModelSpec, endpoint_list, read_catalog
from microservice.config.keys_file import read_keys_file
from microservice.settings.replicas import ReplicaSettings

ConnectorName = Literal["generic", "langchain"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


BOOLEAN_FIELDS = (
    "llm_disable_streaming",
    "llm_output_guard_exists",
    "llm_cache_events",
    "llm_stream_resume",
    "llm_priority_scheduling",
)


class ServiceSettings(BaseSettings):
    """The models, keys, server, streaming, time-outs, logs and traces."""

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
    llm_connector: ConnectorName = Field(
        "generic",
        description="Client that calls the model server: `generic` (pooled async HTTP client) "
        "or `langchain` (langchain-openai's `ChatOpenAI` builds each chat request; streams are "
        "relayed as vLLM's bytes, like `generic`).",
    )
    llm_model_server: Literal["vllm"] = Field(
        "vllm", description="Model server kind; `vllm` is the only one."
    )
    llm_model_server_endpoint: str = Field(
        "http://localhost:8008",
        description="Base URL of the model server, `http(s)://host:port`, without `/v1` (a "
        "trailing slash is dropped); or a comma-separated list of them, one per vLLM replica. "
        "A host name that resolves to several addresses (a Kubernetes headless Service) counts "
        "as one replica per address, resolved again every `LLM_DISCOVERY_REFRESH_S`.",
    )
    llm_models_file: Path | None = Field(
        None,
        description="YAML file naming each served model (`name`, `kind`: `chat`, `embedding` "
        "or `rerank`, `endpoints`, optional `served_model_name`, `fallbacks`) and an optional "
        "`default` for OPEA-form requests; see docs/operating.md. Unset: the one model of "
        "`LLM_MODEL_NAME` on `LLM_MODEL_SERVER_ENDPOINT` (plus the embedding model and the "
        "reranker below, when named).",
    )
    llm_embedding_model_name: str | None = Field(
        None,
        min_length=1,
        description="Without a models file: an embedding model served beside the chat model "
        "(a vLLM started with `VLLM_RUNNER=pooling`), reached at "
        "`LLM_EMBEDDING_MODEL_SERVER_ENDPOINT`.",
    )
    llm_embedding_model_server_endpoint: str = Field(
        "http://localhost:8009",
        description="Base URL(s) of the embedding model's vLLM, as `LLM_MODEL_SERVER_ENDPOINT`; "
        "used only with `LLM_EMBEDDING_MODEL_NAME`.",
    )
    llm_rerank_model_name: str | None = Field(
        None,
        min_length=1,
        description="Without a models file: a reranker (a cross-encoder vLLM serves with "
        "`VLLM_RUNNER=pooling`) answering /v1/rerank and /v1/score beside the chat model, "
        "reached at `LLM_RERANK_MODEL_SERVER_ENDPOINT`.",
    )
    llm_rerank_model_server_endpoint: str = Field(
        "http://localhost:8010",
        description="Base URL(s) of the reranker's vLLM, as `LLM_MODEL_SERVER_ENDPOINT`; used "
        "only with `LLM_RERANK_MODEL_NAME`.",
    )
    llm_api_keys_file: Path | None = Field(
        None,
        description="YAML file of API keys (`name`, `key_sha256` or `key`, optional `rpm`, "
        "`tpm`, `models`); when set, every API route needs `Authorization: Bearer <key>`. "
        "Reloaded when it changes; see docs/operating.md.",
    )
    llm_api_keys_reload_s: float = Field(
        2.0,
        gt=0,
        description="Seconds between two looks at the API keys file for a change.",
    )
    llm_rate_limit_redis_url: SecretStr | None = Field(
        None,
        description="`redis://[:password@]host:port/db`: per-key limits counted in Redis, so "
        "they hold across microservice replicas. Unset, or Redis unreachable: counted in each "
        "process (health says which).",
    )
    otel_exporter_otlp_endpoint: str | None = Field(
        None,
        description="OpenTelemetry collector to export traces to (e.g. "
        "`http://otel-collector:4318`); unset: no export, but a client's `traceparent` still "
        "reaches vLLM.",
    )
    otel_exporter_otlp_protocol: OtlpProtocol = Field(
        "http/protobuf", description="OTLP protocol: `http/protobuf` or `grpc`."
    )
    otel_service_name: str = Field(
        "llm-microservice", min_length=1, description="`service.name` of the exported spans."
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
    llm_audit_log: str = Field(
        STDOUT,
        min_length=1,
        description="The audit trail, one JSON line per API request (docs/production-api.md): "
        '`stdout` (each line marked `"log": "audit"`), `off`, or a file path, rotated by size '
        "(its folder must exist and be writable). With `LLM_USVC_WORKERS` above 1 each worker "
        "writes its own file: the path plus `.<pid>`.",
    )
    llm_audit_log_max_bytes: int = Field(
        100 * 1024 * 1024, ge=1024, description="Size, in bytes, at which an audit file rotates."
    )
    llm_audit_log_backups: int = Field(
        5, ge=1, description="Rotated audit files kept (`<path>.1` the newest); older ones go."
    )
    _audit_target = field_validator("llm_audit_log", mode="after")(audit_target)
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
        8_388_608,
        ge=1024,
        description="Largest request body accepted, in bytes; a larger one is answered 413. "
        "The default (8 MiB) takes a few base64 images (a 512x512 PNG is about 0.7-1 MB in a "
        "body, a JPEG 0.1-0.3 MB); each request in flight holds its body in memory.",
    )
    llm_remote_media: bool = Field(
        False,
        description="Pass image, audio and video parts given by http(s) URL on to vLLM, which "
        "fetches them from inside your network at the client's choice of address (limit it "
        "with vLLM's `--allowed-media-domains`). Off: only `data:` URLs; another URL is "
        "answered 422 naming the part.",
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
    llm_drain_timeout_s: float = Field(
        10.0,
        gt=0,
        description="On SIGTERM: stop accepting, then let open requests and streams finish for up "
        "to this many seconds before closing them (Kubernetes: keep the pod's termination grace "
        "period longer).",
    )
    llm_usvc_workers: int = Field(
        1,
        ge=1,
        le=64,
        description="uvicorn worker processes, for machines with more cores; each has its own "
        "connection pool and its own `/metrics`.",
    )


class MicroserviceSettings(ReplicaSettings, ServiceSettings):
    """Everything `python -m microservice` needs; built once and handed to ``create_app``."""

    _lowercase = field_validator(
        "llm_connector",
        "llm_model_server",
        "llm_routing",
        "otel_exporter_otlp_protocol",
        mode="before",
    )(lowercase)
    _booleans = field_validator(*BOOLEAN_FIELDS, mode="before")(strict_bool)

    @field_validator("opea_logger_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    _catalog: Catalog | None = PrivateAttr(None)

    @field_validator(
        "llm_model_server_endpoint",
        "llm_embedding_model_server_endpoint",
        "llm_rerank_model_server_endpoint",
        mode="after",
    )
    @classmethod
    def _urls(cls, value: str) -> str:
        return ",".join(endpoint_list(value))

    @property
    def model_server_endpoints(self) -> list[str]:
        """The endpoint list, each once, in the order given."""
        return self.llm_model_server_endpoint.split(",")

    @property
    def catalog(self) -> Catalog:
        """The served models (read from LLM_MODELS_FILE once, at validation)."""
        assert self._catalog is not None
        return self._catalog

    @model_validator(mode="after")
    def _read_files(self) -> MicroserviceSettings:
        """The files named by settings are read at start too: a bad one stops the process."""
        if self.llm_models_file is not None:
            try:
                self._catalog = read_catalog(self.llm_models_file)
            except ValueError as error:
                raise ValueError(
                    f"LLM_MODELS_FILE={str(self.llm_models_file)!r}: {error}"
                ) from None
        else:
            models = [ModelSpec(name=self.llm_model_name, endpoints=self.model_server_endpoints)]
            if self.llm_embedding_model_name:
                endpoints = self.llm_embedding_model_server_endpoint.split(",")
                name = self.llm_embedding_model_name
                models.append(ModelSpec(name=name, kind="embedding", endpoints=endpoints))
            if self.llm_rerank_model_name:
                endpoints = self.llm_rerank_model_server_endpoint.split(",")
                name = self.llm_rerank_model_name
                models.append(ModelSpec(name=name, kind="rerank", endpoints=endpoints))
            self._catalog = Catalog(models=models)
        if self.llm_api_keys_file is not None:
            try:
                read_keys_file(self.llm_api_keys_file)
            except ValueError as error:
                raise ValueError(
                    f"LLM_API_KEYS_FILE={str(self.llm_api_keys_file)!r}: {error}"
                ) from None
        return self

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
