"""What an admitted request holds until it ends: the rate-limit headers of its answer, and the
settling of what it reserved, which happens exactly once whichever way the request ends."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from microservice.relay.usage import Usage

# How a request ended: vLLM's usage; None, before any answer (the reservation goes back);
# KEPT, after part of an answer with no usage to count it (the reservation stays counted).
KEPT: Literal["kept"] = "kept"
Settle = Callable[[Usage | Literal["kept"] | None], None]


class Admission:
    """``settle(usage)`` with vLLM's reported usage once the answer ended, ``settle(None)`` for
    a request that ended before any answer (an error, the client gone, a cancel), ``keep()``
    for a stream that ended after it began but before vLLM's usage (the client gone, a failure
    not resumed): vLLM did generate, so the key keeps the whole reservation counted, and a
    client cannot dodge its limits by leaving just before the usage chunk. Calls after the
    first are ignored, so every path that sees an end may call them: the first one wins and a
    reservation is never settled twice. Without a key there is nothing to settle."""

    __slots__ = ("_settle", "headers")

    def __init__(
        self, headers: tuple[tuple[str, str], ...] = (), settle: Settle | None = None
    ) -> None:
        self.headers = headers
        self._settle = settle

    def settle(self, usage: Usage | None) -> None:
        self._end(usage)

    def keep(self) -> None:
        self._end(KEPT)

    def _end(self, usage: Usage | Literal["kept"] | None) -> None:
        settle, self._settle = self._settle, None
        if settle is not None:
            settle(usage)
