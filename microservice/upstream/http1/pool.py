"""The keep-alive pool: connections by origin, a bound on all of them together, and the
addresses parsed once per replica URL.

A connection idle longer than ``keepalive_s`` is closed when next met instead of reused: vLLM
(uvicorn) closes an idle one after 5 s, and one reused just as the server closes it would fail a
request. One the server closed is dropped as soon as the close arrives (no half-closed sockets).
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

from microservice.aio.waiters import Waiters
from microservice.upstream.http1.connection import Connection

# vLLM (uvicorn) closes a keep-alive connection after 5 s idle. Dropping ours sooner means a
# pooled connection is never reused just as the server closes it (answered 502), and idle
# connections do not linger half-closed (CLOSE-WAIT) on our side.
MODEL_SERVER_KEEPALIVE_S = 2.0


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a replica URL's requests go, and what they start with."""

    host: str
    port: int
    tls: bool
    host_header: bytes  # as in the URL: host, and port when given
    prefix: bytes  # the URL's path, before each request's own path

    @classmethod
    def parse(cls, base_url: str) -> Origin:
        parts = urlsplit(base_url)
        tls = parts.scheme == "https"
        return cls(
            host=parts.hostname or "",
            port=parts.port or (443 if tls else 80),
            tls=tls,
            host_header=parts.netloc.encode("idna" if not parts.netloc.isascii() else "ascii"),
            prefix=parts.path.rstrip("/").encode(),
        )


class ConnectionPool:
    def __init__(self, limit: int, keepalive_s: float, connect_timeout_s: float) -> None:
        self._limit = limit
        self._keepalive_s = keepalive_s
        self._connect_timeout_s = connect_timeout_s
        self._idle: dict[Origin, list[Connection]] = {}
        self._open = 0  # connections in use, idle or being made
        self._waiting = Waiters()
        self._origins: dict[str, Origin] = {}
        self._tls: ssl.SSLContext | None = None

    def origin(self, base_url: str) -> Origin:
        origin = self._origins.get(base_url)
        if origin is None:
            origin = self._origins[base_url] = Origin.parse(base_url)
        return origin

    async def acquire(self, origin: Origin) -> tuple[Connection, bool]:
        """A connection to ``origin`` and whether it was reused; waits while all are busy.
        Raises ``OSError`` or ``TimeoutError`` (connecting) as they come."""
        reused = self._reusable(origin)
        if reused is not None:
            return reused, True
        while self._open >= self._limit and not self._close_one_idle():
            await self._waiting.wait()
            reused = self._reusable(origin)
            if reused is not None:
                return reused, True
        return await self._connect(origin), False

    def release(self, connection: Connection, origin: Origin) -> None:
        """Back to the pool after a whole answer the server keeps the connection for; else
        closed."""
        if not (connection.keep_alive and connection.complete and not connection.closed):
            self.discard(connection)
            return
        connection.idle_since = asyncio.get_running_loop().time()
        self._idle.setdefault(origin, []).append(connection)
        self._waiting.wake_one()

    def discard(self, connection: Connection) -> None:
        connection.close()
        self._open -= 1
        self._waiting.wake_one()

    async def aclose(self) -> None:
        for idle in self._idle.values():
            for connection in idle:
                connection.close()
        self._idle.clear()

    def _reusable(self, origin: Origin) -> Connection | None:
        idle = self._idle.get(origin)
        if not idle:
            return None
        oldest_allowed = asyncio.get_running_loop().time() - self._keepalive_s
        while idle:
            connection = idle.pop()
            if not connection.closed and connection.idle_since >= oldest_allowed:
                return connection
            connection.close()
            self._open -= 1
        return None

    def _close_one_idle(self) -> bool:
        """At the limit with idle connections to other origins: close one to make room."""
        for idle in self._idle.values():
            if idle:
                idle.pop(0).close()
                self._open -= 1
                return True
        return False

    async def _connect(self, origin: Origin) -> Connection:
        self._open += 1
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                _, connection = await asyncio.get_running_loop().create_connection(
                    Connection,
                    origin.host,
                    origin.port,
                    ssl=self._tls_context() if origin.tls else None,
                )
        except BaseException:
            self._open -= 1
            self._waiting.wake_one()
            raise
        return connection

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            self._tls = ssl.create_default_context()
        return self._tls
