"""One typed settings object for the calibration job, read once at start.

Variable names are the stack's own (``LLM_VLLM_MODEL_NAME``, ``HF_HOME``, ``VLLM_TP_SIZE``), so
the job and the model server read the same ``.env`` and agree on where the result lies. Field
descriptions are the documentation: ``docs/configuration.md`` is generated from them
(``make docs``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings

from common.config_loading import SETTINGS_CONFIG, load, lowercase
from common.constants import DEFAULT_MODEL, default_quant_config

Device = Literal["cpu", "hpu"]
ScalesDevice = Literal["GAUDI2", "GAUDI3"]


class Fp8Settings(BaseSettings):
    """Everything `python -m fp8_quant` needs to measure a model and publish the result."""

    model_config = SETTINGS_CONFIG

    llm_device: Device = Field(
        "hpu",
        description="Device the measurement runs on: `hpu` (Gaudi), or `cpu` for tests and "
        "development.",
    )
    llm_vllm_model_name: str = Field(
        DEFAULT_MODEL,
        min_length=1,
        description="Model to measure: a Hugging Face model id or a local model folder; the "
        "model server's own variable, so both agree.",
    )
    hf_token: SecretStr | None = Field(
        None,
        description="Hugging Face access token for gated or private models; never logged.",
    )
    hf_home: Path = Field(
        Path.home() / ".cache" / "huggingface",
        description="Hugging Face cache folder; the result goes to `<HF_HOME>/inc/<model "
        "basename>/`, where the model server looks for it. The Compose stack fixes it to "
        "`/data`.",
    )
    fp8_dataset_path: Path = Field(
        description="Calibration prompts: `.pkl` or `.pickle` (the DataFrame of the Gaudi "
        "calibration scripts, or a list of prompts), `.jsonl` (one object with `input`, `text` "
        "or `prompt` per line) or `.txt` (one prompt per line)."
    )
    fp8_max_samples: int | None = Field(
        None, ge=1, description="Use at most this many prompts (the first ones); unset: all."
    )
    fp8_batch_size: int = Field(1, ge=1, description="Prompts per forward pass.")
    fp8_max_seq_len: int = Field(
        1024, ge=1, description="Tokens kept per prompt; longer prompts are truncated."
    )
    fp8_device_for_scales: ScalesDevice = Field(
        "GAUDI2",
        description="Gaudi generation the scales are computed for; `GAUDI2` scales also run on "
        "Gaudi 3.",
    )
    vllm_tp_size: int = Field(
        1,
        ge=1,
        description="Tensor parallel size vLLM will serve with (the model server's "
        "`VLLM_TP_SIZE`): one set of measurement files per rank.",
    )

    _lowercase = field_validator("llm_device", mode="before")(lowercase)

    @field_validator("fp8_device_for_scales", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @property
    def quant_config_path(self) -> Path:
        """Where vLLM looks for the quantization json: the model server's own default."""
        return default_quant_config(self.hf_home, self.llm_vllm_model_name)

    @property
    def result_dir(self) -> Path:
        return self.quant_config_path.parent

    def summary(self) -> dict[str, object]:
        """What the log shows: every value except the token, which is only said to be set."""
        values = self.model_dump(exclude={"hf_token"})
        values["hf_token"] = "***" if self.hf_token is not None else None
        return {
            key: str(value) if isinstance(value, Path) else value for key, value in values.items()
        }


def load_settings(env_file: Path | None = None) -> Fp8Settings:
    """Read the environment (and ``env_file``, which exported variables override) once."""
    return load(Fp8Settings, env_file)
