"""The OPEA form: ``messages`` is ``{"system", "user"}``; answered exactly as the OPEA
component answers.

Non-streaming: ``{"id", "text", "prompt", "streaming", "output_guardrail_params"}``.
Streaming: one ``data: <Python repr of the text chunk>`` event per chunk, then ``data: [DONE]``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator

from microservice.errors import ModelServerFailed
from microservice.forms.budget import refuse_over_context
from microservice.forms.sampling import Sampling
from microservice.relay.sse_response import DONE_EVENT
from microservice.upstream.model_call import Completion, ModelCall, RequestIds

# The OPEA component's LLMParamsDoc defaults, kept: clients that send only messages get the same.
OPEA_DEFAULT_MAX_NEW_TOKENS = 1024


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


class OpeaRequest(Sampling):
    """The OPEA body, with the OPEA component's defaults (temperature 0.01, top_p 0.95, stream)."""

    messages: OpeaMessages
    max_new_tokens: int = Field(OPEA_DEFAULT_MAX_NEW_TOKENS, gt=0)
    top_p: float | None = Field(0.95, gt=0, le=1)
    temperature: float | None = Field(0.01, ge=0, le=2)
    streaming: bool = True
    typical_p: float | None = Field(None, gt=0, le=1)  # accepted as OPEA does; vLLM has none
    output_guardrail_params: Any = None
    structured_outputs: dict[str, Any] | None = None  # vLLM's; the guided_* fields map to it

    @property
    def requested_model(self) -> None:
        """The OPEA form names no model: the default one serves it."""
        return None

    def check_tokens(self, max_model_len: int | None) -> None:
        """Only a budget the client sent is refused; the default is fitted to the model."""
        if "max_new_tokens" in self.model_fields_set:
            refuse_over_context({"max_new_tokens": self.max_new_tokens}, max_model_len)

    def to_model_server(
        self, served_name: str, ids: RequestIds, *, max_model_len: int | None, may_stream: bool
    ) -> ModelCall:
        """vLLM's chat request; the chat template applies (OPEA flattened the prompt). The OPEA
        component answers in one body when streaming is off or an output guard must see the
        whole text (``may_stream`` False)."""
        messages = []
        if self.messages.system:
            messages.append({"role": "system", "content": self.messages.system})
        messages.append({"role": "user", "content": self.messages.user})
        body: dict[str, Any] = {"model": served_name, "messages": messages, **self.sampling()}
        if self.structured_outputs is not None:
            body["structured_outputs"] = self.structured_outputs
        explicit = "max_new_tokens" in self.model_fields_set
        if explicit or max_model_len is None or self.max_new_tokens < max_model_len:
            body["max_tokens"] = self.max_new_tokens
        # else: the default does not fit this model's context; vLLM then uses what is left.
        stream = self.streaming and may_stream
        body["stream"] = stream
        if stream:
            body["stream_options"] = {"include_usage": True}
        return ModelCall(body, ids.request_id, ids.session_id)

    def answer_shape(self) -> OpeaAnswer:
        return OpeaAnswer(self.messages.user, self.streaming, self.output_guardrail_params)


@dataclass(frozen=True, slots=True)
class OpeaAnswer:
    """The OPEA component's answer; its ``streaming`` field echoes the request either way."""

    prompt: str
    streaming: bool
    output_guardrail_params: Any
    form: str = "opea"
    keep_usage_chunk: bool = False
    end_event: bytes = DONE_EVENT

    def body(self, completion: Completion) -> bytes:
        return orjson.dumps(
            {
                "id": uuid.uuid4().hex,
                "text": completion.text,
                "prompt": self.prompt,
                "streaming": self.streaming,
                "output_guardrail_params": self.output_guardrail_params,
            }
        )

    def event(self, chunk: bytes) -> bytes:
        """A chunk's text delta as ``data: 'text'``; a chunk without text: nothing."""
        parsed = orjson.loads(chunk)
        if "error" in parsed:
            raise ModelServerFailed(f"model server failed mid-stream: {parsed['error']}")
        choices = parsed.get("choices")
        text = choices[0].get("delta", {}).get("content") if choices else None
        return b"data: " + repr(text).encode() + b"\n\n" if text else b""
