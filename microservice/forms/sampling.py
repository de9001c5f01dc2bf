"""The sampling knobs both chat forms share and vLLM honours (the OPEA component dropped
``top_k`` and ``repetition_penalty``; this service forwards them)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

Stop = str | list[str] | None
SAMPLING_FIELDS = frozenset({"top_p", "temperature", "top_k", "repetition_penalty", "stop", "seed"})


class Sampling(BaseModel):
    model_config = ConfigDict(extra="ignore")

    top_p: float | None = Field(None, gt=0, le=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_k: int | None = Field(None, ge=-1)
    repetition_penalty: float | None = Field(None, gt=0)
    stop: Stop = None
    seed: int | None = None

    def sampling(self) -> dict[str, Any]:
        return self.model_dump(include=set(SAMPLING_FIELDS), exclude_none=True)
