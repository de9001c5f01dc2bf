"""Request bodies of POST /v1/completions and POST /v1/embeddings.

Checked for what this service must understand (the model, the input, streaming, the token
budget); every other field (``echo``, ``logprobs``, ``n``, ``stop``, ``dimensions``, vLLM's
own extensions...) is kept and reaches vLLM as sent.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from microservice.calls import COMPLETIONS_PATH, EMBEDDINGS_PATH, ModelCall, RequestIds
from microservice.errors import from_validation
from microservice.schemas import refuse_over_context

# A prompt or embedding input: text, texts, token ids, or lists of token ids.
TextOrTokens = str | list[str] | list[int] | list[list[int]]


def _not_empty(value: TextOrTokens) -> TextOrTokens:
    if isinstance(value, list) and (not value or any(v == [] for v in value)):
        raise ValueError("must not be empty")
    return value


class CompletionRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str | None = None
    prompt: TextOrTokens
    stream: bool = False
    max_tokens: int | None = Field(None, gt=0)
    n: int | None = Field(None, ge=1, le=128)
    stream_options: dict[str, Any] | None = None

    _prompt = field_validator("prompt")(_not_empty)

    @property
    def wants_usage_chunk(self) -> bool:
        return bool(self.stream_options and self.stream_options.get("include_usage"))

    def check_tokens(self, model_max_len: int | None) -> None:
        """Refuse a budget the model can never give (vLLM would, less clearly)."""
        refuse_over_context({"max_tokens": self.max_tokens}, model_max_len)

    def to_model_server(self, model: str, ids: RequestIds) -> ModelCall:
        body = self.model_dump(exclude_unset=True)
        body["model"] = model
        if body.get("n", 1) is None:
            del body["n"]  # OpenAI allows null (= 1); vLLM refuses it
        if self.stream:
            body["stream_options"] = {**(self.stream_options or {}), "include_usage": True}
        return ModelCall(body, ids.request_id, ids.session_id, COMPLETIONS_PATH)


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str | None = None
    input: TextOrTokens
    encoding_format: Literal["float", "base64"] = "float"

    _input = field_validator("input")(_not_empty)

    @property
    def wants_usage_chunk(self) -> bool:
        return False  # never streamed

    def check_tokens(self, model_max_len: int | None) -> None:
        """vLLM refuses an input over the context itself, naming it."""

    def to_model_server(self, model: str, ids: RequestIds) -> ModelCall:
        body = self.model_dump(exclude_unset=True)
        body["model"] = model
        return ModelCall(body, ids.request_id, ids.session_id, EMBEDDINGS_PATH)


def parse_completion(data: dict[str, Any]) -> CompletionRequest:
    try:
        return CompletionRequest.model_validate(data)
    except ValidationError as error:
        raise from_validation(error) from None


def parse_embedding(data: dict[str, Any]) -> EmbeddingRequest:
    try:
        return EmbeddingRequest.model_validate(data)
    except ValidationError as error:
        raise from_validation(error) from None
