"""Noticing that the client left, so that the call to vLLM is closed and vLLM aborts the
generation: one waiting ``receive()`` per request, from the call's start to the answer's end,
nothing per event."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from starlette.types import Message, Receive

from microservice.aio.task_cancel import TaskCancel

T = TypeVar("T")
# Set in the request's state when the client left before its answer ended (before it began, or
# in the middle of a stream): the access line, the metrics and the audit line then say 499.
CLIENT_GONE = "client_gone"


class ClientGone(Exception):
    """The client disconnected before the answer was ready."""


class DisconnectWatch:
    """Cancels the current task when the client disconnects; made in the task that answers,
    and stopped once the answer ended."""

    def __init__(self, receive: Receive) -> None:
        self.cancel = TaskCancel()
        self._waiter = asyncio.ensure_future(receive())
        self._waiter.add_done_callback(self._on_message)

    def _on_message(self, waiter: asyncio.Future[Message]) -> None:
        if waiter.cancelled() or waiter.exception() is not None:
            return
        if waiter.result()["type"] == "http.disconnect":
            self.cancel.fire()

    async def unless_gone(self, work: Awaitable[T]) -> T:
        """Await ``work``; if the client disconnects first, it is cancelled (closing the call
        to vLLM) and ``ClientGone`` raised."""
        try:
            return await work
        except asyncio.CancelledError:
            if not self.cancel.took_back():
                raise
            raise ClientGone() from None

    def stop(self) -> None:
        self._waiter.remove_done_callback(self._on_message)
        self._waiter.cancel()


async def unless_disconnected(receive: Receive, work: Awaitable[T]) -> T:
    """``work`` under a watch of its own, for an answer that is whole once ``work`` is."""
    watch = DisconnectWatch(receive)
    try:
        return await watch.unless_gone(work)
    finally:
        watch.stop()
