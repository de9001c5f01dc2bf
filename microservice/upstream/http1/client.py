"""The production ``ModelServerClient``: our HTTP/1.1 connections to vLLM, pooled.

It reads vLLM's socket in asyncio protocol callbacks, which pushed streams (``relay.push``)
need, and costs less CPU per event than a library's stream machinery (docs/benchmarks.md).
Every failure leaves as a ``ModelServerError``: not connected (503, another replica is tried),
no answer in time (504), the connection lost mid-answer (502).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping

from microservice.errors import (
    ModelServerConnectionLost,
    ModelServerTimeout,
    ModelServerUnreachable,
)
from microservice.settings import MicroserviceSettings
from microservice.upstream.client import Reply
from microservice.upstream.http1.body import Http1ReplyStream, read_body
from microservice.upstream.http1.connection import BadAnswer, Connection, ConnectionClosed
from microservice.upstream.http1.pool import MODEL_SERVER_KEEPALIVE_S, ConnectionPool, Origin


def _request(
    method: bytes, origin: Origin, path: str, body: bytes, headers: Mapping[str, str]
) -> bytes:
    lines = [
        b"%s %s%s HTTP/1.1\r\nhost: %s\r\ncontent-length: %d\r\n"
        % (method, origin.prefix, path.encode(), origin.host_header, len(body))
    ]
    for name, value in headers.items():
        if "\r" in value or "\n" in value:
            raise ValueError(f"header {name} has a line break")
        lines.append(b"%s: %s\r\n" % (name.encode("latin-1"), value.encode("latin-1")))
    lines.append(b"\r\n")
    lines.append(body)
    return b"".join(lines)


def _busy(limit_s: float, settings: MicroserviceSettings) -> Exception:
    return TimeoutError(
        f"all {settings.llm_max_connections} connections (LLM_MAX_CONNECTIONS) stayed busy "
        f"for {limit_s:g} s"
    )


class Http1Client:
    """Keep-alive pool sized for the service's concurrency (LLM_MAX_CONNECTIONS), shared by
    every replica. The answer's head must come within LLM_REQUEST_TIMEOUT_S, waiting for a
    free pooled connection included; then each read of the body within it too."""

    def __init__(self, settings: MicroserviceSettings) -> None:
        self._settings = settings
        self._limit_s = settings.llm_request_timeout_s
        self._pool = ConnectionPool(
            settings.llm_max_connections, MODEL_SERVER_KEEPALIVE_S, settings.llm_connect_timeout_s
        )

    def _prepared(
        self, method: bytes, base_url: str, path: str, body: bytes, headers: Mapping[str, str]
    ) -> tuple[Origin, bytes]:
        origin = self._pool.origin(base_url)
        return origin, _request(method, origin, path, body, headers)

    async def _open(
        self, base_url: str, prepared: tuple[Origin, bytes], limit_s: float
    ) -> tuple[int, Connection]:
        """Send the request; the answer's status once its head is in. A reused connection
        that fails before a byte of the answer (the server closed it as we sent) is retried
        once on a new one."""
        origin, request = prepared
        for attempt in range(2):
            connection: Connection | None = None
            reused = False
            try:
                async with asyncio.timeout(limit_s):
                    connection, reused = await self._connected(origin, base_url)
                    status = await connection.send(request)
                return status, connection
            except TimeoutError:
                if connection is None:  # every pooled connection stayed busy
                    raise ModelServerUnreachable.at(
                        base_url, _busy(limit_s, self._settings)
                    ) from None
                self._pool.discard(connection)
                raise ModelServerTimeout.at(base_url) from None
            except (ConnectionClosed, BadAnswer) as error:
                assert connection is not None
                self._pool.discard(connection)
                if reused and not connection.answered and attempt == 0:
                    continue
                raise ModelServerConnectionLost.at(base_url, error) from None
            except BaseException:
                if connection is not None:
                    self._pool.discard(connection)
                raise
        raise AssertionError("unreachable")

    async def _connected(self, origin: Origin, base_url: str) -> tuple[Connection, bool]:
        try:
            return await self._pool.acquire(origin)
        except TimeoutError:  # connecting took longer than LLM_CONNECT_TIMEOUT_S
            late = TimeoutError(f"no connection within {self._settings.llm_connect_timeout_s:g} s")
            raise ModelServerUnreachable.at(base_url, late) from None
        except OSError as error:
            raise ModelServerUnreachable.at(base_url, error) from None

    async def _whole(self, base_url: str, prepared: tuple[Origin, bytes], limit_s: float) -> Reply:
        status, connection = await self._open(base_url, prepared, limit_s)
        try:
            data = await read_body(connection, base_url, limit_s)
        except BaseException:
            self._pool.discard(connection)
            raise
        self._pool.release(connection, prepared[0])
        return Reply(status, data)

    async def get(self, base_url: str, path: str, timeout_s: float) -> Reply:
        return await self._whole(
            base_url, self._prepared(b"GET", base_url, path, b"", {}), timeout_s
        )

    async def post(
        self, base_url: str, path: str, body: bytes, headers: Mapping[str, str]
    ) -> Reply:
        prepared = self._prepared(b"POST", base_url, path, body, headers)
        return await self._whole(base_url, prepared, self._limit_s)

    @contextlib.asynccontextmanager
    async def stream(
        self, base_url: str, path: str, body: bytes, headers: Mapping[str, str]
    ) -> AsyncIterator[Http1ReplyStream]:
        limit = self._limit_s
        prepared = self._prepared(b"POST", base_url, path, body, headers)
        status, connection = await self._open(base_url, prepared, limit)
        try:
            yield Http1ReplyStream(status, connection, base_url, limit)
        except BaseException:
            self._pool.discard(connection)
            raise
        self._pool.release(connection, prepared[0])  # kept when read to its end, else closed

    async def aclose(self) -> None:
        await self._pool.aclose()
