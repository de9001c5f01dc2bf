"""Names more than one service must agree on: the default model, where FP8 files live, and
the OTLP protocols traces are exported with."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

DEFAULT_MODEL = "Intel/neural-chat-7b-v3-3"
QUANT_CONFIG_FILE = "maxabs_quant_g2.json"

# OTEL_EXPORTER_OTLP_PROTOCOL's values, as the OpenTelemetry specification spells them.
OtlpProtocol = Literal["http/protobuf", "grpc"]
OTLP_GRPC: OtlpProtocol = "grpc"


def default_quant_config(hf_home: Path, model_name: str) -> Path:
    """Where the FP8 job writes, and vLLM reads, the INC quantization json for a model."""
    return hf_home / "inc" / Path(model_name.rstrip("/")).name / QUANT_CONFIG_FILE
