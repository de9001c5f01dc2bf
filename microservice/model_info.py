"""Facts about the served model that only vLLM knows (its context length), learned from vLLM's
``/v1/models`` on the first successful contact and kept for the app's life.

A request that arrives before any health check asks once itself, so the OPEA default of 1024
new tokens is never sent to a model whose context is smaller just because nobody probed yet.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import orjson

MODELS_TIMEOUT = httpx.Timeout(3.0)


class ModelInfo:
    def __init__(self, client: httpx.AsyncClient, model: str) -> None:
        self._client = client
        self._model = model
        self._max_model_len: int | None = None
        self._known = False
        self._lock = asyncio.Lock()

    @property
    def max_model_len(self) -> int | None:
        """The context length last learned (None until vLLM listed the model once)."""
        return self._max_model_len

    def learn(self, entry: dict[str, Any]) -> None:
        """Keep what vLLM's ``/v1/models`` says about our model (every good probe refreshes it)."""
        max_len = entry.get("max_model_len")
        self._max_model_len = int(max_len) if max_len else None
        self._known = True

    async def max_model_len_now(self) -> int | None:
        """The context length; asks vLLM once if nothing was learned yet (None if it cannot)."""
        if self._known:
            return self._max_model_len
        async with self._lock:
            if not self._known:
                entry = await self._fetch()
                if entry is not None:
                    self.learn(entry)
        return self._max_model_len

    async def _fetch(self) -> dict[str, Any] | None:
        try:
            answer = await self._client.get("/v1/models", timeout=MODELS_TIMEOUT)
            if answer.status_code != 200:
                return None
            listed = find_model(orjson.loads(answer.content), self._model)
        except (httpx.HTTPError, ValueError):  # orjson's decode error is a ValueError
            return None
        return listed


def find_model(models: Any, name: str) -> dict[str, Any] | None:
    """Our model's entry in a ``/v1/models`` answer; ValueError when the answer is not one."""
    try:
        entries = {m["id"]: m for m in models["data"]}
    except (KeyError, TypeError) as error:
        raise ValueError("not a /v1/models answer") from error
    entry = entries.get(name)
    return entry if isinstance(entry, dict) else None
