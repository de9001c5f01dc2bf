"""LangChain connector: one ``ChatOpenAI`` on vLLM's chat API, built once, on the shared pool.

The OPEA component posted a flattened ``System: … Human: …`` prompt to /v1/completions and
built a client per request; here the chat template applies and the SDK's httpx pool is built once
(``ModelServerClient.sdk_client``).

Calls go to the chat model's ``_agenerate`` / ``_astream``, under ``ainvoke`` / ``astream``:
the public pair wraps every call and every chunk in LangChain's callback machinery (run
managers, tracing hooks, the stream merged chunk by chunk for ``on_llm_end``), which this
service does not use and which cost more CPU than the SDK itself in the profile
(docs/benchmarks.md). Its per-chunk ``asyncio.wait_for`` is off too: the SDK's read timeout
(LLM_REQUEST_TIMEOUT_S) bounds each wait already.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any

import httpx
import openai
import orjson
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, convert_to_messages
from langchain_openai import ChatOpenAI

from microservice.calls import CHAT_PATH, Completion, ModelCall
from microservice.connectors.generic import GenericConnector
from microservice.errors import (
    ModelServerConnectionLost,
    ModelServerError,
    ModelServerFailed,
    ModelServerUnreachable,
    RequestInvalid,
)
from microservice.model_server_client import ModelServerClient, status_error
from microservice.model_server_http import httpx_error, timed_out
from microservice.push import BatchConsumer
from microservice.settings import MicroserviceSettings

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


# One ChatOpenAI per replica, built on first use; replicas that come and go in a large
# deployment are bounded by dropping the oldest.
MAX_MODELS = 64


class LangchainConnector:
    def __init__(self, settings: MicroserviceSettings, client: ModelServerClient) -> None:
        self._settings = settings
        self._sdk_client = client.sdk_client()
        self._models: dict[tuple[str, str], ChatOpenAI] = {}
        # LangChain's chat model serves chat only; completions and embeddings go as bytes.
        self._generic = GenericConnector(client)

    def _model(self, base_url: str, name: str) -> ChatOpenAI:
        model = self._models.get((base_url, name))
        if model is None:
            if len(self._models) >= MAX_MODELS:
                del self._models[next(iter(self._models))]
            model = self._models[(base_url, name)] = ChatOpenAI(
                model=name,
                base_url=f"{base_url}/v1",
                api_key="EMPTY",  # vLLM needs none; the SDK needs one
                http_async_client=self._sdk_client,
                timeout=self._settings.llm_request_timeout_s,
                max_retries=0,
                stream_usage=True,
                stream_chunk_timeout=None,
            )
        return model

    def _kwargs(self, call: ModelCall) -> dict[str, Any]:
        """``stop`` and the SDK's parameters by name, the rest in ``extra_body``."""
        headers = {"X-Request-Id": call.request_id, **(call.trace_headers or {})}
        kwargs: dict[str, Any] = {"extra_headers": headers, "stop": None}
        extra: dict[str, Any] = {}
        payload = call.body
        for key, value in payload.items():
            if key in SDK_PARAMS:
                kwargs[key] = value
            elif key not in NOT_FORWARDED:
                extra[key] = value
        stop = payload.get("stop")
        if stop:
            kwargs["stop"] = [stop] if isinstance(stop, str) else stop
        if extra:
            kwargs["extra_body"] = extra
        return kwargs

    @staticmethod
    def _error(error: Exception, base_url: str) -> ModelServerError:
        if isinstance(error, ModelServerError):
            return error
        if isinstance(error, openai.APITimeoutError):
            return timed_out(base_url)
        if isinstance(error, openai.APIConnectionError):
            cause = error.__cause__ or error.__context__
            if isinstance(cause, httpx.HTTPError):
                return httpx_error(cause, base_url)
            return httpx_error(httpx.ConnectError(str(error)), base_url)
        if isinstance(error, openai.APIStatusError):
            body = orjson.dumps(error.body) if error.body is not None else error.message.encode()
            return status_error(error.status_code, body, base_url)
        if isinstance(error, httpx.HTTPError):
            return httpx_error(error, base_url)
        return ModelServerFailed(f"model server call failed: {type(error).__name__}: {error}")

    async def complete(self, call: ModelCall, base_url: str) -> Completion:
        if call.path != CHAT_PATH:
            return await self._generic.complete(call, base_url)
        messages = _messages(call)
        try:
            model = self._model(base_url, call.body["model"])
            result = await model._agenerate(messages, **self._kwargs(call))
        except Exception as error:
            raise self._error(error, base_url) from None
        generation = result.generations[0]
        message = generation.message
        assert isinstance(message, AIMessage)
        # what ainvoke would merge into the message's metadata: id, model, finish reason
        meta = {
            **(result.llm_output or {}),
            **(generation.generation_info or {}),
            **message.response_metadata,
        }
        body = self._completion_body(message, meta, call.body["model"])
        return Completion(orjson.dumps(body), body)

    async def stream(
        self, call: ModelCall, base_url: str
    ) -> AsyncGenerator[list[bytes], BatchConsumer | None]:
        """One list per SDK chunk (the SDK hands them over one at a time), then one usage chunk.
        Offers to push are ignored: the SDK hands over its chunks one by one.

        The SDK reports usage on every chunk when the client asked for continuous usage stats;
        only the last report is sent on, as the stream's one final usage chunk."""
        if call.path != CHAT_PATH:
            async for batch in self._generic.stream(call, base_url):
                yield batch
            return
        messages = _messages(call)
        chunk_id, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        model_name = call.body["model"]
        first, started = True, False
        usage: Any = None
        try:
            chunks = self._model(base_url, model_name)._astream(messages, **self._kwargs(call))
            assert isinstance(chunks, AsyncGenerator)
            async with aclosing(chunks) as stream:
                async for generation in stream:
                    chunk = generation.message
                    assert isinstance(chunk, AIMessageChunk)
                    started = True
                    usage = chunk.usage_metadata or usage
                    delta: dict[str, Any] = {"content": chunk.text}
                    if first:
                        delta["role"], first = "assistant", False
                    finish = chunk.response_metadata.get("finish_reason")
                    if chunk.text or finish or "role" in delta:
                        choice = {"index": 0, "delta": delta, "finish_reason": finish}
                        yield [orjson.dumps(_chunk(chunk_id, created, model_name, [choice]))]
        except Exception as error:
            mapped = self._error(error, base_url)
            if started and isinstance(mapped, ModelServerUnreachable):
                mapped = ModelServerConnectionLost(
                    f"model server connection lost mid-stream: {error}"
                )
            raise mapped from None
        if usage is not None:
            yield [orjson.dumps(_chunk(chunk_id, created, model_name, [], usage=_usage(usage)))]

    @staticmethod
    def _completion_body(
        message: AIMessage, meta: dict[str, Any], model_name: str
    ) -> dict[str, Any]:
        return {
            "id": meta.get("id") or f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": meta.get("model_name", model_name),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": message.text},
                    "finish_reason": meta.get("finish_reason"),
                }
            ],
            "usage": _usage(message.usage_metadata),
        }

    async def aclose(self) -> None:
        """The SDK's httpx client belongs to the app's model-server client, which closes it."""


def _messages(call: ModelCall) -> list[BaseMessage]:
    """The client's messages as LangChain's; one it cannot read is the client's error (422),
    not the model server's (the fuzz test found such messages answered 502)."""
    try:
        return convert_to_messages(call.body["messages"])
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        message = f"messages: {type(error).__name__}: {error}"
        raise RequestInvalid(message, param="messages") from None


def _chunk(chunk_id: str, created: int, model: str, choices: list[Any], **extra: Any) -> Any:
    return {
        "id": chunk_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": choices,
        **extra,
    }


def _usage(usage: Any) -> dict[str, int]:
    usage = usage or {}
    return {
        "prompt_tokens": int(usage.get("input_tokens", 0)),
        "completion_tokens": int(usage.get("output_tokens", 0)),
        "total_tokens": int(usage.get("total_tokens", 0)),
    }
