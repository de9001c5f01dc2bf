"""The model server's LoRA settings: adapters served next to the base model, under names of
their own (a request's ``model``), listed at start or loaded at run time.

Only the form of ``VLLM_LORA_MODULES`` is checked here, not that each path exists: the launcher
validates these settings on the host, where the adapters of a container live in a volume it
does not see (``/data``), and vLLM also takes a Hugging Face repo id as a path. The model server
checks the local folders just before it starts vLLM (``model_source.check_adapter``).
"""

from __future__ import annotations

import re
from typing import NamedTuple

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings

from common.config_loading import SETTINGS_CONFIG, strict_bool

# vLLM 0.32's `--max-lora-rank` choices (vllm/config/lora.py MaxLoRARanks).
LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
_NAME = re.compile(r"^[^\s=,]+$")


class LoraModule(NamedTuple):
    """One adapter listed at start: the name requests give as ``model``, and its folder."""

    name: str
    path: str

    def flag_value(self) -> str:
        return f"{self.name}={self.path}"


def parse_modules(value: str) -> list[LoraModule]:
    """``name=path,name=path`` → modules; a ValueError names the first entry that is wrong."""
    modules: list[LoraModule] = []
    for entry in value.split(","):
        name, sep, path = entry.strip().partition("=")
        name, path = name.strip(), path.strip()
        if not sep or not path or not _NAME.match(name):
            raise ValueError(
                f"{entry.strip()!r} is not name=path (a name without blanks, `=` or `,`; "
                "entries separated by commas)"
            )
        if any(module.name == name for module in modules):
            raise ValueError(f"the name {name!r} is listed twice: each adapter needs its own")
        modules.append(LoraModule(name, path))
    return modules


class LoraSettings(BaseSettings):
    """LoRA adapters: any of these set turns LoRA on (`--enable-lora`)."""

    model_config = SETTINGS_CONFIG

    vllm_lora_modules: str | None = Field(
        None,
        description="LoRA adapters served at start (`--lora-modules`), a comma-separated list "
        "of `name=path`: requests that give `name` as their `model` are answered by the base "
        "model with that adapter, and `/v1/models` lists it with the base model as `parent`. "
        "A path is an adapter folder (peft's `adapter_config.json` and "
        "`adapter_model.safetensors`) as vLLM sees it, in the container e.g. under `/data`, or "
        "a Hugging Face repo id. The model server stops, just before starting vLLM, when a "
        "local folder has no `adapter_config.json`. Keep the folders in place while vLLM runs: "
        "it reads an adapter again whenever one is swapped back in. Unset: no adapters.",
    )
    vllm_max_loras: int | None = Field(
        None,
        ge=1,
        description="Most adapters used in one batch (`--max-loras`); requests for more wait "
        "their turn. vLLM also keeps only this many in memory (its `--max-cpu-loras` "
        "default) and reads the others from their folders again when asked for. Unset: vLLM's "
        "default, 1.",
    )
    vllm_max_lora_rank: int | None = Field(
        None,
        ge=1,
        description="Largest adapter rank vLLM makes room for (`--max-lora-rank`): one of "
        + ", ".join(map(str, LORA_RANKS))
        + "; an adapter of a higher rank is refused. Unset: vLLM's default, 16.",
    )
    vllm_allow_runtime_lora: bool = Field(
        False,
        description="`true`: adapters can be loaded and unloaded while vLLM runs, with "
        '`POST /v1/load_lora_adapter` `{"lora_name", "lora_path"}` and '
        '`POST /v1/unload_lora_adapter` `{"lora_name"}` (vLLM\'s '
        "`VLLM_ALLOW_RUNTIME_LORA_UPDATING`; an exported value of that variable is ignored). "
        "These endpoints take no API key: expose vLLM's port to trusted callers only. Turns "
        "LoRA on even with no `VLLM_LORA_MODULES`.",
    )

    _lora_booleans = field_validator("vllm_allow_runtime_lora", mode="before")(strict_bool)

    @field_validator("vllm_lora_modules", mode="after")
    @classmethod
    def _modules_form(cls, value: str | None) -> str | None:
        """Checked, and written back without blanks, so that `--check` shows what vLLM gets."""
        if value is None:
            return None
        return ",".join(module.flag_value() for module in parse_modules(value))

    @field_validator("vllm_max_lora_rank", mode="after")
    @classmethod
    def _known_rank(cls, value: int | None) -> int | None:
        if value is not None and value not in LORA_RANKS:
            raise ValueError(f"vLLM takes one of {', '.join(map(str, LORA_RANKS))}")
        return value

    @property
    def lora_modules(self) -> list[LoraModule]:
        return parse_modules(self.vllm_lora_modules) if self.vllm_lora_modules else []

    @property
    def lora_enabled(self) -> bool:
        return (
            self.vllm_lora_modules is not None
            or self.vllm_max_loras is not None
            or self.vllm_max_lora_rank is not None
            or self.vllm_allow_runtime_lora
        )
