"""The model server's Gaudi settings: the runtime's variables, the plugin's warm-up bounds and
FP8 serving. The CPU render ignores them; the rules that tie them to ``LLM_DEVICE`` are in
``model_server.settings``, which has the device.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings

from common.config_loading import SETTINGS_CONFIG, lowercase, strict_bool
from common.constants import QUANT_CONFIG_FILE

# vllm-gaudi v0.26.0 docs/configuration/env_variables.md: the bucketing strategies, and the
# KV-cache dtype its platform accepts (vllm_gaudi/platform.py is_kv_cache_dtype_supported).
BucketingStrategy = Literal["exp", "lin", "pad"]
HpuKvCacheDtype = Literal["auto", "fp8_inc"]


def _bucket_max(what: str) -> Any:
    """One of the plugin's `VLLM_*_BUCKET_MAX` warm-up bounds: unset leaves its default."""
    return Field(
        None,
        ge=1,
        description=f"HPU only: largest {what} the Gaudi plugin warms up a graph for; lower it "
        "to the workload's real sizes to shorten warm-up. Unset: the plugin's default.",
    )


class HpuSettings(BaseSettings):
    """What only `LLM_DEVICE=hpu` reads."""

    model_config = SETTINGS_CONFIG

    vllm_skip_warmup: bool | None = Field(
        None,
        description="HPU only: `true` skips the graph warm-up (faster start, slower first "
        "requests); unset: vLLM's default.",
    )
    vllm_bucketing_strategy: BucketingStrategy | None = Field(
        None,
        description="HPU only: how the Gaudi plugin picks the shapes it warms up: `exp` "
        "(exponential, fewest graphs), `lin` (linear ranges) or `pad` (linear with bounded "
        "padding); unset: the plugin's default, `exp`.",
    )
    vllm_prompt_bs_bucket_max: int | None = _bucket_max("prefill batch (sequences)")
    vllm_prompt_query_bucket_max: int | None = _bucket_max("prompt length (tokens)")
    vllm_decode_bs_bucket_max: int | None = _bucket_max("decode batch (sequences)")
    vllm_decode_block_bucket_max: int | None = _bucket_max("decode KV-cache size (blocks)")
    habana_visible_devices: str = Field(
        "all",
        description="HPU only: Gaudi cards vLLM may use: `all`, or card indices such as `0,1`.",
    )
    pt_hpu_enable_lazy_collectives: bool = Field(
        True,
        description="HPU only: lazy-mode collectives of the Gaudi runtime; tensor parallelism "
        "on Gaudi needs `true`.",
    )
    pt_hpu_lazy_acc_par_mode: int | None = Field(
        None,
        ge=0,
        le=1,
        description="HPU only: lazy accumulation parallel mode of the Gaudi runtime, `0` or "
        "`1`; unset: the runtime's default.",
    )
    ompi_mca_btl_vader_single_copy_mechanism: str = Field(
        "none",
        description="HPU only: Open MPI shared-memory single-copy mechanism; `none` avoids CMA, "
        "which containers usually forbid. Compose files spell it "
        "`OMPI_MCA_btl_vader_single_copy_mechanism`, as Open MPI does.",
    )
    if_fp8_quantization: bool = Field(
        False,
        description="HPU only: serve in FP8 with the Intel Neural Compressor measurements of the "
        "FP8 job (`--quantization inc` and `QUANT_CONFIG`; the plugin then loads the weights "
        "to CPU first and moves them quantized); refused with `LLM_DEVICE=cpu`.",
    )
    vllm_kv_cache_dtype: HpuKvCacheDtype | None = Field(
        None,
        description="HPU only: KV-cache dtype (`--kv-cache-dtype`): `fp8_inc` stores it in FP8, "
        "which with `IF_FP8_QUANTIZATION=true` needs a `QUANT_CONFIG` whose measurements cover "
        "the KV cache (the Gaudi plugin's own calibration scripts; the FP8 job measures the "
        "linear layers only); unset or `auto`: the model's dtype. Refused with `LLM_DEVICE=cpu`.",
    )
    quant_config: Path | None = Field(
        None,
        description="HPU FP8 only: INC quantization json given to vLLM as `QUANT_CONFIG`; unset: "
        "`<HF_HOME>/inc/<model basename>/" + QUANT_CONFIG_FILE + "`, where the FP8 job writes it.",
    )

    _hpu_lowercase = field_validator(
        "vllm_bucketing_strategy", "vllm_kv_cache_dtype", mode="before"
    )(lowercase)
    _hpu_booleans = field_validator(
        "vllm_skip_warmup", "pt_hpu_enable_lazy_collectives", "if_fp8_quantization", mode="before"
    )(strict_bool)
