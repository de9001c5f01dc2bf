"""One typed settings object for the model server, read once at start.

Sources, highest priority first: exported environment variables, then an optional env file
(``docker/<device>/.env``), then the defaults below. Field descriptions are the documentation:
``python -m model_server --help-env`` prints them and the README table is checked against them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings

from model_server.config_loading import SETTINGS_CONFIG, lowercase, strict_bool

Device = Literal["cpu", "hpu"]
Dtype = Literal["auto", "bfloat16", "float16", "half", "float32", "float"]

DEFAULT_MODEL = "Intel/neural-chat-7b-v3-3"
QUANT_CONFIG_FILE = "maxabs_quant_g2.json"


def default_quant_config(hf_home: Path, model_name: str) -> Path:
    """Where the FP8 job writes, and vLLM reads, the INC quantization json for a model."""
    return hf_home / "inc" / Path(model_name.rstrip("/")).name / QUANT_CONFIG_FILE


class ModelServerSettings(BaseSettings):
    """Everything `python -m model_server` needs to render and start vLLM."""

    model_config = SETTINGS_CONFIG

    llm_device: Device = Field("cpu", description="Device vLLM runs on: cpu or hpu.")
    llm_vllm_model_name: str = Field(
        DEFAULT_MODEL,
        min_length=1,
        description="Hugging Face model id or local model folder to serve.",
    )
    llm_vllm_host: str = Field("0.0.0.0", min_length=1, description="Address vLLM binds to.")
    llm_vllm_port: int = Field(8008, ge=1, le=65535, description="Port vLLM listens on.")
    hf_token: SecretStr | None = Field(
        None, description="Hugging Face token for gated models; passed through, never logged."
    )
    hf_home: Path = Field(
        Path.home() / ".cache" / "huggingface",
        description="Hugging Face cache folder (models and FP8 measurements under inc/).",
    )
    vllm_dtype: Dtype = Field("bfloat16", description="Weight and activation dtype (--dtype).")
    vllm_max_num_seqs: int | None = Field(
        None, ge=1, description="Max sequences per batch (--max-num-seqs); vLLM default if unset."
    )
    vllm_tp_size: int | None = Field(
        None, ge=1, description="Tensor parallel size (--tensor-parallel-size)."
    )
    vllm_pp_size: int | None = Field(
        None, ge=1, description="Pipeline parallel size (--pipeline-parallel-size)."
    )
    vllm_max_model_len: int | None = Field(
        None, ge=1, description="Context length (--max-model-len); model's own if unset."
    )
    vllm_cpu_kvcache_space: int | None = Field(
        None, ge=1, description="CPU only: KV-cache size in GiB (VLLM_CPU_KVCACHE_SPACE)."
    )
    vllm_cpu_omp_threads_bind: str = Field(
        "auto",
        min_length=1,
        description="CPU only: OpenMP thread binding (VLLM_CPU_OMP_THREADS_BIND): auto, "
        "nobind, or core list such as 0-31.",
    )
    vllm_cpu_preload: bool = Field(
        True,
        description="CPU only: preload tcmalloc and Intel OpenMP (LD_PRELOAD) when installed.",
    )
    omp_num_threads: int | None = Field(
        None, ge=1, description="OpenMP threads per worker (OMP_NUM_THREADS)."
    )
    vllm_skip_warmup: bool | None = Field(
        None, description="HPU only: skip graph warm-up (faster start, slower serving)."
    )
    habana_visible_devices: str = Field("all", description="HPU only: Gaudi cards to use.")
    pt_hpu_enable_lazy_collectives: bool = Field(
        True, description="HPU only: lazy collectives, required for tensor parallelism."
    )
    pt_hpu_lazy_acc_par_mode: int | None = Field(
        None, ge=0, le=1, description="HPU only: lazy accumulation parallel mode (0 or 1)."
    )
    ompi_mca_btl_vader_single_copy_mechanism: str = Field(
        "none", description="HPU only: Open MPI shared-memory copy mechanism."
    )
    if_fp8_quantization: bool = Field(
        False, description="HPU only: serve FP8 with INC measurements (--quantization inc)."
    )
    quant_config: Path | None = Field(
        None,
        description="FP8 quantization json; default <HF_HOME>/inc/<model basename>/"
        + QUANT_CONFIG_FILE,
    )

    _lowercase = field_validator("llm_device", "vllm_dtype", mode="before")(lowercase)
    _booleans = field_validator(
        "vllm_cpu_preload",
        "vllm_skip_warmup",
        "pt_hpu_enable_lazy_collectives",
        "if_fp8_quantization",
        mode="before",
    )(strict_bool)

    @model_validator(mode="after")
    def _device_rules(self) -> ModelServerSettings:
        if self.if_fp8_quantization and self.llm_device != "hpu":
            raise ValueError(
                "IF_FP8_QUANTIZATION=true needs LLM_DEVICE=hpu (vLLM has no FP8 INC kernels on CPU)"
            )
        return self

    @property
    def resolved_quant_config(self) -> Path:
        if self.quant_config is not None:
            return self.quant_config
        return default_quant_config(self.hf_home, self.llm_vllm_model_name)
