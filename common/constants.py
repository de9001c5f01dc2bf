"""Names more than one service must agree on: the default model and where FP8 files live."""

from __future__ import annotations

from pathlib import Path

DEFAULT_MODEL = "Intel/neural-chat-7b-v3-3"
QUANT_CONFIG_FILE = "maxabs_quant_g2.json"


def default_quant_config(hf_home: Path, model_name: str) -> Path:
    """Where the FP8 job writes, and vLLM reads, the INC quantization json for a model."""
    return hf_home / "inc" / Path(model_name.rstrip("/")).name / QUANT_CONFIG_FILE
