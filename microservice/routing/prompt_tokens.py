"""A request's prompt as the token ids vLLM will prefill, asked of a replica's ``/tokenize``:
the model's own chat template and tokenizer, as the chat request itself would render them.
Precise ``cache_aware`` hashes them into vLLM's block hashes.

Only text prompts are asked: a prompt with images, an adapter or a cache salt is cached under
other hashes, and a batch of prompts has no one home.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from microservice import paths
from microservice.errors import ModelServerError
from microservice.upstream.client import ModelServerClient
from microservice.upstream.model_call import ModelCall

# The chat request's fields that change how its prompt is rendered.
CHAT_RENDERING = (
    "add_generation_prompt",
    "continue_final_message",
    "add_special_tokens",
    "chat_template",
    "chat_template_kwargs",
    "tools",
)
# Fields whose blocks vLLM hashes with extra keys.
OTHER_HASHES = ("cache_salt", "multi_modal_data", "mm_processor_kwargs")
JSON = {"content-type": "application/json"}


def _text_only(messages: Any) -> bool:
    if not isinstance(messages, list):
        return False
    for message in messages:
        if not isinstance(message, dict):
            return False
        content = message.get("content")
        if isinstance(content, list) and any(
            not isinstance(part, dict) or part.get("type", "text") != "text" for part in content
        ):
            return False
    return True


def tokenize_request(call: ModelCall) -> dict[str, Any] | list[int] | None:
    """The /tokenize body for the call's prompt; the token ids themselves when the client sent
    them; None when its blocks cannot be matched."""
    body = call.body
    if any(field in body for field in OTHER_HASHES):
        return None
    asked: dict[str, Any] = {"model": body.get("model")}
    if call.path == paths.CHAT:
        if not _text_only(body.get("messages")):
            return None
        asked["messages"] = body["messages"]
        asked.update((field, body[field]) for field in CHAT_RENDERING if field in body)
        return asked
    if call.path == paths.COMPLETIONS:
        prompt = body.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1:
            prompt = prompt[0]
        if isinstance(prompt, list) and all(isinstance(t, int) for t in prompt):
            return prompt
        if not isinstance(prompt, str):
            return None
        asked["prompt"] = prompt
        if "add_special_tokens" in body:
            asked["add_special_tokens"] = body["add_special_tokens"]
        return asked
    return None


async def prompt_token_ids(
    client: ModelServerClient, replica_url: str, call: ModelCall, timeout_s: float
) -> list[int] | None:
    """The prompt's token ids, or None (not a text prompt, or the replica did not answer in
    time: the request is then routed by the approximate index)."""
    asked = tokenize_request(call)
    if asked is None or isinstance(asked, list):
        return asked
    try:
        async with asyncio.timeout(timeout_s):
            reply = await client.post(replica_url, paths.VLLM_TOKENIZE, orjson.dumps(asked), JSON)
    except (ModelServerError, TimeoutError):
        return None
    if reply.status != 200:
        return None
    try:
        tokens = orjson.loads(reply.body)["tokens"]
    except (ValueError, KeyError, TypeError):
        return None
    return tokens if isinstance(tokens, list) else None
