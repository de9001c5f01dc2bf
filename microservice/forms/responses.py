"""The Responses API form (``POST /v1/responses``), passed through to vLLM's own: what new
OpenAI SDK code calls (``client.responses.create``). Checked for what this service must
understand (the model, the input, streaming, the ``max_output_tokens`` budget); every other
field reaches vLLM as sent. Its stream names each event's type on an ``event:`` line, as
OpenAI's does."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator

from microservice import paths
from microservice.forms.budget import refuse_over_context
from microservice.forms.openai import passed_through
from microservice.upstream.model_call import Completion, ModelCall, RequestIds


@dataclass(frozen=True, slots=True)
class ResponsesAnswer:
    """vLLM's response as it came; each stream event with its ``event:`` line. Its last event
    carries the usage, always reaches the client, and ends the stream: no ``data: [DONE]``
    follows, as neither OpenAI nor vLLM sends one (clients that parse each data line as JSON
    would fail on it)."""

    form: str = "responses"
    keep_usage_chunk: bool = True
    end_event: bytes = b""

    def body(self, completion: Completion) -> bytes:
        return completion.raw

    def event(self, chunk: bytes) -> bytes:
        kind = orjson.loads(chunk).get("type") if chunk.startswith(b"{") else None
        head = b"event: " + str(kind).encode() + b"\n" if isinstance(kind, str) else b""
        return head + b"data: " + chunk + b"\n\n"


class ResponsesRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str | None = None
    input: str | list[Any]
    stream: bool = False
    max_output_tokens: int | None = Field(None, gt=0)

    @field_validator("input")
    @classmethod
    def _not_empty(cls, value: str | list[Any]) -> str | list[Any]:
        if not value:
            raise ValueError("must not be empty")
        return value

    @property
    def requested_model(self) -> str | None:
        return self.model

    def check_tokens(self, max_model_len: int | None) -> None:
        refuse_over_context({"max_output_tokens": self.max_output_tokens}, max_model_len)

    def to_model_server(
        self, served_name: str, ids: RequestIds, *, max_model_len: int | None, may_stream: bool
    ) -> ModelCall:
        return passed_through(self, served_name, ids, paths.RESPONSES)

    def answer_shape(self) -> ResponsesAnswer:
        return ResponsesAnswer()
