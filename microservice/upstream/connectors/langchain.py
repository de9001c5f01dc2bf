"""LangChain connector: LangChain's ``ChatOpenAI`` builds each chat request; vLLM's answer is
passed on as the generic connector passes it, over the same pool.

The chat template applies (the OPEA component posted a flattened ``System: … Human: …``
prompt to /v1/completions), and ``ChatOpenAI`` (one per served model, built once, never
calling out) converts the messages and names the parameters as its own calls would send them
(``_get_request_payload``, what ``_agenerate`` and ``_astream`` hand the openai SDK). The
answer does not go back through LangChain: its per-chunk SDK models and message chunks cost
more CPU than the whole relay (docs/benchmarks.md), so vLLM's bytes are passed on as they are.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from langchain_core.messages import BaseMessage, convert_to_messages
from langchain_openai import ChatOpenAI

from microservice import paths
from microservice.errors import RequestInvalid
from microservice.upstream.client import ModelServerClient
from microservice.upstream.connectors.generic import GenericConnector
from microservice.upstream.model_call import ModelCall

# Parameters the openai SDK takes by name; everything else vLLM knows goes in extra_body.
SDK_PARAMS = frozenset(
    {
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "seed",
        "n",
        "presence_penalty",
        "frequency_penalty",
        "logit_bias",
        "logprobs",
        "top_logprobs",
        "response_format",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "user",
    }
)
NOT_FORWARDED = frozenset({"model", "messages", "stream", "stream_options", "stop"})


# One ChatOpenAI per served model name, built on first use (it only builds request bodies,
# which do not depend on the replica); bounded all the same by dropping the oldest.
MAX_MODELS = 64


class LangchainConnector(GenericConnector):
    """Sends every call as the generic connector does; LangChain builds the chat ones."""

    def __init__(self, client: ModelServerClient) -> None:
        super().__init__(client)
        self._models: dict[str, ChatOpenAI] = {}

    def _model(self, name: str) -> ChatOpenAI:
        model = self._models.get(name)
        if model is None:
            if len(self._models) >= MAX_MODELS:
                del self._models[next(iter(self._models))]
            model = self._models[name] = ChatOpenAI(
                model=name,
                api_key="EMPTY",  # it never calls out, but will not be built without a key
                use_responses_api=False,  # vLLM's chat API, whatever the parameters
            )
        return model

    def prepare(self, call: ModelCall) -> ModelCall:
        """A chat call with the JSON body ``ChatOpenAI`` would have the openai SDK send: its
        messages and parameter names, ``stop`` as a list, the SDK's ``extra_body`` (what
        vLLM knows beyond OpenAI) merged in as the SDK merges it. Other calls as they are."""
        if call.path != paths.CHAT:
            return call
        kwargs: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for key, value in call.body.items():
            if key in SDK_PARAMS:
                kwargs[key] = value
            elif key not in NOT_FORWARDED:
                extra[key] = value
        if extra:
            kwargs["extra_body"] = extra
        if call.stream:
            kwargs["stream"] = True
            kwargs["stream_options"] = call.body.get("stream_options") or {"include_usage": True}
        stop = call.body.get("stop")
        stop = [stop] if isinstance(stop, str) else stop or None
        messages = _messages(call)
        try:
            model = self._model(call.body["model"])
            payload = model._get_request_payload(messages, stop=stop, **kwargs)
        except (TypeError, ValueError) as error:  # LangChain could not build it: the client's
            message = f"LangChain could not build the request: {type(error).__name__}: {error}"
            raise RequestInvalid(message) from None
        extra = payload.pop("extra_body", None) or {}
        return replace(call, body={**payload, **extra})


def _messages(call: ModelCall) -> list[BaseMessage]:
    """The client's messages as LangChain's; one it cannot read is the client's error (422),
    not the model server's (a 502 would blame vLLM)."""
    try:
        return convert_to_messages(call.body["messages"])
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        message = f"messages: {type(error).__name__}: {error}"
        raise RequestInvalid(message, param="messages") from None
