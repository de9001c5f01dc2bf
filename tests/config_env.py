"""The stack's own variables, which would leak the developer's configuration into the tests."""

from __future__ import annotations

from collections.abc import Mapping

CONFIG_PREFIXES = (
    "LLM_",
    "VLLM_",
    "HF_",
    "HABANA_",
    "PT_HPU_",
    "QUANT_CONFIG",
    "IF_FP8",
    "FP8_",
    "OTEL_",
)


def is_config(name: str) -> bool:
    return name.upper().startswith(CONFIG_PREFIXES) or name == "OMP_NUM_THREADS"


def without_config(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` less the stack's variables."""
    return {name: value for name, value in environ.items() if not is_config(name)}
