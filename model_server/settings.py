"""One typed settings object for the model server, read once at start.

Sources, highest priority first: exported environment variables, then an optional env file
(``docker/<device>/.env``), then the defaults below. Field descriptions are the documentation:
``python -m model_server --help-env`` prints them and ``docs/configuration.md`` is generated
from them (``make docs``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal, Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings

from common.config_loading import SETTINGS_CONFIG, lowercase, strict_bool
from common.constants import (
    DEFAULT_MODEL,
    OTLP_GRPC,
    OtlpProtocol,
    default_quant_config,
)
from model_server.hpu import HpuSettings
from model_server.lora import LoraSettings

Device = Literal["cpu", "hpu"]
Dtype = Literal["auto", "bfloat16", "float16", "half", "float32", "float"]
# vLLM 0.32's `--runner` and `--convert` choices (vllm/config/model.py), less `draft`, which is
# for speculative-decoding draft models and not served on its own.
Runner = Literal["auto", "generate", "pooling"]
Convert = Literal["auto", "none", "embed", "classify"]
OTLP_URL = re.compile(r"^https?://[^\s/]+(/\S*)?$")


class ServerSettings(BaseSettings):
    """The model, where vLLM listens, how it runs, on CPU, and what it exports."""

    model_config = SETTINGS_CONFIG

    llm_device: Device = Field(
        "cpu",
        description="Device vLLM runs on: `cpu` (Intel Xeon) or `hpu` (Intel Gaudi); chooses "
        "the flags and environment rendered for vLLM.",
    )
    llm_vllm_model_name: str = Field(
        DEFAULT_MODEL,
        min_length=1,
        description="Model to serve (`--model`): a Hugging Face model id, downloaded into "
        "`HF_HOME`, or a local model folder.",
    )
    llm_vllm_host: str = Field(
        "0.0.0.0",
        min_length=1,
        description="Address vLLM binds to (`--host`); `0.0.0.0` listens on every interface.",
    )
    llm_vllm_port: int = Field(
        8008,
        ge=1,
        le=65535,
        description="TCP port vLLM listens on (`--port`); the microservice's "
        "`LLM_MODEL_SERVER_ENDPOINT` points at it.",
    )
    vllm_runner: Runner = Field(
        "auto",
        description="What vLLM runs the model for (`--runner`): `generate` (chat and "
        "completions), `pooling` (embeddings or classification; `/v1/embeddings`, no chat); "
        "`auto` lets vLLM choose from the model's architecture.",
    )
    vllm_convert: Convert = Field(
        "auto",
        description="Adapter that turns a model into another kind (`--convert`): `embed` or "
        "`classify` serve a text-generation model as a pooling model (with "
        "`VLLM_RUNNER=pooling`), `none` serves it as it is; `auto` lets vLLM choose.",
    )
    otel_exporter_otlp_endpoint: str | None = Field(
        None,
        description="OpenTelemetry collector that vLLM exports its request traces to: an "
        "`http(s)://host:port` base URL, the microservice's too (e.g. "
        "`http://otel-collector:4318`); rendered as "
        "`--otlp-traces-endpoint`, with `/v1/traces` added for `http/protobuf`. Unset: vLLM "
        "exports no traces.",
    )
    otel_exporter_otlp_protocol: OtlpProtocol = Field(
        "http/protobuf",
        description="OTLP protocol of that collector: `http/protobuf` (port 4318 usually) or "
        "`grpc` (port 4317 usually); given to vLLM as `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`.",
    )
    hf_token: SecretStr | None = Field(
        None,
        description="Hugging Face access token for gated or private models; passed to vLLM as "
        "`HF_TOKEN`, never logged. Unset for public or local models.",
    )
    hf_home: Path = Field(
        Path.home() / ".cache" / "huggingface",
        description="Hugging Face cache folder: downloaded models, and FP8 measurements under "
        "`inc/<model basename>/`. The Compose stacks fix it to `/data` (the mounted `data/` "
        "folder).",
    )
    vllm_dtype: Dtype = Field(
        "bfloat16",
        description="Weight and activation dtype (`--dtype`): `auto` takes the model's own; "
        "`half` is `float16`, `float` is `float32`.",
    )
    vllm_max_num_seqs: int | None = Field(
        None,
        ge=1,
        description="Most sequences batched in one step (`--max-num-seqs`); unset: vLLM's default.",
    )
    vllm_tp_size: int | None = Field(
        None,
        ge=1,
        description="Tensor parallel size (`--tensor-parallel-size`): devices one copy of the "
        "model is split across; unset: 1.",
    )
    vllm_pp_size: int | None = Field(
        None,
        ge=1,
        description="Pipeline parallel size (`--pipeline-parallel-size`): stages the layers are "
        "split into; unset: 1.",
    )
    vllm_max_model_len: int | None = Field(
        None,
        ge=1,
        description="Context length in tokens, prompt plus answer (`--max-model-len`); unset: "
        "the model's own.",
    )
    vllm_cpu_kvcache_space: int | None = Field(
        None,
        ge=1,
        description="CPU only: KV-cache size in GiB, passed to vLLM as `VLLM_CPU_KVCACHE_SPACE`; "
        "unset: vLLM sizes it from the machine's memory.",
    )
    vllm_cpu_omp_threads_bind: str = Field(
        "auto",
        min_length=1,
        description="CPU only: OpenMP thread binding (`VLLM_CPU_OMP_THREADS_BIND`): `auto` (one "
        "thread per core, NUMA-aware), `nobind`, or a core list such as `0-31`.",
    )
    vllm_cpu_preload: bool = Field(
        True,
        description="CPU only: preload tcmalloc and Intel OpenMP (`LD_PRELOAD`) when they are "
        "installed; `false` never preloads.",
    )
    omp_num_threads: int | None = Field(
        None,
        ge=1,
        description="OpenMP threads per vLLM worker (`OMP_NUM_THREADS`); unset: the OpenMP "
        "runtime's default.",
    )
    vllm_enforce_eager: bool = Field(
        False,
        description="`true`: run the model eagerly (`--enforce-eager`: no compiled graphs), "
        "which starts much faster and serves slower; for tests, demos and debugging.",
    )
    vllm_json_compact: bool = Field(
        False,
        description="`true`: structured outputs (`response_format` `json_schema` / "
        "`json_object`) allow no whitespace between JSON tokens "
        "(`--structured-outputs-config` `disable_any_whitespace`, with vLLM's xgrammar "
        "backend), so a weak or small model cannot pad its JSON with blanks until `max_tokens`.",
    )
    vllm_scheduling_policy: Literal["fcfs", "priority"] = Field(
        "fcfs",
        description="Order of vLLM's own queue (`--scheduling-policy`): `fcfs`, first come "
        "first served, or `priority`, by each request's `priority` (lower first), which the "
        "microservice sets from the API key's class with `LLM_PRIORITY_SCHEDULING=true`.",
    )
    vllm_kv_events_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="TCP port vLLM publishes its KV-cache events on (`--kv-events-config`: a "
        "ZMQ publisher bound on every interface, `tcp://*:PORT`, topic `kv`), so that a router "
        "can learn which prompt blocks each replica holds; `VLLM_REPLICAS` replica *i* "
        "publishes on PORT+*i*. With it, block hashes are "
        "`--prefix-caching-hash-algo sha256_cbor` chained from a fixed seed "
        "(`PYTHONHASHSEED=0`): canonical CBOR, which a reader outside vLLM recomputes exactly "
        "from token ids, where vLLM's default `sha256` hashes Python pickles and older vLLM "
        "(the v0.26.0 vllm-gaudi builds on) seeds each process at random. Unset: no events.",
    )
    _lowercase = field_validator(
        "llm_device",
        "vllm_dtype",
        "vllm_runner",
        "vllm_convert",
        "otel_exporter_otlp_protocol",
        mode="before",
    )(lowercase)
    _booleans = field_validator(
        "vllm_enforce_eager", "vllm_json_compact", "vllm_cpu_preload", mode="before"
    )(strict_bool)

    @field_validator("otel_exporter_otlp_endpoint", mode="after")
    @classmethod
    def _otlp_url(cls, value: str | None) -> str | None:
        """vLLM checks the endpoint only when it exports its first spans: check it at start."""
        if value is None:
            return None
        value = value.strip().rstrip("/")
        if not OTLP_URL.match(value):
            raise ValueError("give the collector's base URL, http(s)://host:port")
        return value

    @model_validator(mode="after")
    def _serving_rules(self) -> Self:
        if self.vllm_runner == "pooling" and "llm_vllm_model_name" not in self.model_fields_set:
            raise ValueError(
                "VLLM_RUNNER=pooling needs LLM_VLLM_MODEL_NAME (the default model is a chat "
                "model); the Compose embedding profile takes it from LLM_EMBEDDING_MODEL"
            )
        if self.vllm_kv_events_port == self.llm_vllm_port:
            raise ValueError(
                f"VLLM_KV_EVENTS_PORT={self.vllm_kv_events_port} is LLM_VLLM_PORT too: the "
                "events need a port of their own"
            )
        if self.vllm_runner == "generate" and self.vllm_convert in ("embed", "classify"):
            raise ValueError(
                f"VLLM_CONVERT={self.vllm_convert} makes a pooling model: it needs "
                "VLLM_RUNNER=pooling (or auto), not generate"
            )
        return self

    @property
    def otlp_traces_endpoint(self) -> str | None:
        """The URL vLLM's exporter is given as it is: OTLP/HTTP needs the full traces path
        (the SDK appends it only to an endpoint read from the environment), gRPC the base."""
        base = self.otel_exporter_otlp_endpoint
        if base is None or self.otel_exporter_otlp_protocol == OTLP_GRPC:
            return base
        return base if base.endswith("/v1/traces") else base + "/v1/traces"


class ModelServerSettings(LoraSettings, HpuSettings, ServerSettings):
    """Everything `python -m model_server` needs to render and start vLLM: the server's
    settings, then the Gaudi ones (model_server/hpu.py), then LoRA's (model_server/lora.py)."""

    @model_validator(mode="after")
    def _device_rules(self) -> Self:
        if self.if_fp8_quantization and self.llm_device != "hpu":
            raise ValueError(
                "IF_FP8_QUANTIZATION=true needs LLM_DEVICE=hpu (vLLM has no FP8 INC kernels on CPU)"
            )
        if self.vllm_kv_cache_dtype == "fp8_inc" and self.llm_device != "hpu":
            raise ValueError("VLLM_KV_CACHE_DTYPE=fp8_inc needs LLM_DEVICE=hpu (a Gaudi dtype)")
        return self

    @model_validator(mode="after")
    def _adapter_names(self) -> Self:
        """vLLM stops at start, after loading the model, on an adapter named as the model."""
        for module in self.lora_modules:
            if module.name == self.llm_vllm_model_name:
                raise ValueError(
                    f"VLLM_LORA_MODULES={self.vllm_lora_modules!r}: the adapter {module.name!r} "
                    "has the served model's name (LLM_VLLM_MODEL_NAME): give it one of its own"
                )
        return self

    @property
    def resolved_quant_config(self) -> Path:
        if self.quant_config is not None:
            return self.quant_config
        return default_quant_config(self.hf_home, self.llm_vllm_model_name)
