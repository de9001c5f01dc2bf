"""What an admitted request holds until it ends: the rate-limit headers of its answer, and the
settling of what it reserved, which happens exactly once whichever way the request ends."""

from __future__ import annotations

from collections.abc import Callable

from microservice.relay.usage import Usage

Settle = Callable[[Usage | None], None]


class Admission:
    """``settle(usage)`` with vLLM's reported usage once the answer ended, or ``settle(None)``
    for a request that ended without one (an error, the client gone, a cancel). Calls after
    the first are ignored, so every path that sees an end may call it: the first one wins and
    a reservation is never settled twice. Without a key there is nothing to settle."""

    __slots__ = ("_settle", "headers")

    def __init__(
        self, headers: tuple[tuple[str, str], ...] = (), settle: Settle | None = None
    ) -> None:
        self.headers = headers
        self._settle = settle

    def settle(self, usage: Usage | None) -> None:
        settle, self._settle = self._settle, None
        if settle is not None:
            settle(usage)
