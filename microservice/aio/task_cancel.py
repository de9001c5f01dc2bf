"""Cancelling the current task on purpose, and telling that cancellation from anyone else's.

A client that disconnects (``relay.disconnect``) and a stream whose model server went silent
(``upstream.http1.body``) both stop the request where it waits by cancelling its task; the
``CancelledError`` that follows is theirs to turn into an answer only when they fired it.
"""

from __future__ import annotations

import asyncio


class TaskCancel:
    """Made in the task it may cancel."""

    def __init__(self) -> None:
        self._task = asyncio.current_task()
        self.fired = False

    def fire(self) -> None:
        if self._task is not None:
            self.fired = True
            self._task.cancel()

    def took_back(self) -> bool:
        """After a ``CancelledError``: True when it was ours (then it is taken back, and the task
        goes on to clean up and answer); False when someone else cancelled (re-raise it)."""
        if not self.fired or self._task is None:
            return False
        self._task.uncancel()
        return True
