"""One keep-alive HTTP/1.1 connection to a model server, one request at a time.

A plain ``asyncio.Protocol`` with httptools' C parser (the one uvicorn uses): a read from the
socket is parsed in C and its body appended to a queue, and a waiting reader is woken with one
future; no layer of Python stream machinery between the socket and the relay.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Protocol

import httptools

# The body waiting for the reader is bounded: past HIGH the socket is not read until the
# reader has taken it below LOW (a slow client slows vLLM's socket, not our memory).
HIGH_WATER = 256 * 1024
LOW_WATER = 64 * 1024


class ConnectionClosed(Exception):
    """The model server closed the connection (or the socket failed) before the answer's end."""


class BadAnswer(Exception):
    """Bytes that are not an HTTP/1.1 answer."""


class BodySink(Protocol):
    """Takes an answer's body straight from the socket's callbacks (``Connection.attach``)."""

    def data(self, body: bytes) -> None: ...

    def end(self) -> None: ...

    def fail(self, error: Exception) -> None: ...


class Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._parser: httptools.HttpResponseParser | None = None
        self._head: asyncio.Future[int] | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._body: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._paused = False
        self._complete = False
        self._error: Exception | None = None
        self._sink: BodySink | None = None
        self.answered = False  # a byte of the current answer arrived
        self.keep_alive = False  # the answer ended and the server keeps the connection
        self.idle_since = 0.0

    @property
    def closed(self) -> bool:
        return self._transport is None or self._error is not None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass

    def send(self, request: bytes) -> asyncio.Future[int]:
        """Write a whole request; the future is the answer's status, set once its head is in."""
        assert self._transport is not None and self._error is None
        self._parser = httptools.HttpResponseParser(self)
        self._head = asyncio.get_running_loop().create_future()
        self._body.clear()
        self._buffered = 0
        self._complete = self.answered = self.keep_alive = False
        self._sink = None
        self._transport.write(request)
        return self._head

    async def read(self) -> bytes:
        """The next piece of the body as it arrived; ``b""`` at its end."""
        while not self._body:
            if self._complete:
                return b""
            if self._error is not None:
                raise self._error
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self.read_nowait()

    def attach(self, sink: BodySink | None) -> None:
        """The rest of the body goes to ``sink`` as it arrives, what waits for ``read`` first;
        ``None`` puts it back in the queue for ``read``."""
        self._sink = sink
        if sink is None:
            return
        while self._body and self._sink is sink:
            sink.data(self.read_nowait())
        if self._sink is not sink:
            return
        if self._complete:
            sink.end()
        elif self._error is not None:
            sink.fail(self._error)

    def read_nowait(self) -> bytes:
        data = self._body.popleft()
        self._buffered -= len(data)
        if self._paused and self._buffered <= LOW_WATER and self._transport is not None:
            self._paused = False
            self._transport.resume_reading()
        return data

    @property
    def complete(self) -> bool:
        """The whole answer is in (some of its body may still wait for ``read``)."""
        return self._complete

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
        self._fail(ConnectionClosed("the connection was closed"))

    # asyncio.Protocol

    def data_received(self, data: bytes) -> None:
        if self._parser is None or self._complete:  # bytes nobody asked for
            self.close()
            return
        self.answered = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as error:
            self._fail(BadAnswer(f"the answer is not HTTP/1.1: {error}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        if not self._complete:
            reason = f": {exc}" if exc else ""
            self._fail(ConnectionClosed(f"the model server closed the connection{reason}"))

    # httptools callbacks

    def on_headers_complete(self) -> None:
        assert self._parser is not None and self._head is not None
        if not self._head.done():
            self._head.set_result(self._parser.get_status_code())

    def on_body(self, body: bytes) -> None:
        if self._sink is not None:
            self._sink.data(body)
            return
        self._body.append(body)
        self._buffered += len(body)
        if self._buffered > HIGH_WATER and not self._paused and self._transport is not None:
            self._paused = True
            self._transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        assert self._parser is not None
        self._complete = True
        self.keep_alive = self._parser.should_keep_alive()
        if self._sink is not None:
            self._sink.end()
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _fail(self, error: Exception) -> None:
        if self._error is None:
            self._error = error
        if self._head is not None and not self._head.done():
            self._head.set_exception(self._error)
            self._head.exception()  # retrieved here too: a failed send nobody awaits is quiet
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(self._error)
        if self._sink is not None:
            self._sink.fail(self._error)
