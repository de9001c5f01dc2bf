"""Request bodies of POST /v1/chat/completions, and the one place that tells the two forms apart.

``messages`` as ``{"system", "user"}`` is the OPEA form; ``messages`` as a list is the OpenAI
form. Each form turns into vLLM's chat request in one method, ``to_model_server``, which the
connectors send as a ``ModelCall``.
"""

from __future__ import annotations

from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from microservice.calls import ModelCall, RequestIds
from microservice.errors import BodyNotJson, RequestInvalid, from_validation

# The OPEA component's LLMParamsDoc defaults, kept: clients that send only messages get the same.
OPEA_DEFAULT_MAX_NEW_TOKENS = 1024

Stop = str | list[str] | None


class _Sampling(BaseModel):
    """Sampling knobs both forms share and vLLM honours (OPEA dropped top_k and the penalty)."""

    model_config = ConfigDict(extra="ignore")

    top_p: float | None = Field(None, gt=0, le=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_k: int | None = Field(None, ge=-1)
    repetition_penalty: float | None = Field(None, gt=0)
    stop: Stop = None
    seed: int | None = None

    def sampling(self) -> dict[str, Any]:
        return self.model_dump(
            include={"top_p", "temperature", "top_k", "repetition_penalty", "stop", "seed"},
            exclude_none=True,
        )


class OpeaMessages(BaseModel):
    model_config = ConfigDict(extra="ignore")

    system: str = ""
    user: str

    @field_validator("user")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value


class OpeaRequest(_Sampling):
    """The OPEA body, with the OPEA component's defaults (temperature 0.01, top_p 0.95, stream)."""

    messages: OpeaMessages
    max_new_tokens: int = Field(OPEA_DEFAULT_MAX_NEW_TOKENS, gt=0)
    top_p: float | None = Field(0.95, gt=0, le=1)
    temperature: float | None = Field(0.01, ge=0, le=2)
    streaming: bool = True
    typical_p: float | None = Field(None, gt=0, le=1)  # accepted as OPEA does; vLLM has none
    output_guardrail_params: Any = None

    def to_model_server(
        self, model: str, model_max_len: int | None, stream: bool, ids: RequestIds
    ) -> ModelCall:
        """vLLM's chat request; the chat template applies (OPEA flattened the prompt)."""
        messages = []
        if self.messages.system:
            messages.append({"role": "system", "content": self.messages.system})
        messages.append({"role": "user", "content": self.messages.user})
        body: dict[str, Any] = {"model": model, "messages": messages, **self.sampling()}
        explicit = "max_new_tokens" in self.model_fields_set
        if explicit or model_max_len is None or self.max_new_tokens < model_max_len:
            body["max_tokens"] = self.max_new_tokens
        # else: the default does not fit this model's context; vLLM then uses what is left.
        body["stream"] = stream
        if stream:
            body["stream_options"] = {"include_usage": True}
        return ModelCall(body, ids.request_id, ids.session_id)


class OpenAIMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: str | list[dict[str, Any]] | None = None


class OpenAIRequest(_Sampling):
    """Checked for what we must understand; every other field is kept and goes to vLLM as sent."""

    model_config = ConfigDict(extra="allow")

    model: str | None = None
    messages: list[OpenAIMessage] = Field(min_length=1)
    stream: bool = False
    max_tokens: int | None = Field(None, gt=0)
    max_completion_tokens: int | None = Field(None, gt=0)
    # OPEA Enterprise RAG 2.x clients send OpenAI messages with the OPEA name of max_tokens.
    max_new_tokens: int | None = Field(None, gt=0)
    stream_options: dict[str, Any] | None = None

    @property
    def wants_usage_chunk(self) -> bool:
        return bool(self.stream_options and self.stream_options.get("include_usage"))

    def to_model_server(self, model: str, ids: RequestIds) -> ModelCall:
        """The client's body as sent, with the served ``model``; a stream always asks for the
        final usage chunk (it feeds the token metrics; the client sees it only if it asked)."""
        body = self.model_dump(exclude_unset=True)
        body["model"] = model
        new_tokens = body.pop("max_new_tokens", None)
        if new_tokens is not None and self.max_tokens is None:
            body["max_tokens"] = new_tokens
        if self.stream:
            body["stream_options"] = {**(self.stream_options or {}), "include_usage": True}
        return ModelCall(body, ids.request_id, ids.session_id)


def parse_json(body: bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise BodyNotJson(f"body is not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise RequestInvalid("body must be a JSON object", param="body")
    return data


def parse_request(data: dict[str, Any]) -> OpeaRequest | OpenAIRequest:
    """Pick the form by the shape of ``messages`` and validate it; errors name the field."""
    messages = data.get("messages")
    model: type[OpeaRequest | OpenAIRequest]
    if isinstance(messages, dict):
        model = OpeaRequest
    elif isinstance(messages, list):
        model = OpenAIRequest
    elif messages is None:
        raise RequestInvalid("messages: field required", param="messages")
    else:
        raise RequestInvalid(
            "messages: must be an object {system, user} or a list of {role, content}",
            param="messages",
        )
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise from_validation(error) from None


def check_max_tokens(request: OpeaRequest | OpenAIRequest, model_max_len: int | None) -> None:
    """Refuse a token budget the model can never give, naming the field the client sent."""
    if model_max_len is None:
        return
    asked: dict[str, int | None]
    if isinstance(request, OpeaRequest):
        asked = {"max_new_tokens": request.max_new_tokens}
        if "max_new_tokens" not in request.model_fields_set:
            return
    else:
        asked = {
            "max_tokens": request.max_tokens,
            "max_completion_tokens": request.max_completion_tokens,
            "max_new_tokens": request.max_new_tokens,
        }
    refuse_over_context(asked, model_max_len)


def refuse_over_context(asked: dict[str, int | None], model_max_len: int | None) -> None:
    """422 naming the first budget field over the model's context length."""
    if model_max_len is None:
        return
    for field, value in asked.items():
        if value is not None and value > model_max_len:
            raise RequestInvalid(
                f"{field}: {value} is over the model's context length of {model_max_len} tokens",
                param=field,
            )
