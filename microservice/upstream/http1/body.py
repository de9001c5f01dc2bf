"""An answer's body as it arrives: read piece by piece (``reads``), whole (``body``), or pushed
to a consumer from the socket's callbacks (``push``, see ``relay.push``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable

from microservice.aio.task_cancel import TaskCancel
from microservice.errors import ModelServerConnectionLost, ModelServerTimeout
from microservice.relay.push import ENDED, StopPush
from microservice.upstream.http1.connection import BadAnswer, Connection, ConnectionClosed


class Http1ReplyStream:
    """A stream's body, its read timeout kept with one timer per stream (not one per read):
    it wakes at most once per timeout and checks the read it finds waiting, so time spent
    writing to a slow client is not counted."""

    def __init__(self, status: int, connection: Connection, endpoint: str, limit_s: float) -> None:
        self.status = status
        self._connection = connection
        self._endpoint = endpoint
        self._limit_s = limit_s

    async def reads(self) -> AsyncGenerator[bytes, None]:
        loop = asyncio.get_running_loop()
        expire = TaskCancel()
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
        read = self._connection.read
        try:
            while True:
                waiting_since = loop.time()
                data = await read()
                waiting_since = -1.0
                if not data:
                    return
                yield data
        except asyncio.CancelledError:
            if not expire.took_back():
                raise
            raise ModelServerTimeout.at(self._endpoint) from None
        except (ConnectionClosed, BadAnswer) as error:
            raise ModelServerConnectionLost.at(self._endpoint, error) from None
        finally:
            handle.cancel()

    async def body(self) -> bytes:
        return await read_body(self._connection, self._endpoint, self._limit_s)

    async def push(self, consumer: Callable[[bytes], None]) -> str:
        """The rest of the body to ``consumer`` from the socket's callbacks, until it raises
        ``StopPush`` (its reason is returned) or the body ends (``ENDED``). A failure of the
        connection, a read timeout, or what else ``consumer`` raised, is raised here."""
        pushed = _Push(self._connection, consumer, self._endpoint, self._limit_s)
        try:
            return await pushed.outcome
        finally:
            pushed.stop()


class _Push:
    """A ``BodySink``: calls the consumer per piece of body, never raises into the socket's
    callbacks (its outcome says how pushing ended); the read timeout is one timer that
    checks how long ago the last piece came."""

    def __init__(
        self,
        connection: Connection,
        consumer: Callable[[bytes], None],
        endpoint: str,
        limit_s: float,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self.outcome: asyncio.Future[str] = self._loop.create_future()
        self._connection = connection
        self._consumer = consumer
        self._endpoint = endpoint
        self._limit_s = limit_s
        self._last = self._loop.time()
        self._timer = self._loop.call_later(limit_s, self._check)
        connection.attach(self)

    def data(self, body: bytes) -> None:
        self._last = self._loop.time()
        try:
            self._consumer(body)
        except StopPush as stop:
            self._finish(stop.reason, None)
        except Exception as error:  # raised from ``push``, never into the socket
            self._finish(None, error)

    def end(self) -> None:
        self._finish(ENDED, None)

    def fail(self, error: Exception) -> None:
        self._finish(None, ModelServerConnectionLost.at(self._endpoint, error))

    def stop(self) -> None:
        self._timer.cancel()
        self._connection.attach(None)

    def _check(self) -> None:
        waited = self._loop.time() - self._last
        if waited >= self._limit_s:
            self._finish(None, ModelServerTimeout.at(self._endpoint))
        else:
            self._timer = self._loop.call_later(self._limit_s - waited, self._check)

    def _finish(self, reason: str | None, error: Exception | None) -> None:
        if self.outcome.done():
            return
        self.stop()
        if error is not None:
            self.outcome.set_exception(error)
        else:
            assert reason is not None
            self.outcome.set_result(reason)


async def read_body(connection: Connection, endpoint: str, limit_s: float) -> bytes:
    parts = []
    try:
        async with asyncio.timeout(limit_s):
            while data := await connection.read():
                parts.append(data)
    except TimeoutError:
        raise ModelServerTimeout.at(endpoint) from None
    except (ConnectionClosed, BadAnswer) as error:
        raise ModelServerConnectionLost.at(endpoint, error) from None
    return b"".join(parts)
