"""What every parsed request offers the route, and what its answer looks like to the client.

A route reads any form the same way: the model it asks for, its token budget checked against
the model's context, the call to vLLM, and the ``AnswerShape`` its answer is written in.
"""

from __future__ import annotations

from typing import Protocol

from microservice.upstream.model_call import Completion, ModelCall, RequestIds


class AnswerShape(Protocol):
    """How vLLM's answer reaches the client in this form."""

    @property
    def form(self) -> str:
        """The form's label in the time-to-first-token metric."""
        ...

    @property
    def keep_usage_chunk(self) -> bool:
        """The client asked for the stream's usage chunk (vLLM is always asked for it)."""
        ...

    @property
    def end_event(self) -> bytes:
        """What ends the client's stream after its last event: ``data: [DONE]``, or nothing
        where the form's last event says it is the last (the Responses API)."""
        ...

    def body(self, completion: Completion) -> bytes:
        """The JSON body of a non-streaming answer."""
        ...

    def event(self, chunk: bytes) -> bytes:
        """One stream chunk as the client's SSE bytes; ``b""`` drops it. May raise a
        ``ServiceError`` for a chunk that carries vLLM's error."""
        ...


class ModelRequest(Protocol):
    @property
    def requested_model(self) -> str | None:
        """The ``model`` the client named; None: the default model of the route's kind."""
        ...

    def check_tokens(self, max_model_len: int | None) -> None:
        """422 for a token budget the model can never give (vLLM would refuse it less
        clearly)."""
        ...

    def to_model_server(
        self, served_name: str, ids: RequestIds, *, max_model_len: int | None, may_stream: bool
    ) -> ModelCall:
        """vLLM's request. ``may_stream`` False: answer in one body even if a stream was asked
        (LLM_DISABLE_STREAMING, an output guard), where the form allows it."""
        ...

    def answer_shape(self) -> AnswerShape: ...
