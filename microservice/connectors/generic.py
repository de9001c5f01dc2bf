"""Generic connector: vLLM's chat API over the pooled httpx client, bytes passed through."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import httpx
import orjson

from microservice.connectors.base import Completion
from microservice.errors import UpstreamFailed
from microservice.upstream import status_error, transport_error

CHAT_PATH = "/v1/chat/completions"
DONE = b"[DONE]"


class GenericConnector:
    """No SDK in the hot path: one POST, the answer's bytes returned or split into SSE events."""

    def __init__(self, client: httpx.AsyncClient, endpoint: str) -> None:
        self._client = client
        self._endpoint = endpoint

    def _request(self, payload: dict[str, Any], request_id: str) -> httpx.Request:
        return self._client.build_request(
            "POST",
            CHAT_PATH,
            content=orjson.dumps(payload),
            headers={"content-type": "application/json", "x-request-id": request_id},
        )

    async def complete(self, payload: dict[str, Any], request_id: str) -> Completion:
        try:
            response = await self._client.send(self._request(payload, request_id))
        except httpx.HTTPError as error:
            raise transport_error(error, self._endpoint) from None
        if response.status_code != 200:
            raise status_error(response.status_code, response.content, self._endpoint)
        try:
            return Completion(response.content, orjson.loads(response.content))
        except orjson.JSONDecodeError:
            raise UpstreamFailed("model server answered with a body that is not JSON") from None

    async def stream(self, payload: dict[str, Any], request_id: str) -> AsyncGenerator[bytes, None]:
        try:
            response = await self._client.send(self._request(payload, request_id), stream=True)
        except httpx.HTTPError as error:
            raise transport_error(error, self._endpoint) from None
        try:
            if response.status_code != 200:
                raise status_error(response.status_code, await response.aread(), self._endpoint)
            pending = b""
            async for data in response.aiter_raw():
                pending += data
                while (end := pending.find(b"\n\n")) >= 0:
                    event, pending = pending[:end], pending[end + 2 :]
                    if not event.startswith(b"data: "):
                        continue  # comments and keep-alives
                    if event[6:] == DONE:
                        return
                    yield event[6:]
            raise UpstreamFailed("model server closed the stream before [DONE]")
        except httpx.HTTPError as error:
            raise transport_error(error, self._endpoint) from None
        finally:
            await response.aclose()

    async def aclose(self) -> None:
        """The client belongs to the app's lifespan, which closes it."""
