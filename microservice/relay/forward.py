"""The one pass-through step of a relayed stream: what the layer below yields is handed on,
and what is sent in (an offer to push, ``relay.push``) is sent on to it."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from typing import Any, TypeVar

Item = TypeVar("Item")
Offer = TypeVar("Offer")


class Forward(AsyncGenerator[Item, Offer | None]):
    """``first`` (already taken from ``source``), then the rest of ``source``.

    However the stream ends (its end, a failure, or its reader closing it, even before the
    first read) ``source`` is closed and ``finished`` is told, once, what ended it (None: an
    end or a close)."""

    def __init__(
        self,
        source: AsyncGenerator[Item, Offer | None],
        *,
        first: Item | None,
        finished: Callable[[BaseException | None], None],
    ) -> None:
        self._source = source
        self._first = first
        self._finished = finished
        self._done = False

    async def asend(self, offer: Offer | None) -> Item:
        if self._done:
            raise StopAsyncIteration
        first, self._first = self._first, None
        if first is not None:
            return first
        try:
            return await self._source.asend(offer)
        except StopAsyncIteration:
            await self._finish(None)
            raise
        except BaseException as error:
            await self._finish(error)
            raise

    async def athrow(self, typ: Any, val: Any = None, tb: Any = None) -> Item:
        """The thrown exception ends the stream, as in a generator that does not catch it."""
        error = typ if isinstance(typ, BaseException) else val if val is not None else typ()
        await self._finish(error)
        raise error

    async def aclose(self) -> None:
        await self._finish(None)

    async def _finish(self, error: BaseException | None) -> None:
        if self._done:
            return
        self._done = True
        try:
            await self._source.aclose()
        finally:
            self._finished(error)
