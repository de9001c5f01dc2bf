"""The OpenAI forms: chat (``messages`` as a list), completions and embeddings, answered with
vLLM's own bytes, so the openai SDK and LangChain's ChatOpenAI work unchanged.

Each is checked for what this service must understand (the model, the input, streaming, the
token budget); every other field (``echo``, ``logprobs``, ``n``, ``tools``, ``dimensions``,
vLLM's own extensions...) is kept and reaches vLLM as sent. A stream always asks vLLM for the
final usage chunk (it feeds the token accounting); the client sees it only if it asked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from microservice import paths
from microservice.forms.budget import refuse_over_context
from microservice.forms.sampling import Sampling
from microservice.relay.sse_response import DONE_EVENT
from microservice.upstream.model_call import Completion, ModelCall, RequestIds

# A prompt or embedding input: text, texts, token ids, or lists of token ids.
TextOrTokens = str | list[str] | list[int] | list[list[int]]


@dataclass(frozen=True, slots=True)
class PassThrough:
    """vLLM's answer as it came: its body, and each stream chunk as an SSE event."""

    form: str
    keep_usage_chunk: bool = False
    end_event: bytes = DONE_EVENT

    def body(self, completion: Completion) -> bytes:
        return completion.raw

    def event(self, chunk: bytes) -> bytes:
        return b"data: " + chunk + b"\n\n"


def passed_through(form: BaseModel, served_name: str, ids: RequestIds, path: str) -> ModelCall:
    """vLLM's call for a form it gets as the client sent it, but for the served ``model``."""
    body = form.model_dump(exclude_unset=True)
    body["model"] = served_name
    return ModelCall(body, ids.request_id, ids.session_id, path)


def _not_empty(value: TextOrTokens) -> TextOrTokens:
    if isinstance(value, list) and (not value or any(v == [] for v in value)):
        raise ValueError("must not be empty")
    return value


class _Streamable(BaseModel):
    """What the streaming OpenAI forms share: the model, ``stream`` and its usage chunk."""

    model_config = ConfigDict(extra="allow")

    model: str | None = None
    stream: bool = False
    stream_options: dict[str, Any] | None = None

    @property
    def requested_model(self) -> str | None:
        return self.model

    def _body(self, served_name: str) -> dict[str, Any]:
        """The client's body as sent, with the served ``model`` and the usage chunk asked."""
        body = self.model_dump(exclude_unset=True)
        body["model"] = served_name
        if self.stream:
            body["stream_options"] = {**(self.stream_options or {}), "include_usage": True}
        return body

    def _pass_through(self, form: str) -> PassThrough:
        include_usage = bool(self.stream_options and self.stream_options.get("include_usage"))
        return PassThrough(form, keep_usage_chunk=include_usage)


class OpenAIMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: str | list[dict[str, Any]] | None = None


class OpenAIRequest(Sampling, _Streamable):
    """Chat in the OpenAI form."""

    model_config = ConfigDict(extra="allow")

    messages: list[OpenAIMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, gt=0)
    max_completion_tokens: int | None = Field(None, gt=0)
    # OPEA Enterprise RAG 2.x clients send OpenAI messages with the OPEA name of max_tokens.
    max_new_tokens: int | None = Field(None, gt=0)

    def check_tokens(self, max_model_len: int | None) -> None:
        asked = {
            "max_tokens": self.max_tokens,
            "max_completion_tokens": self.max_completion_tokens,
            "max_new_tokens": self.max_new_tokens,
        }
        refuse_over_context(asked, max_model_len)

    def to_model_server(
        self, served_name: str, ids: RequestIds, *, max_model_len: int | None, may_stream: bool
    ) -> ModelCall:
        body = self._body(served_name)
        new_tokens = body.pop("max_new_tokens", None)
        if new_tokens is not None and self.max_tokens is None:
            body["max_tokens"] = new_tokens
        return ModelCall(body, ids.request_id, ids.session_id, paths.CHAT)

    def answer_shape(self) -> PassThrough:
        return self._pass_through("openai")


class CompletionRequest(_Streamable):
    prompt: TextOrTokens
    max_tokens: int | None = Field(None, gt=0)
    n: int | None = Field(None, ge=1, le=128)

    _prompt = field_validator("prompt")(_not_empty)

    def check_tokens(self, max_model_len: int | None) -> None:
        refuse_over_context({"max_tokens": self.max_tokens}, max_model_len)

    def to_model_server(
        self, served_name: str, ids: RequestIds, *, max_model_len: int | None, may_stream: bool
    ) -> ModelCall:
        body = self._body(served_name)
        if body.get("n", 1) is None:
            del body["n"]  # OpenAI allows null (= 1); vLLM refuses it
        return ModelCall(body, ids.request_id, ids.session_id, paths.COMPLETIONS)

    def answer_shape(self) -> PassThrough:
        return self._pass_through("completions")


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str | None = None
    input: TextOrTokens
    encoding_format: Literal["float", "base64"] = "float"

    _input = field_validator("input")(_not_empty)

    @property
    def requested_model(self) -> str | None:
        return self.model

    def check_tokens(self, max_model_len: int | None) -> None:
        """vLLM refuses an input over the context itself, naming it."""

    def to_model_server(
        self, served_name: str, ids: RequestIds, *, max_model_len: int | None, may_stream: bool
    ) -> ModelCall:
        return passed_through(self, served_name, ids, paths.EMBEDDINGS)

    def answer_shape(self) -> PassThrough:
        return PassThrough("embeddings")
