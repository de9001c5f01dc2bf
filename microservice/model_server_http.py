"""The production ``ModelServerClient``: one pooled aiohttp session for every call to vLLM.

aiohttp, not httpx, on the hot path: measured on these machines, the same relay costs 3 to 5
times less CPU per request and about half per streamed event with aiohttp (docs/benchmarks.md).
httpx stays for the one caller that needs it, the openai SDK under the LangChain connector
(``sdk_client``); both libraries' failures are translated here, once, into ``ModelServerError``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Mapping

import aiohttp
import httpx

from microservice.errors import (
    ModelServerConnectionLost,
    ModelServerError,
    ModelServerTimeout,
    ModelServerUnreachable,
)
from microservice.model_server_client import Reply
from microservice.own_cancel import OwnCancel
from microservice.settings import MicroserviceSettings

# vLLM (uvicorn) closes a keep-alive connection after 5 s idle. Dropping ours sooner means a
# pooled connection is never reused just as the server closes it (answered 502), and idle
# connections do not linger half-closed (CLOSE-WAIT) on our side.
MODEL_SERVER_KEEPALIVE_S = 2.0

Failure = aiohttp.ClientError | TimeoutError


def timed_out(endpoint: str) -> ModelServerTimeout:
    return ModelServerTimeout(f"model server at {endpoint} did not answer in time")


def _unreachable(endpoint: str, error: Exception) -> ModelServerUnreachable:
    return ModelServerUnreachable(f"model server at {endpoint} is unreachable: {error}")


def _lost(endpoint: str, error: Exception) -> ModelServerConnectionLost:
    return ModelServerConnectionLost(
        f"model server at {endpoint} failed: {type(error).__name__}: {error}"
    )


def aiohttp_error(error: Failure, endpoint: str) -> ModelServerError:
    if isinstance(error, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError):
        return _unreachable(endpoint, error)
    if isinstance(error, TimeoutError):  # a read timeout (SocketTimeoutError) or the total
        return timed_out(endpoint)
    return _lost(endpoint, error)


def httpx_error(error: httpx.HTTPError, endpoint: str) -> ModelServerError:
    if isinstance(error, httpx.TimeoutException) and not isinstance(error, httpx.ConnectTimeout):
        return timed_out(endpoint)
    if isinstance(error, httpx.ConnectError | httpx.ConnectTimeout):
        return _unreachable(endpoint, error)
    return _lost(endpoint, error)


class _Streamed:
    """The body of a stream, with its read timeout kept here: aiohttp's ``sock_read`` moves a
    timer on every read from the socket, a tenth of the relay's CPU per event in the profile.
    Here one timer per stream wakes at most once per timeout and checks the read it finds
    waiting; time spent writing to a slow client is not counted."""

    def __init__(self, response: aiohttp.ClientResponse, endpoint: str, limit_s: float) -> None:
        self.status = response.status
        self._response = response
        self._endpoint = endpoint
        self._limit_s = limit_s

    async def reads(self) -> AsyncGenerator[bytes, None]:
        loop = asyncio.get_running_loop()
        expire = OwnCancel()
        limit, waiting_since = self._limit_s, -1.0
        handle: asyncio.TimerHandle

        def check() -> None:
            nonlocal handle
            now = loop.time()
            waited = now - waiting_since if waiting_since >= 0 else 0.0
            if waited >= limit:
                expire.fire()
            else:
                handle = loop.call_at(now + limit - waited, check)

        handle = loop.call_later(limit, check)
        content = self._response.content
        try:
            while True:
                waiting_since = loop.time()
                data = await content.readany()
                waiting_since = -1.0
                if not data:
                    return
                yield data
        except asyncio.CancelledError:
            if not expire.took_back():
                raise
            raise timed_out(self._endpoint) from None
        except (aiohttp.ClientError, TimeoutError) as error:
            raise aiohttp_error(error, self._endpoint) from None
        finally:
            handle.cancel()

    async def body(self) -> bytes:
        try:
            async with asyncio.timeout(self._limit_s):
                return await self._response.read()
        except (aiohttp.ClientError, TimeoutError) as error:
            raise aiohttp_error(error, self._endpoint) from None


class AiohttpClient:
    """Keep-alive pool sized for the service's concurrency, shared by every replica; the read
    timeout is the 504 limit, waiting for a pooled connection counts against it too."""

    def __init__(self, settings: MicroserviceSettings) -> None:
        self._settings = settings
        timeout = aiohttp.ClientTimeout(
            total=None,
            connect=settings.llm_request_timeout_s,  # a free pooled connection, then connecting
            sock_connect=settings.llm_connect_timeout_s,
            sock_read=settings.llm_request_timeout_s,
        )
        connector = aiohttp.TCPConnector(
            limit=settings.llm_max_connections, keepalive_timeout=MODEL_SERVER_KEEPALIVE_S
        )
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=timeout, skip_auto_headers=("User-Agent",)
        )
        self._stream_timeout = aiohttp.ClientTimeout(
            total=None, connect=timeout.connect, sock_connect=timeout.sock_connect
        )
        self._sdk: httpx.AsyncClient | None = None

    async def get(self, base_url: str, path: str, timeout_s: float) -> Reply:
        limit = aiohttp.ClientTimeout(
            total=None, connect=timeout_s, sock_connect=timeout_s, sock_read=timeout_s
        )
        try:
            async with self._session.get(base_url + path, timeout=limit) as response:
                return Reply(response.status, await response.read())
        except (aiohttp.ClientError, TimeoutError) as error:
            raise aiohttp_error(error, base_url) from None

    async def post(
        self, base_url: str, path: str, body: bytes, headers: Mapping[str, str]
    ) -> Reply:
        try:
            async with self._session.post(base_url + path, data=body, headers=headers) as response:
                return Reply(response.status, await response.read())
        except (aiohttp.ClientError, TimeoutError) as error:
            raise aiohttp_error(error, base_url) from None

    @contextlib.asynccontextmanager
    async def stream(
        self, base_url: str, path: str, body: bytes, headers: Mapping[str, str]
    ) -> AsyncIterator[_Streamed]:
        limit = self._settings.llm_request_timeout_s
        try:
            async with asyncio.timeout(limit):  # the answer's head; the body: _Streamed
                response = await self._session.post(
                    base_url + path, data=body, headers=headers, timeout=self._stream_timeout
                )
        except (aiohttp.ClientError, TimeoutError) as error:
            raise aiohttp_error(error, base_url) from None
        try:
            yield _Streamed(response, base_url, limit)
        finally:
            response.release()  # back to the pool when the body was read to its end, else closed

    def sdk_client(self) -> httpx.AsyncClient:
        if self._sdk is None:
            self._sdk = make_sdk_client(self._settings)
        return self._sdk

    async def aclose(self) -> None:
        await self._session.close()
        if self._sdk is not None:
            await self._sdk.aclose()


def make_sdk_client(
    settings: MicroserviceSettings, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    """The same pool limits and timeouts as ours, for the openai SDK; ``transport`` replaces
    the network in in-process tests (a stand-in model server)."""
    return httpx.AsyncClient(
        transport=transport,
        timeout=httpx.Timeout(
            settings.llm_request_timeout_s,
            connect=settings.llm_connect_timeout_s,
            pool=settings.llm_request_timeout_s,
        ),
        limits=httpx.Limits(
            max_connections=settings.llm_max_connections,
            max_keepalive_connections=settings.llm_max_connections,
            keepalive_expiry=MODEL_SERVER_KEEPALIVE_S,
        ),
    )
